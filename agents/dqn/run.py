"""`python -m agents.dqn.run ...` is `python -m agents.run --agent dqn ...`."""

import sys
from typing import Any, Dict, List, Optional

from agents import run
from agents.dqn.config import DQNConfig


def main(
    argv: Optional[List[str]] = None, config: Optional[DQNConfig] = None, start_time: Optional[float] = None
) -> Dict[str, Any]:
    return run.main(["--agent", "dqn", *(argv or [])], config=config, start_time=start_time)


if __name__ == "__main__":
    main(sys.argv[1:])
