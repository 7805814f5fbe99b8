"""launch_type="ray" across two "machines": a Ray head and a worker node in two network namespaces of this module,
joined by a veth pair (10.231.0.1 and 10.231.0.2), with Ray's token authentication. The DQN program runs with
replay and learner pinned to the head's machine and the actors to the other."""

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile

import pytest
from _netns import NetworkNamespace, RayNode, connect, node_actors, ray_env
from conftest import wait_until
from test_launch_lifecycle import LAUNCH_AND_RETURN
from test_launch_programs import lines

pytest.importorskip("ray")  # The `ray` extra; `make test` installs it.

HEAD_IP, WORKER_IP = "10.231.0.1", "10.231.0.2"
ADDRESS = f"{HEAD_IP}:6380"
RESOURCES = {
    "replay": {"resources": {"head_machine": 1}},
    "learner": {"resources": {"head_machine": 1}},
    "actor": {"resources": {"worker_machine": 1}},
}


class TwoMachines:
    def __init__(self):
        self.head_ns, self.worker_ns = NetworkNamespace(), NetworkNamespace()
        connect(self.head_ns, self.worker_ns, HEAD_IP, WORKER_IP)
        self.env = ray_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
        self.temp_dir = tempfile.mkdtemp(prefix="encray2")
        self.nodes = []
        self.nodes.append(
            RayNode(
                self.head_ns,
                self.temp_dir,
                self.env,
                f"--node-ip-address={HEAD_IP}",
                "--port=6380",
                "--num-cpus=2",
                '--resources={"head_machine": 100}',
                "--include-dashboard=false",
                detached=True,
            )
        )
        self.nodes[0].wait_until_up(ADDRESS, self.env)
        self.nodes.append(
            RayNode(
                self.worker_ns,
                self.temp_dir,
                self.env,
                f"--address={ADDRESS}",
                f"--node-ip-address={WORKER_IP}",
                "--num-cpus=2",
                '--resources={"worker_machine": 100}',
                head=False,
                detached=True,
            )
        )
        self.nodes[1].wait_until_up(ADDRESS, self.env, nodes=2)

    def all_node_actors(self):
        return node_actors(self.head_ns, self.worker_ns)

    def close(self):
        for node in reversed(self.nodes):
            node.stop()
        self.worker_ns.close()
        self.head_ns.close()


@pytest.fixture(scope="module")
def machines():
    machines = TwoMachines()
    try:
        yield machines
    finally:
        machines.close()


@pytest.fixture
def two_machines(machines):
    yield machines
    wait_until(lambda: not machines.all_node_actors(), "every node actor to end", timeout=60)


@pytest.mark.timeout(720)  # Ray start-up, TensorFlow imported by 7 actors, and solving, on 2 shared cores.
def test_dqn_across_two_machines_survives_a_killed_actor_and_solves(two_machines, tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "agents.run", "--launch_type", "ray", "--ray_address", ADDRESS]
    command += ["--ray_resources", json.dumps(RESOURCES), "--run_dir", str(run_dir), "--max_seconds", "420"]
    log = open(tmp_path / "driver.log", "w")
    driver = two_machines.head_ns.popen(command, env=two_machines.env, stdout=log, stderr=subprocess.STDOUT)
    try:

        def actor_pid():
            try:
                nodes = json.loads((run_dir / "program.json").read_text())["nodes"]
            except (OSError, ValueError, KeyError):
                return None
            return next((n["pid"] for n in nodes if n["label"] == "actor" and n["index"] == 0 and n["pid"]), None)

        wait_until(lambda: actor_pid() is not None or driver.poll() is not None, "actor/0 to start", timeout=180)
        pid = actor_pid()
        assert pid in node_actors(two_machines.worker_ns)  # Placed on the other machine.
        os.kill(pid, signal.SIGKILL)
        driver.wait(timeout=480)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        log.close()
    output = (tmp_path / "driver.log").read_text()
    assert driver.returncode == 0, output[-5000:]
    assert "Node 'actor/0' failed; restarting it (1/3)" in output
    assert "solved in" in output, output[-3000:]
    nodes = {f"{n['label']}/{n['index']}": n for n in json.loads((run_dir / "program.json").read_text())["nodes"]}
    for name, ip in (("replay/0", HEAD_IP), ("learner/0", HEAD_IP), ("actor/0", WORKER_IP), ("actor/1", WORKER_IP)):
        assert nodes[name]["address"].startswith(f"{ip}:"), nodes[name]
    assert nodes["actor/0"]["pid"] != pid  # The restarted actor.
    assert json.loads((run_dir / "result.json").read_text())["solved"]


def test_the_drivers_death_leaves_no_actor_on_either_machine(two_machines, tmp_path):
    out = tmp_path / "out"
    script = tmp_path / "launcher.py"
    script.write_text(LAUNCH_AND_RETURN)
    command = [sys.executable, str(script), str(out), "wait", "--lp_launch_type=ray"]
    env = dict(two_machines.env, RAY_ADDRESS=ADDRESS)
    driver = two_machines.head_ns.popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: out.exists() and len(lines(out)) == 3, "the consumer's results", timeout=180)
        # The consumer's node ends when its run() returns (the launcher then frees its actor); the producers' two
        # actors, placed by Ray on either machine, keep serving until the driver dies.
        wait_until(lambda: len(two_machines.all_node_actors()) == 2, "the consumer's actor to end", timeout=60)
        driver.kill()
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    wait_until(lambda: not two_machines.all_node_actors(), "Ray to end the dead driver's actors", timeout=90)


def test_a_driver_without_token_auth_refuses_the_cluster_before_connecting(two_machines):
    env = dict(two_machines.env, RAY_AUTH_MODE="disabled")
    del env["RAY_AUTH_TOKEN"]
    code = (
        "import launch as lp\n"
        "try:\n"
        f"    lp.launch(lp.make_program(lp.PyNode(print)), launch_type='ray', ray_address={ADDRESS!r})\n"
        "except lp.LaunchError as error:\n"
        "    print('CAUGHT', error)\n"
    )
    output = two_machines.head_ns.run([sys.executable, "-c", code], env=env, timeout=120)
    assert f"CAUGHT The Ray cluster at {HEAD_IP} is reached over the network without token authentication" in output
