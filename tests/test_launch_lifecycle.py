"""local_mp lifecycle with a real launcher process: Ctrl-C, kill -9, crashes, restarts."""

import os
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest
from conftest import wait_until

import launch as lp

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A launcher script in the style of a Launchpad program: absl app, flags, no explicit wait.
LAUNCHER = textwrap.dedent("""
    import os, sys, threading, time
    from absl import app
    import launch as lp

    OUT = sys.argv[1]

    def record(line):
        with open(OUT, 'a') as f:
            f.write(f'{line}\\n')

    def run_tensorflow():
        # With 'tf' in argv nodes refer to TensorFlow, so local_mp forks them from its preloading process.
        import tensorflow as tf
        record(f'tf {float(tf.reduce_sum(tf.constant([1.0, 2.0])))}')

    def cooperative(use_tensorflow=None):
        record(f'up {os.getpid()}')
        if use_tensorflow:
            use_tensorflow()
        lp.wait_for_stop()
        record('cooperative stopped')

    def stubborn(use_tensorflow=None):
        record(f'up {os.getpid()}')
        if use_tensorflow:
            use_tensorflow()
        time.sleep(1000000)

    def crasher(use_tensorflow=None):
        while sum(line.startswith('up ') for line in open(OUT)) < 2:  # The others are up first.
            time.sleep(0.05)
        raise ZeroDivisionError('crash on purpose')

    def main(argv):
        if 'thread' in argv:  # A launcher running a thread of its own: its preloading processes are spawned.
            threading.Thread(target=threading.Event().wait, daemon=True).start()
        program = lp.Program('lifecycle')
        use_tensorflow = run_tensorflow if 'tf' in argv else None
        program.add_node(lp.CourierNode(cooperative, use_tensorflow), label='cooperative')
        program.add_node(lp.PyNode(stubborn, use_tensorflow), label='stubborn')
        if 'crash' in argv:
            program.add_node(lp.PyNode(crasher, use_tensorflow), label='crasher')
        lp.launch(program)

    if __name__ == '__main__':
        app.run(main)
""")


# Launchpad's consumer_producers example as it is written: main returns right after lp.launch(), the consumer
# ends the program with lp.stop() (which must reach the launcher's servers while it waits at interpreter exit).
# With 'wait' in argv the consumer never stops it, for Ctrl-C.
LAUNCH_AND_RETURN = textwrap.dedent("""
    import sys
    from absl import app
    import launch as lp

    OUT = sys.argv[1]

    class Consumer:
        def __init__(self, producers, stop):
            self._producers = producers
            self._stop = stop

        def run(self):
            for _ in range(3):
                results = [f.result() for f in [p.futures.work(i) for i, p in enumerate(self._producers)]]
                with open(OUT, 'a') as f:
                    f.write(f'{results}\\n')
            if self._stop:
                lp.stop()

    class Producer:
        def work(self, context):
            return context

    def main(argv):
        program = lp.Program('consumer_producers')
        with program.group('producer'):
            producers = [program.add_node(lp.CourierNode(Producer)) for _ in range(2)]
        program.add_node(lp.CourierNode(Consumer, producers, 'wait' not in argv), label='consumer')
        lp.launch(program)

    if __name__ == '__main__':
        app.run(main)
""")


def start_launcher(tmp_path, *args, notice=2, launch_type="local_mp", source=LAUNCHER, env=None):
    script = tmp_path / "launcher.py"
    script.write_text(source)
    out = tmp_path / "out"
    out.touch()
    command = [
        sys.executable,
        str(script),
        str(out),
        *args,
        f"--lp_launch_type={launch_type}",
        f"--lp_termination_notice_secs={notice}",
    ]
    env = dict(os.environ, PYTHONPATH=REPO, **(env or {}))
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True, start_new_session=True
    )
    return process, out


def node_pids(out, count):
    def pids():
        return [int(line.split()[1]) for line in out.read_text().splitlines() if line.startswith("up ")]

    # A deadline for a loaded machine, where the preloading process's TensorFlow import can take tens of seconds.
    wait_until(lambda: len(pids()) >= count, f"{count} nodes to come up", timeout=150)
    return pids()


def _alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_gone(pids):
    wait_until(lambda: not any(_alive(pid) for pid in pids), f"node processes {pids} to end")


# Kind -> (launcher arguments, environment). "spawned": ENCORE_PRELOAD=0, each node its own interpreter; "light":
# nodes without TensorFlow, forked from local_mp's light preloading process; "tensorflow": nodes that use
# TensorFlow, forked from its TensorFlow preloading process (launch._fork_server). The launcher runs one thread, so
# its preloading processes are forks of it, except with "thread", where they are spawned interpreters.
NODE_KINDS = {
    "spawned": ((), {"ENCORE_PRELOAD": "0"}),
    "light": ((), {}),
    "tensorflow": (("tf",), {}),
    "light, spawned preloading": (("thread",), {}),
}


def preloading_process(launcher_pid, kind):
    """The launcher's preloading process of `kind` (there is one once a node of that kind started)."""
    (server,) = [
        p
        for p in psutil.Process(launcher_pid).children()
        if f"launch._fork_server {launcher_pid} {kind.split(',')[0]}" in " ".join(p.cmdline())
    ]
    return server


def assert_started_as(kind, pids, launcher_pid, out):
    """Spawned nodes are the launcher's children; forked ones their preloading process's (and ran TensorFlow from
    the TensorFlow one), which is a fork of the launcher unless the launcher ran a thread."""
    parents = {psutil.Process(pid).ppid() for pid in pids}
    if kind == "spawned":
        assert parents == {launcher_pid}
    else:
        server = preloading_process(launcher_pid, kind)
        assert parents == {server.pid}
        assert ("(forked from the launcher)" in " ".join(server.cmdline())) is ("spawned" not in kind)
    if kind == "tensorflow":
        wait_until(lambda: out.read_text().count("tf 3.0") == len(pids), "the nodes' TensorFlow op")


@pytest.mark.parametrize("kind", NODE_KINDS)
def test_ctrl_c_stops_every_node_within_the_notice_and_exits_0(kind, tmp_path):
    args, env = NODE_KINDS[kind]
    process, out = start_launcher(tmp_path, *args, notice=2, env=env)
    pids = node_pids(out, 2)
    assert_started_as(kind, pids, process.pid, out)
    # Nodes run in process groups of their own, so Ctrl-C, which the terminal sends to the launcher's
    # whole (foreground) process group, reaches only the launcher: it stops the nodes itself.
    assert all(os.getpgid(pid) != os.getpgid(process.pid) for pid in pids)
    os.killpg(process.pid, signal.SIGINT)  # The launcher leads its group (start_new_session).
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "cooperative stopped" in out.read_text()
    assert "did not stop within 2s: ['stubborn/0']" in output  # Killed once the notice passed.
    assert_gone(pids)


@pytest.mark.parametrize("launch_type", ["local_mt", "local_mp"])
def test_a_launcher_that_returns_waits_at_exit_until_a_node_stops_the_program(launch_type, tmp_path):
    process, out = start_launcher(tmp_path, launch_type=launch_type, source=LAUNCH_AND_RETURN)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    assert out.read_text().splitlines() == ["[0, 1]"] * 3
    assert "cannot schedule new futures" not in output


@pytest.mark.parametrize("launch_type", ["local_mt", "local_mp"])
def test_ctrl_c_stops_a_program_the_launcher_waits_for_at_exit(launch_type, tmp_path):
    process, out = start_launcher(tmp_path, "wait", launch_type=launch_type, source=LAUNCH_AND_RETURN)
    wait_until(lambda: len(out.read_text().splitlines()) == 3, "the consumer's results")
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "Stopping program 'consumer_producers'" in output
    assert "abandoned" not in output  # Every node (thread or process) stopped on the notice.


@pytest.mark.parametrize("kind", NODE_KINDS)
def test_nodes_die_with_the_launcher_on_kill_9(kind, tmp_path):
    args, env = NODE_KINDS[kind]
    process, out = start_launcher(tmp_path, *args, env=env)
    pids = node_pids(out, 2)
    assert_started_as(kind, pids, process.pid, out)
    others = [] if kind == "spawned" else [preloading_process(process.pid, kind).pid]
    process.kill()
    process.wait(10)
    assert_gone(pids + others)
    process.stdout.close()


@pytest.mark.parametrize("kind", NODE_KINDS)
def test_crashing_node_fails_the_launcher_with_its_label_and_traceback(kind, tmp_path):
    args, env = NODE_KINDS[kind]
    process, out = start_launcher(tmp_path, "crash", *args, notice=2, env=env)
    output, _ = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "Node 'crasher/0' failed" in output
    assert "[crasher/0] ZeroDivisionError: crash on purpose" in output
    assert "cooperative stopped" in out.read_text()
    assert_gone(node_pids(out, 2))


class Flaky:
    """Serves its pid; `crash()` ends its process abruptly."""

    def pid(self):
        return os.getpid()

    def crash(self):
        os._exit(3)


def _restart_client(flaky, path):
    first = flaky.pid()
    try:
        flaky.crash()
    except ConnectionError:
        pass
    # Same handle: waits for the restarted node at the same address. A call that races the crashed process's
    # connection closing fails as a call to a node that is down; a few tries, never a loop that could spin forever.
    for attempt in range(3):
        try:
            second = flaky.pid()
            break
        except ConnectionError:
            if attempt == 2:
                raise
    with open(path, "w") as f:
        f.write(f"{first} {second}")
    lp.stop()


def test_restartable_node_is_restarted_and_its_handle_keeps_working(tmp_path, capfd):
    path = tmp_path / "pids"
    program = lp.Program("restart")
    flaky = program.add_node(lp.CourierNode(Flaky), label="flaky", max_restarts=1)
    program.add_node(lp.PyNode(_restart_client, flaky, str(path)), label="client")
    controller = lp.launch(program, launch_type="local_mp", termination_notice_secs=2)
    assert controller.wait(60)  # One failure is within max_restarts: no error.
    first, second = map(int, path.read_text().split())
    assert first != second
    assert controller.node_pids()["flaky/0"] == second  # The controller tracks the restarted process.
    assert "Node 'flaky/0' failed; restarting it (1/1)" in capfd.readouterr().err


def test_restart_budget_exhausted_fails_the_program():
    program = lp.Program("exhausted")
    program.add_node(lp.PyNode(os._exit, 5), label="dies", max_restarts=1)
    controller = lp.launch(program, launch_type="local_mp", termination_notice_secs=2)
    with pytest.raises(lp.NodeError, match=r"(?s)'dies/0'.*exited with status 5"):
        controller.wait(60)
