"""Distributed runs (python -m agents.run, local_mp) that survive kill -9 of a node, and a launcher that leaves
nothing behind when killed and stops cleanly on Ctrl-C.

Real processes, real signals. The runs stop on actor-step budgets: actors throttled by the rate limiter while the
learner or replay is down, and counts held back while the counter is down, only reach the budget once the killed
node serves again. A tiny learning rate keeps every run from solving (and stopping) before its fault.
"""

import csv
import os
import re
import signal
import subprocess
import sys

import psutil
import pytest
import reverb
import tensorflow as tf
from conftest import wait_until

from agents import utils
from agents.experiments.distributed import counter_checkpoint_path
from agents.utils import run_files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SMALL = ["--num_actors", "1", "--config", "min_replay_size=200", "--config", "learning_rate=1e-6"]
_BUDGET = 9000  # Actor steps: a few seconds of acting past the fault.
_STARTED = 120  # Seconds for a launch on a busy 2-core machine to get its nodes going.
_RECOVERED = 90  # Seconds for a killed node to come back (a learner imports TensorFlow again).


class Run:
    """`python -m agents.run` in a subprocess, output in a file, temporary files in a private directory."""

    def __init__(self, tmp_path, *argv):
        self.run_dir = str(tmp_path / "run")
        self.tmp_dir = tmp_path / "tmp"
        self.tmp_dir.mkdir()
        self.output_path = tmp_path / "output.txt"
        self.killed = []
        with open(self.output_path, "w") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agents.run", "--run_dir", self.run_dir, "--max_seconds", "600", *argv],
                cwd=REPO,
                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TMPDIR=str(self.tmp_dir)),
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def output(self):
        return self.output_path.read_text()

    def pids(self):
        """{'label/index': pid} from program.json ({} until written) of the nodes started (a node forked from the
        preloading process has its pid once it is forked)."""
        try:
            program = utils.read_json(os.path.join(self.run_dir, "program.json"))
        except (OSError, ValueError):
            return {}
        return {f"{node['label']}/{node['index']}": node["pid"] for node in program["nodes"] if node["pid"]}

    def counts(self):
        try:
            return utils.read_json(counter_checkpoint_path(self.run_dir))["counts"]
        except (OSError, ValueError):
            return {}

    def learner_checkpoint(self):
        """(path, learner steps) of the latest learner checkpoint, or (None, 0)."""
        path = tf.train.latest_checkpoint(os.path.join(self.run_dir, "checkpoints"))
        if path is None:
            return None, 0
        return path, int(tf.train.load_checkpoint(path).get_tensor("num_steps/.ATTRIBUTES/VARIABLE_VALUE"))

    def replay_checkpoints(self):
        """The complete replay checkpoints (Reverb writes DONE last; a server restores only those)."""
        replay_dir = os.path.join(self.run_dir, "replay")
        names = sorted(os.listdir(replay_dir)) if os.path.isdir(replay_dir) else []
        return [name for name in names if os.path.exists(os.path.join(replay_dir, name, "DONE"))]

    def logged_learner_steps(self):
        """learner_steps of every row of logs/learner.csv so far (one row a second)."""
        try:
            with open(os.path.join(self.run_dir, "logs", "learner.csv")) as f:
                return [int(float(row["learner_steps"])) for row in csv.DictReader(f) if row.get("learner_steps")]
        except OSError:
            return []

    def wait_until_checkpointed(self):
        """Learner, counter and replay have each written a checkpoint with data in it."""
        wait_until(
            lambda: (
                len(self.pids()) >= 6
                and self.learner_checkpoint()[1] > 0
                and self.counts().get("actor_steps", 0) > 0
                and self.replay_checkpoints()
            ),
            "learner, counter and replay checkpoints",
            _STARTED,
        )

    def kill_node(self, name):
        """kill -9 of one node; returns once program.json shows its new process."""
        self.killed.append(name)
        old = self.pids()[name]
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: self.pids().get(name) not in (None, old), f"{name} restarted with a new pid", _RECOVERED)
        assert psutil.pid_exists(self.pids()[name])

    def finish(self, timeout=240):
        """Waits for the launcher to exit; returns result.json."""
        try:
            self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        assert self.process.returncode == 0, self.output()[-4000:]
        # Only the killed node was restarted: the others recovered on their own (e.g. adders, dataset and priority
        # updates when replay was killed; counter pushes and publications when the counter or variable server was).
        restarted = re.findall(r"\[launch\] Node '([^']+)' failed; restarting", self.output())
        assert restarted == self.killed, self.output()[-4000:]
        return utils.read_json(os.path.join(self.run_dir, "result.json"))

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def make_run(tmp_path):
    runs = []

    def make(*argv):
        runs.append(Run(tmp_path, *argv))
        return runs[-1]

    yield make
    for run in runs:
        run.close()


def _replay_size(address):
    return sum(int(t.current_size) for t in reverb.Client(address).server_info(timeout=5).values())


@pytest.mark.timeout(300)
def test_a_killed_actor_is_restarted_and_the_run_finishes(make_run):
    run = make_run(*_SMALL, "--max_actor_steps", str(_BUDGET), "--checkpoint_seconds", "1")
    run.wait_until_checkpointed()
    run.kill_node("actor/0")
    result = run.finish()
    assert result["stopped_by"] == "budget" and result["actor_steps"] >= _BUDGET


@pytest.mark.timeout(300)
def test_a_killed_replay_restarts_on_its_address_with_its_latest_checkpoint(make_run):
    run = make_run(*_SMALL, "--max_actor_steps", str(_BUDGET), "--checkpoint_seconds", "1")
    run.wait_until_checkpointed()
    address = run_files.replay_address(run.run_dir)
    size = _replay_size(address)
    # A checkpoint written after `size` was read holds at least that many items (the table is far from full).
    checkpoints = run.replay_checkpoints()
    wait_until(lambda: run.replay_checkpoints() != checkpoints, "a new replay checkpoint")
    # Frozen first, longer than an adder waits for it (10 s + 10 s): the actor gives up on its adder and episode.
    os.kill(run.pids()["replay/0"], signal.SIGSTOP)
    wait_until(lambda: "starting a new episode with a new adder" in run.output(), "the actor renewing its adder", 60)
    run.kill_node("replay/0")
    assert run_files.replay_address(run.run_dir) == address
    answers = []
    wait_until(lambda: answers.append(_replay_size_or_none(address)) or answers[-1] is not None, "replay answering")
    assert answers[-1] >= size  # Its first answer: what it restored (and perhaps a few new inserts).
    result = run.finish()
    assert result["stopped_by"] == "budget" and result["actor_steps"] >= _BUDGET


def _replay_size_or_none(address):
    try:
        return _replay_size(address)
    except reverb.errors.DeadlineExceededError:
        return None


@pytest.mark.timeout(300)
def test_a_killed_learner_continues_from_its_last_checkpoint(make_run):
    run = make_run(*_SMALL, "--max_actor_steps", str(_BUDGET), "--checkpoint_seconds", "1")
    run.wait_until_checkpointed()
    # The learner checkpoints every second: the one it restores is at least this one.
    path, steps = run.learner_checkpoint()
    run.kill_node("learner/0")
    result = run.finish()
    assert result["resumed_from"] is not None and result["resumed_from"] >= path  # ckpt-N, N grows.
    final_path, final_steps = run.learner_checkpoint()
    assert final_steps > steps
    assert result["stopped_by"] == "budget" and result["actor_steps"] >= _BUDGET


@pytest.mark.timeout(300)
def test_a_killed_counter_restarts_from_its_checkpoint_and_actors_keep_their_counts(make_run):
    run = make_run(*_SMALL, "--max_actor_steps", str(_BUDGET), "--checkpoint_seconds", "1")
    run.wait_until_checkpointed()
    # Enough counted that a counter starting over from zero could not be back there at its first checkpoint.
    wait_until(lambda: run.counts().get("actor_steps", 0) >= 3000, "3000 actor steps counted")
    counts = run.counts()
    checkpoint_time = os.path.getmtime(counter_checkpoint_path(run.run_dir))
    run.kill_node("counter/0")
    wait_until(lambda: os.path.getmtime(counter_checkpoint_path(run.run_dir)) > checkpoint_time + 1, "a new count")
    assert run.counts()["actor_steps"] >= counts["actor_steps"]
    result = run.finish()
    assert result["stopped_by"] == "budget" and result["actor_steps"] >= _BUDGET


@pytest.mark.timeout(300)
def test_a_killed_variable_server_restarts_and_gets_new_parameters(make_run):
    run = make_run(*_SMALL, "--max_actor_steps", str(_BUDGET), "--checkpoint_seconds", "1")
    run.wait_until_checkpointed()
    run.kill_node("variable_server/0")
    rows = len(run.logged_learner_steps())
    # A learner step count logged after the restart: a parameter version above it was published to the new server.
    wait_until(lambda: len(run.logged_learner_steps()) > rows, "a learner log row after the restart")
    steps_after_restart = run.logged_learner_steps()[rows]
    result = run.finish()
    assert result["stopped_by"] == "budget" and result["actor_steps"] >= _BUDGET
    assert result["parameter_version"] > steps_after_restart


@pytest.mark.timeout(300)
def test_kill_9_of_the_launcher_leaves_no_process_and_no_temp_file(make_run):
    run = make_run(*_SMALL, "--max_actor_steps", "100000000")
    wait_until(lambda: len(run.pids()) >= 6, "every node started", _STARTED)
    nodes = [psutil.Process(pid) for pid in run.pids().values()]
    run.process.send_signal(signal.SIGKILL)
    run.process.wait()
    # The nodes get the parent-death signal at once, but on a loaded machine their exit can take seconds.
    wait_until(
        lambda: not any(node.is_running() and node.status() != psutil.STATUS_ZOMBIE for node in nodes),
        "every node process gone",
    )
    assert os.listdir(run.tmp_dir) == []


@pytest.mark.timeout(300)
def test_ctrl_c_stops_with_a_final_checkpoint_a_result_and_a_plot(make_run):
    # No periodic checkpoint comes within the run (60 s): the ones found after Ctrl-C are the final ones.
    run = make_run(*_SMALL, "--max_actor_steps", "100000000", "--checkpoint_seconds", "60")
    wait_until(lambda: any(run.logged_learner_steps()), "the learner training", _STARTED)
    assert run.learner_checkpoint() == (None, 0)
    run.process.send_signal(signal.SIGINT)
    run.process.wait(timeout=60)
    output = run.output()
    assert run.process.returncode == 128 + signal.SIGINT, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    result = utils.read_json(os.path.join(run.run_dir, "result.json"))
    assert result["stopped_by"] == "user" and not result["solved"] and result["actor_steps"] > 0
    assert run.learner_checkpoint()[1] > 0 and run.replay_checkpoints() and run.counts().get("actor_steps", 0) > 0
    assert os.path.exists(os.path.join(run.run_dir, "learning_curve.png"))
    assert f"--resume {run.run_dir}" in output
