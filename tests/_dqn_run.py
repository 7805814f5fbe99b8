"""A DQN program run by `agents.dqn.run` in a fresh interpreter, for end-to-end tests."""

import json
import os
import subprocess
import sys
from typing import Any, Dict, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A fresh interpreter: under test_mt all nodes are threads of one process, and threads or gRPC channels left behind
# by earlier tests in the pytest process once stalled its nodes. Small replay and frequent publication so data
# flows within a few thousand steps.
_RUN = """
import json, sys
from agents.dqn import DQNConfig, run
config = DQNConfig(min_replay_size={min_replay_size}, samples_per_insert=4.0, samples_per_insert_tolerance=0.5,
                   variable_update_period=20)
print("RESULT " + json.dumps(run.main(sys.argv[1:], config=config)))
"""


def run_dqn(args: Sequence[str], min_replay_size: int) -> Dict[str, Any]:
    """Runs `run.main(args)` and returns its result; fails the test with the run's output if it printed none."""
    completed = subprocess.run(
        [sys.executable, "-c", _RUN.format(min_replay_size=min_replay_size), *args],
        cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
        # Within the suite's 300 s per test; the runs have no wall-clock budget to trip on a loaded machine.
        timeout=280,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert completed.returncode == 0 and lines, completed.stdout[-2000:] + completed.stderr[-4000:]
    assert "Unable to register" not in completed.stderr  # TensorFlow's CPU-only plugin noise is filtered.
    return json.loads(lines[0][len("RESULT ") :])
