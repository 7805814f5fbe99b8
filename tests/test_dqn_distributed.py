"""End-to-end: the distributed DQN program under launch's test_mt launch type."""

import os

from _dqn_run import run_dqn

from agents import utils
from agents.utils.run_files import replay_address


def test_distributed_program_runs_and_data_flows(tmp_path):
    run_dir = str(tmp_path / "run")
    # The rate limiter holds actors back unless the learner samples: 2,000 actor steps mean data flowed.
    args = ["--launch_type", "test_mt", "--num_actors", "2", "--max_actor_steps", "2000", "--run_dir", run_dir]
    result = run_dqn(args, min_replay_size=200)
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
