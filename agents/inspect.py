"""`encore-inspect COMMAND ADDRESS ...` (or `python -m agents.inspect`): replay.inspect, with run directories.

ADDRESS is host:port of a Reverb server, or a run directory whose program.json records `replay_address`
(the programs of `agents` write it; a program with several replay shards also records them all, and `info`
shows every shard and their sum). The directory is resolved here, above replay; everything else is
`python -m replay.inspect`.
"""

import os
import sys
from typing import List, Optional

from agents.utils import run_files
from replay import inspect

_ADDRESS_HELP = "host:port of a Reverb server, or a run directory whose program.json records replay_address"


def resolve_addresses(target: str) -> List[str]:
    """host:port of each replay shard for an ADDRESS argument: the replay addresses a run directory records, or
    `target` itself."""
    if os.path.isdir(target):
        if os.path.exists(os.path.join(target, "result.json")):
            raise inspect.InspectError(
                f"the run in {target} has finished (it wrote result.json), so its replay server is gone: continue "
                f"it with `python -m agents.run --resume {target}` and inspect it while it runs"
            )
        try:
            return run_files.replay_addresses(target)
        except ValueError as e:
            raise inspect.InspectError(str(e)) from None
    if not inspect.is_address(target):
        raise inspect.InspectError(
            f"{target!r} is neither host:port (e.g. localhost:8000) nor an existing run directory"
        )
    return [target]


def main(argv: Optional[List[str]] = None) -> int:
    """Runs `encore-inspect`; returns the exit status (problems are one line on stderr and status 1)."""
    return inspect.main(argv, resolve_addresses=resolve_addresses, address_help=_ADDRESS_HELP)


if __name__ == "__main__":
    sys.exit(main())
