"""Launchpad's example programs (hello_world, consumer_producers, batching, program_wait), ported
to `import launch as lp` and run under every launch type: real threads, processes and gRPC."""

import os
import threading
import time

import numpy as np
import pytest
from absl import logging
from conftest import wait_until

import launch as lp

# The same programs run under "ray" in tests/test_launch_ray.py, inside a network namespace of their own: a Ray
# instance started here would listen on the machine's network.
LAUNCH_TYPES = [t for t in lp.LAUNCH_TYPES if t != "ray"]


def record(path, line):
    with open(path, "a") as f:
        f.write(f"{line}\n")


def lines(path):
    with open(path) as f:
        return f.read().splitlines()


# hello_world ------------------------------------------------------------------------------------


class HelloWorld:
    def __init__(self, path):
        self._path = path

    def run(self):
        print("Hello World!!!", flush=True)
        logging.info("hello from absl logging")
        record(self._path, "hello")


@pytest.mark.parametrize("launch_type", LAUNCH_TYPES)
def test_hello_world(launch_type, tmp_path):
    program = lp.Program("hello_world")
    program.add_node(lp.PyClassNode(HelloWorld, str(tmp_path / "out")), label="hello_printer")
    controller = lp.launch(program, launch_type=launch_type, log_dir=str(tmp_path / "logs"))
    assert controller.wait(60)  # The program ends when its only node ends.
    assert lines(tmp_path / "out") == ["hello"]
    if launch_type == "local_mp":
        log = (tmp_path / "logs" / "hello_printer_0.log").read_text()
        assert "Hello World!!!" in log
        assert "hello from absl logging" in log  # absl flags were parsed in the node process.


# consumer_producers -----------------------------------------------------------------------------


class Consumer:
    def __init__(self, producers, path):
        self._producers = producers
        self._path = path

    def run(self):
        for _ in range(10):
            self.step()
        lp.stop()

    def step(self):
        futures = [producer.futures.work(context) for context, producer in enumerate(self._producers)]
        record(self._path, [future.result() for future in futures])


class Producer:
    def work(self, context):
        return context


def make_consumer_producers(num_producers, path):
    program = lp.Program("consumer_producers")
    with program.group("producer"):
        producers = [program.add_node(lp.CourierNode(Producer)) for _ in range(num_producers)]
    program.add_node(lp.CourierNode(Consumer, producers=producers, path=path), label="consumer")
    return program


@pytest.mark.parametrize("launch_type", LAUNCH_TYPES)
def test_consumer_producers(launch_type, tmp_path):
    path = str(tmp_path / "out")
    controller = lp.launch(make_consumer_producers(3, path), launch_type=launch_type)
    assert controller.wait(60)
    assert lines(path) == ["[0, 1, 2]"] * 10


def test_consumer_driven_from_the_test_as_in_launchpads_launch_test(tmp_path):
    path = str(tmp_path / "out")
    program = make_consumer_producers(2, path)
    (consumer_node,) = program.groups["consumer"]
    consumer_node.disable_run()
    controller = lp.launch(program, launch_type="test_mt")
    consumer = consumer_node.create_handle().dereference()
    for _ in range(3):
        consumer.step()
    consumer.close()
    assert lines(path) == ["[0, 1]"] * 3
    controller.stop()
    assert controller.wait(30)


# batching ---------------------------------------------------------------------------------------


class BatchingClient:
    def __init__(self, client_id, server, path):
        self._client_id = client_id
        self._server = server
        self._path = path

    def run(self):
        for x in range(self._client_id, self._client_id + 10):
            result = self._server.compute([x, x + 1])
        record(self._path, f"{self._client_id} {result.tolist()}")
        if self._client_id == 0:
            lp.stop()


class BatchingServer:
    def __init__(self, batch_size):
        self._sum = None
        self.compute = lp.batched_handler(batch_size=batch_size, timeout=20.0)(self.compute)

    def compute(self, values):
        result = np.sum(values, axis=0)
        self._sum = result if self._sum is None else self._sum + result
        return np.tile(self._sum, (len(values), 1))


@pytest.mark.parametrize("launch_type", LAUNCH_TYPES)
def test_batching(launch_type, tmp_path):
    path = str(tmp_path / "out")
    program = lp.Program("batching")
    server = program.add_node(lp.CourierNode(BatchingServer, 2), label="server")
    with program.group("clients"):
        for client_id in range(2):
            program.add_node(lp.CourierNode(BatchingClient, client_id, server, path))
    controller = lp.launch(program, launch_type=launch_type)
    assert controller.wait(60)
    # Every call was batched with the other client's: both see the same running sums.
    # Step k sums [k, k+1] + [k+1, k+2]; over 10 steps: [100, 120].
    assert sorted(lines(path)) == ["0 [100, 120]", "1 [100, 120]"]


# program_wait (stop API) ------------------------------------------------------------------------


def _ready(path):
    """Tells _stop_program that the calling node now waits for the stop."""
    record(f"{path}.ready", "ready")


def _sleep(path):
    lp.register_stop_handler(lambda: record(path, "handler"))
    _ready(path)
    while not lp.wait_for_stop(0.2):
        pass
    record(path, "sleep")


def _wait_for_stop(path):
    _ready(path)
    assert lp.wait_for_stop()
    record(path, "wait_for_stop")


def _stop_event(path):
    _ready(path)
    lp.stop_event().wait()
    record(path, "stop_event")


def _infinite_sleep(path):
    record(path, f"pid {os.getpid()}")
    _ready(path)
    while True:  # Never stops by itself; sleeps in slices so that a thread can be killed between them.
        time.sleep(0.05)


def _stop_program(path, waiting_nodes):
    ready = f"{path}.ready"
    wait_until(
        lambda: os.path.exists(ready) and len(lines(ready)) >= waiting_nodes,
        f"{waiting_nodes} nodes to wait for the stop",
    )
    lp.stop()


@pytest.mark.parametrize("launch_type", LAUNCH_TYPES)
def test_program_wait_stop_api(launch_type, tmp_path, capfd):
    path = str(tmp_path / "out")
    program = lp.Program("program_wait")
    waiting = (_sleep, _wait_for_stop, _stop_event, _infinite_sleep)
    for fn in waiting:
        program.add_node(lp.CourierNode(fn, path), label=fn.__name__.strip("_"))
    program.add_node(lp.CourierNode(_stop_program, path, len(waiting)), label="stop_program")
    controller = lp.launch(program, launch_type=launch_type, termination_notice_secs=2)
    assert controller.wait(60)
    # The infinite sleeper never stops by itself: it is killed once the notice has passed.
    err = capfd.readouterr().err
    assert "Nodes that did not stop within 2s: ['infinite_sleep/0']; killing them." in err
    assert "abandoned" not in err
    out = lines(path)
    assert {"handler", "sleep", "wait_for_stop", "stop_event"} <= set(out)
    if launch_type == "local_mp":
        pid = int(next(line for line in out if line.startswith("pid"))[4:])
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# failures ---------------------------------------------------------------------------------------


def _crash():
    raise ZeroDivisionError("crash on purpose")


def test_crashing_node_stops_the_program_and_names_itself(tmp_path):
    program = lp.Program("crash")
    program.add_node(lp.CourierNode(_wait_for_stop, str(tmp_path / "out")), label="server")
    program.add_node(lp.PyNode(_crash), label="crasher")
    controller = lp.launch(program, launch_type="test_mt", termination_notice_secs=5)
    with pytest.raises(lp.NodeError, match="'crasher/0'") as caught:
        controller.wait(30)
    assert "ZeroDivisionError: crash on purpose" in str(caught.value)
    assert "in _crash" in str(caught.value)
    assert lines(tmp_path / "out") == ["wait_for_stop"]  # The other node was stopped.


def test_bad_programs_get_clear_errors():
    program = lp.Program("bad")
    with pytest.raises(ValueError, match="needs a label"):
        program.add_node(lp.PyNode(print))
    with pytest.raises(ValueError, match="cannot be nested"):
        with program.group("a"):
            with program.group("b"):
                pass
    with pytest.raises(ValueError, match="Unknown launch type"):
        lp.launch(lp.make_program(lp.PyNode(print)), launch_type="local_docker")
    handle = program.add_node(lp.CourierNode(Producer), label="producer")
    with pytest.raises(AttributeError, match="not a client"):
        handle.work(1)
    elsewhere = lp.Program("elsewhere")
    elsewhere.add_node(lp.PyNode(print, handle), label="user")
    with pytest.raises(ValueError, match="Node user/0 receives a handle of node producer/0, which is not part of"):
        lp.launch(elsewhere, launch_type="test_mt")
    unpicklable = lp.make_program(lp.PyNode(print, threading.Lock()))
    with pytest.raises(ValueError, match="Node node/0: its arguments cannot be sent .*cannot pickle '_thread.lock'"):
        lp.launch(unpicklable, launch_type="local_mp")


# ReverbNode -------------------------------------------------------------------------------------


def _priority_tables():
    import replay

    return [replay.tables.queue("queue", max_size=100)]


def _reverb_writer(client, path):
    for i in range(5):
        client.insert(np.array([i], np.int32), priorities={"queue": 1.0})
    record(path, client.server_info()["queue"].current_size)
    lp.stop()


def test_reverb_node_handle_is_a_reverb_client(tmp_path):
    path = str(tmp_path / "out")
    program = lp.Program("reverb")
    replay_handle = program.add_node(lp.ReverbNode(_priority_tables), label="replay")
    program.add_node(lp.PyNode(_reverb_writer, replay_handle, path), label="writer")
    controller = lp.launch(program, launch_type="test_mt")
    assert controller.wait(60)
    assert lines(path) == ["5"]


def test_reverb_node_checkpoints_periodically(tmp_path):
    program = lp.Program("reverb_checkpoint")
    program.add_node(
        lp.ReverbNode(_priority_tables, checkpoint_ctor=lambda: str(tmp_path), checkpoint_time_delta_minutes=0.01),
        label="replay",
    )
    program.add_node(lp.PyNode(_stop_when_checkpointed, str(tmp_path)), label="watcher")
    controller = lp.launch(program, launch_type="test_mt")
    assert controller.wait(60)
    assert list(tmp_path.glob("*/DONE"))


def _stop_when_checkpointed(directory):
    import pathlib

    while not list(pathlib.Path(directory).glob("*/DONE")) and not lp.wait_for_stop(0.1):
        pass
    lp.stop()


def _signed_queue():
    import tensorflow as tf

    import replay

    return [replay.tables.queue("queue", max_size=100, signature=tf.TensorSpec([], tf.int32))]


def _sample_until_stop(client, path):
    """Samples an empty queue (in-process: Reverb serves it without gRPC) until the program stops."""
    import replay

    record(path, "sampling")
    while not lp.stop_event().is_set():
        try:
            next(iter(replay.make_numpy_iterator(client.server_address, "queue", 1, rate_limiter_timeout_ms=200)))
        except StopIteration:
            pass  # Nothing to sample for 0.2 s: check for a stop, then wait again.
    record(path, "stopped")


def test_a_replay_node_outlives_the_samplers_of_its_own_process(tmp_path):
    """A sampler in the replay server's process waiting on a table never returns once the server has stopped,
    timeout or not: under threads launch types replay stops after the other nodes."""
    path = str(tmp_path / "out")
    program = lp.Program("in_process_sampler")
    replay_handle = program.add_node(lp.ReverbNode(_signed_queue), label="replay")
    program.add_node(lp.PyNode(_sample_until_stop, replay_handle, path), label="sampler")
    controller = lp.launch(program, launch_type="test_mt", termination_notice_secs=10)
    wait_until(lambda: os.path.exists(path), "the sampler to start")
    controller.stop()
    assert controller.wait(60)
    assert lines(path) == ["sampling", "stopped"]


# colocation and restarts ------------------------------------------------------------------------


class Pid:
    def pid(self):
        return os.getpid()


def _compare_pids(colocated, separate, path):
    record(path, f"{colocated[0].pid() == colocated[1].pid()} {colocated[0].pid() == separate.pid()}")
    lp.stop()


def test_multi_threading_colocation_shares_one_process(tmp_path):
    path = str(tmp_path / "out")
    program = lp.Program("colocation")
    colocated = program.add_node(lp.MultiThreadingColocation([lp.CourierNode(Pid), lp.CourierNode(Pid)]), label="pair")
    separate = program.add_node(lp.CourierNode(Pid), label="single")
    program.add_node(lp.PyNode(_compare_pids, colocated, separate, path), label="checker")
    controller = lp.launch(program, launch_type="local_mp", termination_notice_secs=2)
    assert controller.wait(60)
    assert lines(path) == ["True False"]


def _fail_first_time(path):
    record(path, "start")
    if len(lines(path)) == 1:
        raise RuntimeError("first start fails")


def test_restart_under_threads(tmp_path):
    path = str(tmp_path / "out")
    program = lp.Program("restart_threads")
    with program.group("flaky", max_restarts=1):
        program.add_node(lp.PyNode(_fail_first_time, path))
    controller = lp.launch(program, launch_type="test_mt")
    assert controller.wait(30)
    assert lines(path) == ["start", "start"]


def test_test_case_cleanup_stops_the_program(tmp_path):
    import unittest

    path = str(tmp_path / "out")

    class ProgramTest(unittest.TestCase):
        def test_serves(self):
            program = lp.Program("served")
            program.add_node(lp.CourierNode(_wait_for_stop, path), label="server")
            lp.launch(program, launch_type="test_mt", test_case=self)

    result = unittest.TextTestRunner(stream=open(os.devnull, "w")).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(ProgramTest)
    )
    assert result.wasSuccessful()
    assert lines(path) == ["wait_for_stop"]
