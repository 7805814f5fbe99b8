"""Finding the Reverb server behind an ADDRESS argument and reading its tables."""

import json
import os
from typing import Any, Dict, Tuple

import reverb


class InspectError(Exception):
    """A problem the user can fix; the CLI prints it as one line and exits non-zero."""


def resolve_address(target: str) -> str:
    """Returns `host:port` for `target`: either `host:port` itself or a run directory with program.json."""
    if os.path.isdir(target):
        return _address_from_run_dir(target)
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InspectError(f"{target!r} is neither host:port (e.g. localhost:8000) nor an existing run directory")
    return target


def _address_from_run_dir(run_dir: str) -> str:
    path = os.path.join(run_dir, "program.json")
    if not os.path.isfile(path):
        raise InspectError(f"run directory {run_dir} has no program.json, so it records no replay address; "
                           "pass the replay server's host:port instead")
    try:
        with open(path, encoding="utf-8") as f:
            program = json.load(f)
    except (OSError, ValueError) as e:
        raise InspectError(f"cannot read {path}: {e}") from None
    address = program.get("replay_address") if isinstance(program, dict) else None
    if not address and isinstance(program, dict):
        replay_nodes = [node for node in program.get("nodes", [])
                        if isinstance(node, dict) and node.get("label") == "replay" and node.get("address")]
        address = replay_nodes[0]["address"] if replay_nodes else None
    if not address:
        raise InspectError(f"{path} records no replay address (no 'replay_address' and no node labelled "
                           "'replay' with an 'address'); pass the replay server's host:port instead")
    return str(address)


def fetch_server_info(client: Any, address: str, timeout: float) -> Dict[str, Any]:
    """`client.server_info()` with one clear error when the server does not answer within `timeout` seconds."""
    try:
        # Reverb truncates the timeout to whole seconds, where 0 means "wait forever".
        return client.server_info(timeout=max(1, round(timeout)))
    except reverb.errors.DeadlineExceededError:
        raise InspectError(f"no Reverb server answered at {address} within {max(1, round(timeout))}s: check that "
                           "the replay server is running and that host and port are right "
                           "(for a run directory, that its program is still running)") from None
    except RuntimeError as e:
        raise InspectError(f"Reverb server at {address} failed to answer: {str(e).splitlines()[0]}") from None


def connect(target: str, timeout: float) -> Tuple[str, Any, Dict[str, Any]]:
    """Returns (address, reverb.Client, server_info()) for an ADDRESS argument."""
    address = resolve_address(target)
    client = reverb.Client(address)
    return address, client, fetch_server_info(client, address, timeout)


def table_info(infos: Dict[str, Any], table: str, address: str) -> Any:
    """The TableInfo of `table`, or an error listing the tables that do exist."""
    if table not in infos:
        existing = ", ".join(sorted(infos)) or "(none)"
        raise InspectError(f"no table {table!r} on {address}; its tables are: {existing}")
    return infos[table]
