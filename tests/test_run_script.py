"""python -m agents.run: --config overrides and their errors, refused run dirs, and --resume after a clean stop
and after kill -9 of the launcher."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import tensorflow as tf
from conftest import usage_error, wait_until

from agents import registry, run, utils
from agents.dqn import DQNConfig
from agents.experiments.distributed import counter_checkpoint_path
from agents.experiments.overrides import parse_overrides

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Small and quick to start learning; a learning rate too small to solve CartPole, so that runs end on their budgets
# (or a Ctrl-C), never by solving first.
_FAST = ["--config", "min_replay_size=200", "--config", "samples_per_insert=4", "--config", "learning_rate=1e-6"]


def test_config_overrides_parse_each_field_as_its_type():
    values = parse_overrides(
        DQNConfig, ["learning_rate=3e-3", "n_step=5", "dueling=true", "hidden_sizes=32,16", "replay_table_name=t"]
    )
    assert values == {
        "learning_rate": 3e-3,
        "n_step": 5,
        "dueling": True,
        "hidden_sizes": (32, 16),
        "replay_table_name": "t",
    }
    assert DQNConfig(**values).hidden_sizes == (32, 16)


def test_config_errors_name_the_key_and_the_fix(capsys, tmp_path):
    error = usage_error(capsys, ["--config", "learnin_rate=1e-3", "--run_dir", str(tmp_path / "a")])
    assert "DQNConfig has no field 'learnin_rate'" in error and "learning_rate" in error
    assert "expected an int" in usage_error(capsys, ["--config", "n_step=three"])
    assert "expected a bool" in usage_error(capsys, ["--config", "dueling=maybe"])
    assert "is not key=value" in usage_error(capsys, ["--config", "learning_rate"])
    assert "learning_rate must be > 0 (got -1.0)" in usage_error(capsys, ["--config", "learning_rate=-1"])
    assert not os.path.exists(tmp_path / "a")  # Nothing is created for a refused command line.


def test_bad_runs_are_refused_in_one_line_before_anything_starts(capsys, tmp_path):
    assert f"unknown agent 'dqm'; the agents are: {', '.join(sorted(registry.AGENTS))}." in usage_error(
        capsys, ["--agent", "dqm"]
    )
    assert "Unknown environment 'Foo-v0'" in usage_error(capsys, ["--env", "Foo-v0"])
    assert "DQN needs discrete actions" in usage_error(capsys, ["--env", "Pendulum-v1"])
    assert "max_actor_steps must be >= 1 (got -5)" in usage_error(capsys, ["--max_actor_steps", "-5"])
    assert "--num_actors must be >= 1" in usage_error(capsys, ["--num_actors", "0"])
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert "is a file" in usage_error(capsys, ["--run_dir", str(a_file)])
    used = tmp_path / "used"
    (used / "logs").mkdir(parents=True)
    (used / "config.json").write_text("{}")
    assert f"--resume {used}" in usage_error(capsys, ["--run_dir", str(used)])
    assert "not a run directory" in usage_error(capsys, ["--resume", str(tmp_path / "nothing")])


def test_ray_flags_are_checked_before_anything_starts(capsys, tmp_path):
    assert "--ray_address apply to --launch_type ray only" in usage_error(capsys, ["--ray_address", "10.0.0.1:6379"])
    bad_json = ["--launch_type", "ray", "--ray_resources", "{learner: 1}", "--run_dir", str(tmp_path / "a")]
    assert "--ray_resources is not JSON" in usage_error(capsys, bad_json)
    assert "must be a JSON object" in usage_error(capsys, ["--launch_type", "ray", "--ray_resources", "[1]"])
    assert not os.path.exists(tmp_path / "a")


def test_an_in_process_run_counts_its_budget_from_the_call(tmp_path):
    before = time.time()  # agents.run was imported long before: its budget must not start then.
    experiment, flags = run.prepare(["--run_dir", str(tmp_path / "run"), "--max_seconds", "30"])
    assert experiment.start_time >= before and not experiment.out_of_budget(0) and flags["max_seconds"] == 30


def _checkpoint(run_dir):
    """(path, learner steps, counts, online network parameters) of the run's latest learner checkpoint; the counts
    come from the counter node's own checkpoint in a distributed run, from the learner's in a single process."""
    path = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    if path is None:
        return None
    reader = tf.train.load_checkpoint(path)
    counter_path = counter_checkpoint_path(run_dir)
    if os.path.exists(counter_path):
        counts = utils.read_json(counter_path)["counts"]
    else:
        state = reader.get_tensor("counter/state/.ATTRIBUTES/VARIABLE_VALUE")
        counts = json.loads(state)["counts"] if state else {}
    parameters = [reader.get_tensor(f"network/_parameters/{i}/.ATTRIBUTES/VARIABLE_VALUE") for i in range(6)]
    return path, int(reader.get_tensor("num_steps/.ATTRIBUTES/VARIABLE_VALUE")), counts, parameters


def test_resume_after_a_clean_stop_restores_parameters_counts_and_replay(tmp_path):
    run_dir = str(tmp_path / "run")
    first = run.main(["--single_process", "--max_actor_steps", "600", "--run_dir", run_dir, *_FAST])
    assert first["learner_steps"] > 0 and first["replay_size"] > 0 and first["resumed_from"] is None
    path, steps, counts, parameters = _checkpoint(run_dir)
    assert steps == first["learner_steps"] and counts["actor_steps"] == first["actor_steps"]

    # The budget is spent already, so the resumed run restores everything and stops at once.
    again = run.main(["--resume", run_dir])
    assert again["resumed_from"] == path
    assert (again["actor_steps"], again["learner_steps"], again["replay_size"]) == (
        first["actor_steps"],
        first["learner_steps"],
        first["replay_size"],
    )
    for saved, restored in zip(parameters, _checkpoint(run_dir)[3]):
        np.testing.assert_array_equal(saved, restored)
    assert not np.allclose(parameters[0], _checkpoint_free_parameters(run_dir))

    more = run.main(["--resume", run_dir, "--max_actor_steps", "900"])
    assert more["actor_steps"] >= 900 and more["learner_steps"] > first["learner_steps"]
    assert utils.read_json(os.path.join(run_dir, "config.json"))["max_actor_steps"] == 900


def _checkpoint_free_parameters(run_dir):
    """The first weight matrix a fresh learner would start from (seed 0)."""
    import replay  # pylint: disable=import-outside-toplevel
    from agents import envs  # pylint: disable=import-outside-toplevel
    from agents.dqn import DQNBuilder  # pylint: disable=import-outside-toplevel

    spec = replay.make_environment_spec(envs.make_environment("CartPole-v1"))
    return DQNBuilder(DQNConfig()).make_networks(spec, seed=0)[0].numpy_parameters()[0]


def _run_script(*argv):
    return subprocess.Popen(
        [sys.executable, "-m", "agents.run", *argv],
        cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_resume_after_kill_9_of_the_launcher_continues_from_the_last_periodic_checkpoint(tmp_path):
    run_dir = str(tmp_path / "run")
    launcher = _run_script(
        "--launch_type",
        "local_mp",
        "--num_actors",
        "1",
        "--max_seconds",
        "200",
        "--checkpoint_seconds",
        "1",
        "--run_dir",
        run_dir,
        *_FAST,
    )
    try:

        def trained_and_checkpointed():
            checkpoint = _checkpoint(run_dir)
            replay_dir = os.path.join(run_dir, "replay")
            return (
                checkpoint is not None
                and checkpoint[1] > 0
                and checkpoint[2].get("actor_steps", 0) > 0
                and os.path.isdir(replay_dir)
                and len(os.listdir(replay_dir)) > 0
            )

        wait_until(trained_and_checkpointed, "a learner checkpoint with steps and a replay checkpoint", 150)
        nodes = psutil.Process(launcher.pid).children(recursive=True)
        launcher.send_signal(signal.SIGKILL)
        launcher.communicate(timeout=30)
        _, alive = psutil.wait_procs(nodes, timeout=30)
        assert not alive, f"nodes outlived the launcher: {alive}"
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.communicate(timeout=30)
    path, steps, counts, _ = _checkpoint(run_dir)

    resumed = _run_script("--resume", run_dir, "--max_actor_steps", str(counts["actor_steps"] + 200))
    output, _ = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, output[-3000:]
    result = utils.read_json(os.path.join(run_dir, "result.json"))
    assert result["resumed_from"] == path
    assert result["learner_steps"] >= steps
    assert result["actor_steps"] >= counts["actor_steps"] + 200
    assert result["replay_size"] > 0


def test_ctrl_c_stops_a_single_process_run_with_a_final_checkpoint_and_a_result(tmp_path):
    run_dir = str(tmp_path / "run")
    process = _run_script(
        "--single_process",
        "--max_actor_steps",
        "100000000",
        "--checkpoint_seconds",
        "60",
        "--run_dir",
        run_dir,
        *_FAST,
    )
    try:
        learner_log = os.path.join(run_dir, "logs", "learner.csv")
        wait_until(
            lambda: (
                process.poll() is not None or (os.path.exists(learner_log) and len(open(learner_log).readlines()) > 2)
            ),
            "learning",
            150,
        )
        assert process.poll() is None, process.communicate()[0][-3000:]
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGINT and "Traceback" not in output, output[-3000:]
    result = utils.read_json(os.path.join(run_dir, "result.json"))
    assert result["stopped_by"] == "user" and result["learner_steps"] > 0 and result["actor_steps"] > 0
    assert _checkpoint(run_dir)[1] == result["learner_steps"]  # The final checkpoint, taken at the Ctrl-C.
    assert os.path.exists(os.path.join(run_dir, "learning_curve.png")) and f"--resume {run_dir}" in output
