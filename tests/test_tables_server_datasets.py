"""Tables, rate limiters, ReplayServer checkpoints, datasets and PriorityUpdater on real Reverb servers."""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import dm_env
import numpy as np
import psutil
import pytest
import reverb
import tensorflow as tf
from conftest import wait_until

import replay

SPEC = replay.EnvironmentSpec(
    observations=dm_env.specs.Array((4,), np.float32),
    actions=dm_env.specs.DiscreteArray(2),
    rewards=dm_env.specs.Array((), np.float32),
    discounts=dm_env.specs.Array((), np.float32),
)
SIGNATURE = replay.NStepTransitionAdder.signature(SPEC)


def fill(client, table, count, priority=lambda i: 1.0):
    """Writes `count` one-step transitions whose observation is [i, i, i, i]."""
    with client.trajectory_writer(num_keep_alive_refs=1) as writer:
        for i in range(count):
            o = np.full(4, i, np.float32)
            writer.append(replay.Transition(o, np.int32(i % 2), np.float32(i), np.float32(1), o + 1))
            writer.create_item(table, priority(i), tree_last(writer.history))


def tree_last(history):
    import tree

    return tree.map_structure(lambda column: column[-1], history)


def test_rate_limiter_matches_acme_error_buffer():
    limiter = replay.tables.rate_limiter(samples_per_insert=0.5, min_size=1000, tolerance=0.1)
    assert (limiter._min_diff, limiter._max_diff) == (450.0, 550.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(samples_per_insert=8.0, min_size=10, tolerance=0.05), r"deadlock.*Raise tolerance to >= 0\.1"),
        (dict(samples_per_insert=0.0, min_size=10, tolerance=0.1), "samples_per_insert must be > 0"),
        (dict(samples_per_insert=1.0, min_size=0, tolerance=0.1), "min_size must be >= 1"),
        (dict(samples_per_insert=1.0, min_size=10, tolerance=0.0), "tolerance must be > 0"),
    ],
)
def test_rate_limiter_rejects_settings_that_cannot_work(kwargs, match):
    with pytest.raises(ValueError, match=match):
        replay.tables.rate_limiter(**kwargs)


def test_table_rejects_min_size_above_max_size():
    with pytest.raises(ValueError, match=r"min_size \(100\) > max_size \(10\)"):
        replay.tables.prioritized("t", max_size=10, min_size=100)
    with pytest.raises(ValueError, match="priority_exponent must be >= 0"):
        replay.tables.prioritized("t", max_size=10, priority_exponent=-1)


def test_prioritized_sampling_skews_to_high_priorities():
    table = replay.tables.prioritized("p", 100, priority_exponent=1.0, signature=SIGNATURE)
    with replay.ReplayServer([table]) as server:
        client = server.client()
        fill(client, "p", 10, priority=lambda i: 91.0 if i == 0 else 1.0)  # P(item 0) = 91 / 100.
        hits = sum(
            int(s.data.observation[0] == 0)
            for s in client.sample("p", 2000, unpack_as_table_signature=True, emit_timesteps=False)
        )
        assert 0.86 < hits / 2000 < 0.96


def test_queue_is_consumed_in_order():
    with replay.ReplayServer([replay.tables.queue("q", 10, signature=SIGNATURE)]) as server:
        client = server.client()
        fill(client, "q", 5)
        order = [int(s.data[0][0]) for s in client.sample("q", 5, emit_timesteps=False)]
        assert order == [0, 1, 2, 3, 4]
        assert client.server_info()["q"].current_size == 0


def test_checkpoint_restores_identical_items():
    with tempfile.TemporaryDirectory() as directory:
        with replay.ReplayServer(
            [replay.tables.queue("q", 100, signature=SIGNATURE)], checkpoint_dir=directory
        ) as server:
            fill(server.client(), "q", 7)
            path = server.checkpoint()
            assert path.startswith(directory)
        with replay.ReplayServer(
            [replay.tables.queue("q", 100, signature=SIGNATURE)], checkpoint_dir=directory
        ) as restored:
            client = restored.client()
            assert client.server_info()["q"].current_size == 7
            items = [s.data for s in client.sample("q", 7, emit_timesteps=False)]
            for i, item in enumerate(items):
                np.testing.assert_array_equal(item[0], np.full(4, i, np.float32))
                assert item[2] == np.float32(i)


def test_server_without_checkpoint_dir_leaves_no_temp_dir():
    before = set(os.listdir(tempfile.gettempdir()))
    server = replay.ReplayServer([replay.tables.uniform("u", 10)])
    assert server.checkpoint()
    server.stop()
    leftovers = {d for d in set(os.listdir(tempfile.gettempdir())) - before if d.startswith("encore-replay-")}
    assert leftovers == set()


def test_dataset_batches_keep_keys_and_probabilities():
    table = replay.tables.prioritized("p", 1000, signature=SIGNATURE)
    with replay.ReplayServer([table]) as server:
        fill(server.client(), "p", 50, priority=lambda i: 1.0 + i)
        dataset = replay.make_dataset(server.address, "p", batch_size=8)
        sample = next(iter(dataset))
        assert isinstance(sample, reverb.ReplaySample)
        assert sample.info.key.shape == (8,) and sample.info.key.dtype == tf.uint64
        assert sample.data.observation.shape == (8, 4)
        np.testing.assert_allclose(
            sample.info.probability.numpy(),
            (1.0 + sample.data.reward.numpy()) ** 0.6 / np.sum((1.0 + np.arange(50)) ** 0.6),
            rtol=1e-5,
        )
        batch = next(replay.make_numpy_iterator(server.address, "p", batch_size=4))
        assert batch.data.next_observation.shape == (4, 4) and batch.info.table_size.tolist() == [50] * 4


def test_dataset_errors_name_the_problem():
    with replay.ReplayServer(
        [replay.tables.uniform("u", 10, signature=SIGNATURE), replay.tables.uniform("raw", 10)]
    ) as server:
        with pytest.raises(ValueError, match=r"unknown table 'nope'.*\['raw', 'u'\]"):
            replay.make_dataset(server.address, "nope", batch_size=2)
        with pytest.raises(ValueError, match="table 'raw' has no signature"):
            replay.make_dataset(server.address, "raw", batch_size=2)


def test_dataset_bad_address_fails_fast_naming_it():
    with pytest.raises(ConnectionError, match="no Reverb server answered at localhost:1 within 1s"):
        replay.make_dataset("localhost:1", "p", batch_size=2, get_signature_timeout_secs=1)


def test_priority_updater_batches_and_flushes():
    table = replay.tables.prioritized("p", 100, priority_exponent=1.0, signature=SIGNATURE)
    with replay.ReplayServer([table]) as server:
        client = server.client()
        fill(client, "p", 20)
        keys = sorted({int(s.info.key) for s in client.sample("p", 400, emit_timesteps=False)})
        assert len(keys) == 20
        with replay.PriorityUpdater(client, "p") as updater:
            updater.update(keys, np.zeros(20))
            updater.update(keys[:1], [5.0])  # The newest priority of a key wins.
            updater.flush(timeout=10)
            samples = list(client.sample("p", 20, emit_timesteps=False))
            assert {int(s.info.key) for s in samples} == {keys[0]}
            assert all(float(s.info.priority) == 5.0 for s in samples)
            updater.update(keys[1:2], [7.0])
        sampled = {int(s.info.key): float(s.info.priority) for s in client.sample("p", 50, emit_timesteps=False)}
        assert sampled[keys[1]] == 7.0  # close() flushed the last update.


def test_priority_updater_unknown_table():
    with replay.ReplayServer([replay.tables.uniform("u", 10)]) as server:
        with pytest.raises(ValueError, match=r"unknown table 'p'.*\['u'\]"):
            replay.PriorityUpdater(server.client(), "p")


def test_adder_close_before_the_first_write_makes_every_write_fail():
    table = replay.tables.uniform("u", 100, samples_per_insert=1.0, min_size=2, tolerance=1.0)
    with replay.ReplayServer([table]) as server:
        adder = replay.NStepTransitionAdder(server.client(), n_step=1, discount=1.0, priority_fns={"u": None})
        adder.close()
        with pytest.raises(replay.AdderClosedError, match="closed: create a new adder"):
            adder.add_first(dm_env.restart(np.zeros(4, np.float32)))
        assert server.client().server_info()["u"].current_size == 0


def test_adder_close_unblocks_an_insert_waiting_on_the_rate_limiter():
    table = replay.tables.uniform("u", 100, samples_per_insert=1.0, min_size=2, tolerance=1.0)
    with replay.ReplayServer([table]) as server:
        client = server.client()
        adder = replay.NStepTransitionAdder(
            client, n_step=1, discount=1.0, priority_fns={"u": None}, max_in_flight_items=1
        )
        errors = []

        def write():  # Nothing samples, so the limiter blocks this thread after a few inserts.
            try:
                adder.add_first(dm_env.restart(np.zeros(4, np.float32)))
                for _ in range(50):
                    adder.add(np.int32(0), dm_env.transition(np.float32(0), np.zeros(4, np.float32), np.float32(1)))
            except RuntimeError as error:
                errors.append(error)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()

        def inserts_blocked() -> bool:  # Reverb's CanInsert: (inserts + 1) * samples_per_insert - samples <= max_diff.
            info = client.server_info(timeout=5)["u"]
            limiter = info.rate_limiter_info
            return (info.current_size + 1) * limiter.samples_per_insert > limiter.max_diff

        wait_until(inserts_blocked, "the rate limiter to hold back inserts")
        adder.close()
        writer.join(timeout=30)
        assert not writer.is_alive(), "close() did not unblock the waiting insert"
        # Blocked in Reverb's flush (its own error), or between two adds (ours): either way the writes ended.
        assert len(errors) == 1
        assert isinstance(errors[0], replay.AdderClosedError) or "Close has been called" in str(errors[0])


def test_a_port_in_use_is_refused_naming_the_port():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match=f"port {port} is in use: pass another port"):
            replay.ReplayServer([replay.tables.queue("q", 10)], port=port)


def test_a_queue_smaller_than_a_batch_is_refused_naming_the_fix():
    table = replay.tables.queue("q", 10, signature=SIGNATURE)
    with replay.ReplayServer([table]) as server:
        with pytest.raises(ValueError, match="holds at most 10 items, each sampled once, so a batch of 16"):
            replay.make_dataset(server.address, "q", batch_size=16)


_SERVER_PROCESS = """
import sys
import replay
from test_tables_server_datasets import SIGNATURE
server = replay.ReplayServer([replay.tables.queue("priority_table", 100_000, signature=SIGNATURE)])
print(server.port, flush=True)
server.wait()
"""


def _server_process():
    """A Reverb server in its own process (a queue table "priority_table"), and its port."""
    tests = os.path.dirname(os.path.abspath(__file__))
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER_PROCESS],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([tests, os.path.dirname(tests)])),
    )
    return server, int(server.stdout.readline())


def test_an_adder_whose_server_died_raises_naming_the_address():
    server, port = _server_process()
    try:
        adder = replay.NStepTransitionAdder(reverb.Client(f"localhost:{port}"), 1, 1.0, timeout_ms=500)
        step = dm_env.transition(np.float32(0), np.zeros(4, np.float32), np.float32(1))
        adder.add_first(dm_env.restart(np.zeros(4, np.float32)))
        adder.add(np.int32(0), step)
        adder.flush(timeout_ms=30_000)
    finally:
        server.kill()
        server.communicate(timeout=30)
    with pytest.raises(ConnectionError, match=f"no Reverb server answered at localhost:{port}"):
        for _ in range(100):  # The first writes may still fit in the in-flight window.
            adder.add(np.int32(0), step)


def test_an_adder_held_by_the_rate_limiter_waits_past_its_timeout_while_the_server_answers():
    table = replay.tables.uniform("u", 100, samples_per_insert=1.0, min_size=2, tolerance=1.0, signature=SIGNATURE)
    with replay.ReplayServer([table]) as server:
        client = server.client()
        adder = replay.NStepTransitionAdder(
            client, n_step=1, discount=1.0, priority_fns={"u": None}, max_in_flight_items=1, timeout_ms=100
        )
        samples = replay.make_numpy_iterator(server.address, "u", 1, rate_limiter_timeout_ms=1000)
        errors = []

        def write():
            try:
                adder.add_first(dm_env.restart(np.zeros(4, np.float32)))
                for _ in range(12):
                    adder.add(np.int32(0), dm_env.transition(np.float32(0), np.zeros(4, np.float32), np.float32(1)))
                adder.flush(timeout_ms=30_000)
            except Exception as error:  # Reported by the assertion below.
                errors.append(error)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        wait_until(lambda: client.server_info(timeout=5)["u"].current_size >= 2, "the first inserts")
        deadline = time.monotonic() + 60
        while writer.is_alive() and time.monotonic() < deadline:  # Each sample lets one more insert through.
            next(samples)
            writer.join(timeout=0.2)
        assert not writer.is_alive() and not errors, errors
        assert client.server_info(timeout=5)["u"].num_episodes == 1


def test_priority_updater_close_has_a_deadline_when_the_server_stops_answering():
    server, port = _server_process()
    try:
        updater = replay.PriorityUpdater(reverb.Client(f"localhost:{port}"), "priority_table")
        updater.update([1], [2.0])
        updater.flush(timeout=30)
        server.send_signal(signal.SIGSTOP)  # Alive but silent: mutate_priorities waits on it for ever.
        stopped = psutil.Process(server.pid)
        wait_until(lambda: stopped.status() == psutil.STATUS_STOPPED, "the server process to stop")
        updater.update([1], [3.0])
        with pytest.raises(TimeoutError, match=f"at localhost:{port} not sent within 1.0s of close"):
            updater.close(timeout=1.0)
    finally:
        server.kill()  # The updater's thread then fails its call and ends.
        server.communicate(timeout=30)
