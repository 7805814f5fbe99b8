"""End-to-end: the distributed DQN program under launch's test_mt launch type."""

import json
import os
import subprocess
import sys

from agents import utils
from agents.utils.run_files import replay_address

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The program runs in a fresh interpreter: under test_mt all nodes are threads of one process, and threads or
# gRPC channels left behind by earlier tests in the pytest process once stalled its nodes.
_RUN = """
import json, sys
from agents.dqn import DQNConfig, run
config = DQNConfig(min_replay_size=200, samples_per_insert=4.0, samples_per_insert_tolerance=0.5,
                   variable_update_period=20)
print("RESULT " + json.dumps(run.main(sys.argv[1:], config=config)))
"""


def test_distributed_program_runs_and_data_flows(tmp_path):
    run_dir = str(tmp_path / "run")
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            _RUN,
            "--launch_type",
            "test_mt",
            "--num_actors",
            "2",
            # The rate limiter holds actors back unless the learner samples: 2,000 actor steps mean data flowed.
            "--max_actor_steps",
            "2000",
            "--run_dir",
            run_dir,
        ],
        cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
        # Within the suite's 300 s per test; the run has no wall-clock budget to trip on a loaded machine.
        timeout=280,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert completed.returncode == 0 and lines, completed.stdout[-2000:] + completed.stderr[-4000:]
    assert "Unable to register" not in completed.stderr  # TensorFlow's CPU-only plugin noise is filtered.
    result = json.loads(lines[0][len("RESULT ") :])
    assert set(result) >= {"solved", "wall_seconds", "eval_return", "actor_steps", "learner_steps"}
    assert result["replay_size"] > 0
    assert result["learner_steps"] > 0
    assert result["actor_steps"] > 0  # Counted by the counter node from both actors.
    assert result["parameter_version"] > 0
    assert result["learner_cpu_seconds"] > 0  # The learner's process time (with test_mt, the whole program's).
    assert result["solved"] or result["actor_steps"] >= 2000

    program = utils.read_json(os.path.join(run_dir, "program.json"))
    assert program["replay_address"].split(":")[0] in ("127.0.0.1", "localhost")
    assert replay_address(run_dir) == program["replay_address"]  # What `encore-inspect RUN_DIR` reads.
    assert {"replay/0", "counter/0", "learner/0", "variable_server/0", "actor/0", "actor/1", "evaluator/0"} <= {
        f"{node['label']}/{node['index']}" for node in program["nodes"]
    }

    versions = []
    for actor_id in range(2):
        columns = utils.read_csv_log(os.path.join(run_dir, "logs", f"actor_{actor_id}.csv"))
        assert columns["episode_return"], f"actor {actor_id} logged no episodes"
        versions.append(max(columns["parameter_version"]))
        assert columns["cpu_seconds"][-1] > 0
    assert max(versions) > 0, "actors never received parameters from the variable server"
    for name in ("config.json", "result.json", "learning_curve.png", "logs/learner.csv", "logs/evaluator.csv"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    assert os.listdir(os.path.join(run_dir, "checkpoints"))
