"""launch_type="ray" against a real Ray cluster: a head started by `ray start` inside a network namespace of this
test module (only loopback), with every driver run inside it too. The programs are the ones the other launch
types run (tests/test_launch_programs.py, tests/test_launch_lifecycle.py), and the tabular agent's."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest
from _netns import NetworkNamespace, RayNode, node_actors, ray_env
from conftest import wait_until
from test_launch_lifecycle import LAUNCH_AND_RETURN
from test_launch_programs import lines

pytest.importorskip("ray")  # The `ray` extra; `make test` installs it.

ADDRESS = "127.0.0.1:6379"
DRIVER_TIMEOUT = 240


class Cluster:
    """A Ray head in a namespace of ours; `driver()` runs Python code there against it."""

    def __init__(self):
        self.namespace = NetworkNamespace()
        # A short path: Ray's unix sockets live under it (108 bytes at most).
        self.temp_dir = tempfile.mkdtemp(prefix="encray")
        self.env = ray_env()
        self.head = RayNode(
            self.namespace,
            self.temp_dir,
            self.env,
            "--port=6379",
            "--num-cpus=2",
            "--include-dashboard=false",
            detached=True,  # Not a child of pytest: Ray's workers come and go between tests.
        )
        self.head.wait_until_up(ADDRESS, self.env)

    def driver(self, body: str, *args: str, **kwargs) -> subprocess.Popen:
        """Starts `body` (Python, with `lp`, `sys`, `ADDRESS` defined) as a Ray driver inside the namespace."""
        source = f"import sys\nimport launch as lp\nADDRESS = {ADDRESS!r}\n" + textwrap.dedent(body)
        script = os.path.join(self.temp_dir, f"driver_{os.urandom(4).hex()}.py")
        with open(script, "w") as f:
            f.write(source)
        return self.namespace.popen(
            [sys.executable, script, *args],
            env=kwargs.pop("env", self.env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            **kwargs,
        )

    def run(self, body: str, *args: str) -> str:
        """Runs a driver to its end (exit status 0 expected) and returns its output."""
        process = self.driver(body, *args)
        try:
            output, _ = process.communicate(timeout=DRIVER_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 0, output
        return output

    def node_actors(self):
        """The pids of node actors still alive in the namespace."""
        return node_actors(self.namespace)

    def close(self) -> None:
        self.head.stop()
        self.namespace.close()


@pytest.fixture(scope="module")
def cluster():
    cluster = Cluster()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def ray_cluster(cluster):
    """The module's cluster; after the test, no actor of the test's programs may be left."""
    yield cluster
    wait_until(lambda: not cluster.node_actors(), "every node actor to end", timeout=60)


def test_hello_world(ray_cluster, tmp_path):
    output = ray_cluster.run(
        f"""
        from test_launch_programs import HelloWorld
        program = lp.Program("hello_world")
        program.add_node(lp.PyClassNode(HelloWorld, {str(tmp_path / "out")!r}), label="hello_printer")
        controller = lp.launch(program, launch_type="ray", ray_address=ADDRESS, log_dir={str(tmp_path / "logs")!r})
        assert controller.wait(120)
        """
    )
    assert lines(tmp_path / "out") == ["hello"]
    assert "[hello_printer/0] Hello World!!!" in output  # Prefixed with the node's label.
    log = (tmp_path / "logs" / "hello_printer_0.log").read_text()
    assert "Hello World!!!" in log
    assert "hello from absl logging" in log
    assert ":actor_name:" not in log


def test_consumer_producers(ray_cluster, tmp_path):
    path = str(tmp_path / "out")
    ray_cluster.run(
        f"""
        from test_launch_programs import make_consumer_producers
        controller = lp.launch(make_consumer_producers(3, {path!r}), launch_type="ray", ray_address=ADDRESS)
        assert controller.wait(120)
        """
    )
    assert lines(path) == ["[0, 1, 2]"] * 10


def test_batching(ray_cluster, tmp_path):
    path = str(tmp_path / "out")
    ray_cluster.run(
        f"""
        from test_launch_programs import BatchingClient, BatchingServer
        program = lp.Program("batching")
        server = program.add_node(lp.CourierNode(BatchingServer, 2), label="server")
        with program.group("clients"):
            for client_id in range(2):
                program.add_node(lp.CourierNode(BatchingClient, client_id, server, {path!r}))
        assert lp.launch(program, launch_type="ray", ray_address=ADDRESS).wait(120)
        """
    )
    assert sorted(lines(path)) == ["0 [100, 120]", "1 [100, 120]"]


def test_program_wait_stop_api(ray_cluster, tmp_path):
    path = str(tmp_path / "out")
    output = ray_cluster.run(
        f"""
        import test_launch_programs as t
        program = lp.Program("program_wait")
        waiting = (t._sleep, t._wait_for_stop, t._stop_event, t._infinite_sleep)
        for fn in waiting:
            program.add_node(lp.CourierNode(fn, {path!r}), label=fn.__name__.strip("_"))
        program.add_node(lp.CourierNode(t._stop_program, {path!r}, len(waiting)), label="stop_program")
        controller = lp.launch(program, launch_type="ray", ray_address=ADDRESS, termination_notice_secs=2)
        assert controller.wait(120)
        """
    )
    assert "Nodes that did not stop within 2s: ['infinite_sleep/0']; killing them." in output
    out = lines(path)
    assert {"handler", "sleep", "wait_for_stop", "stop_event"} <= set(out)
    pid = int(next(line for line in out if line.startswith("pid"))[4:])
    wait_until(lambda: not _alive(pid), "the killed node's process to end")


def test_crashing_node_stops_the_program_and_names_itself(ray_cluster, tmp_path):
    output = ray_cluster.run(
        f"""
        import test_launch_programs as t
        program = lp.Program("crash")
        program.add_node(lp.CourierNode(t._wait_for_stop, {str(tmp_path / "out")!r}), label="server")
        program.add_node(lp.PyNode(t._crash), label="crasher")
        controller = lp.launch(program, launch_type="ray", ray_address=ADDRESS, termination_notice_secs=5)
        try:
            controller.wait(120)
        except lp.NodeError as error:
            print("CAUGHT", error.node_name, repr(str(error)))
        """
    )
    caught = next(line for line in output.splitlines() if line.startswith("CAUGHT"))
    assert caught.startswith("CAUGHT crasher/0 ")
    assert "ZeroDivisionError: crash on purpose" in caught and "in _crash" in caught  # The remote traceback.
    assert lines(tmp_path / "out") == ["wait_for_stop"]  # The other node was stopped.


def test_a_killed_node_is_restarted_by_ray_and_found_again_by_its_clients(ray_cluster, tmp_path):
    path = tmp_path / "pids"
    output = ray_cluster.run(
        f"""
        from test_launch_lifecycle import Flaky, _restart_client
        program = lp.Program("restart")
        flaky = program.add_node(lp.CourierNode(Flaky), label="flaky", max_restarts=1)
        program.add_node(lp.PyNode(_restart_client, flaky, {str(path)!r}), label="client")
        controller = lp.launch(program, launch_type="ray", ray_address=ADDRESS, termination_notice_secs=2)
        assert controller.wait(120)
        print("PIDS", controller.node_pids()["flaky/0"])
        """
    )
    first, second = map(int, path.read_text().split())
    assert first != second  # A new process: Ray restarted the actor.
    assert f"PIDS {second}" in output  # The controller tracks the restarted instance.
    assert "Node 'flaky/0' failed; restarting it (1/1)" in output


def test_a_node_failing_past_its_restarts_fails_the_program(ray_cluster):
    output = ray_cluster.run(
        """
        import os
        program = lp.Program("exhausted")
        program.add_node(lp.PyNode(os._exit, 5), label="dies", max_restarts=1)
        controller = lp.launch(program, launch_type="ray", ray_address=ADDRESS, termination_notice_secs=2)
        try:
            controller.wait(120)
        except lp.NodeError as error:
            print("CAUGHT", error.node_name)
        """
    )
    assert "restarting it (1/1)" in output
    assert "CAUGHT dies/0" in output


def test_a_launcher_that_returns_waits_at_exit_until_a_node_stops_the_program(ray_cluster, tmp_path):
    out = tmp_path / "out"
    script = tmp_path / "launcher.py"
    script.write_text(LAUNCH_AND_RETURN)
    process = ray_cluster.namespace.popen(
        [sys.executable, str(script), str(out), "--lp_launch_type=ray"],
        env=dict(ray_cluster.env, RAY_ADDRESS=ADDRESS),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, _ = process.communicate(timeout=DRIVER_TIMEOUT)
    assert process.returncode == 0, output
    assert lines(out) == ["[0, 1]"] * 3


def _start_waiting_program(ray_cluster, tmp_path):
    out = tmp_path / "out"
    script = tmp_path / "launcher.py"
    script.write_text(LAUNCH_AND_RETURN)
    process = ray_cluster.namespace.popen(
        [sys.executable, str(script), str(out), "wait", "--lp_launch_type=ray", "--lp_termination_notice_secs=2"],
        env=dict(ray_cluster.env, RAY_ADDRESS=ADDRESS),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    wait_until(lambda: out.exists() and len(lines(out)) == 3, "the consumer's results", timeout=DRIVER_TIMEOUT)
    return process


def test_ctrl_c_stops_the_program_and_leaves_no_actor(ray_cluster, tmp_path):
    process = _start_waiting_program(ray_cluster, tmp_path)
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "Stopping program 'consumer_producers'" in output
    assert not ray_cluster.node_actors()


def test_the_drivers_death_leaves_no_actor(ray_cluster, tmp_path):
    process = _start_waiting_program(ray_cluster, tmp_path)
    # The consumer's node ends when its run() returns (the launcher then frees its actor); the producers' keep
    # serving until the driver dies.
    wait_until(lambda: len(ray_cluster.node_actors()) == 2, "the consumer's actor to end", timeout=60)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    wait_until(lambda: not ray_cluster.node_actors(), "Ray to end the dead driver's actors", timeout=60)


def test_a_placement_no_node_can_satisfy_is_reported_naming_the_group(ray_cluster, tmp_path):
    output = ray_cluster.run(
        f"""
        from test_launch_programs import make_consumer_producers
        try:
            lp.launch(make_consumer_producers(2, {str(tmp_path / "out")!r}), launch_type="ray", ray_address=ADDRESS,
                      ray_resources={{"producer": {{"num_cpus": 1, "resources": {{"gpu_host": 1}}}}}})
        except lp.LaunchError as error:
            print("CAUGHT", error)
        try:
            lp.launch(make_consumer_producers(2, {str(tmp_path / "out")!r}), launch_type="ray", ray_address=ADDRESS,
                      ray_resources={{"consumer": {{"num_cpu": 1}}}})
        except lp.LaunchError as error:
            print("CAUGHT", error)
        """
    )
    assert "CAUGHT Group 'producer' requests {'CPU': 1, 'gpu_host': 1}" in output
    assert "no node of the Ray cluster has" in output
    assert "CAUGHT ray_resources['consumer'] = {'num_cpu': 1} is not valid for Ray" in output


def test_a_cluster_across_the_network_without_token_auth_is_refused(ray_cluster):
    # Refused before connecting: nothing is sent to 10.0.0.1 (which nothing in this namespace could reach).
    output = ray_cluster.run(
        """
        try:
            lp.launch(lp.make_program(lp.PyNode(print)), launch_type="ray", ray_address="10.0.0.1:6379")
        except lp.LaunchError as error:
            print("CAUGHT", error)
        """
    )
    assert "CAUGHT The Ray cluster at 10.0.0.1 is reached over the network without token authentication" in output
    assert "--ray_allow_unauthenticated" in output


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_tabular_partitioned_q_learning_reaches_the_optimum_on_ray(ray_cluster, tmp_path):
    run_dir = tmp_path / "run"
    ray_cluster.run(
        f"""
        from agents import run
        argv = ["--agent", "tabular", "--env", "Taxi-v4", "--config", "mode=partitioned", "--config", "num_workers=3"]
        argv += ["--launch_type", "ray", "--ray_address", ADDRESS, "--max_seconds", "180"]
        result = run.main([*argv, "--run_dir", {str(run_dir)!r}])
        assert result["optimal"] and result["stopped_by"] == "solved", result
        """
    )
    result = json.loads((run_dir / "result.json").read_text())
    assert result["optimal"] and result["steps"] > 0 and result["merges"] > 0
    assert np.load(run_dir / "q_table.npy").shape == (500, 6)
    nodes = json.loads((run_dir / "program.json").read_text())["nodes"]
    assert sorted(node["label"] for node in nodes) == ["coordinator", "worker", "worker", "worker"]
    assert len({node["pid"] for node in nodes}) == 4  # Each node an actor of its own.
    assert next(node for node in nodes if node["label"] == "coordinator")["address"].startswith("127.0.0.1:")
