"""`python -m agents.dqn.run ...` is `python -m agents.run --agent dqn ...`."""

import time

_START_TIME = time.time()  # Before the imports: a script's wall time counts them.

import sys  # noqa: E402
from typing import Any, Dict, List, Optional  # noqa: E402

from agents import run  # noqa: E402
from agents.dqn.config import DQNConfig  # noqa: E402


def main(
    argv: Optional[List[str]] = None, config: Optional[DQNConfig] = None, start_time: Optional[float] = None
) -> Dict[str, Any]:
    return run.main(["--agent", "dqn", *(argv or [])], config=config, start_time=start_time)


if __name__ == "__main__":
    run.run_script(["--agent", "dqn", *sys.argv[1:]], _START_TIME)
