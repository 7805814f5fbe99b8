"""Sharded replay on two real Reverb servers: items land on both, the learner input takes batches from both and
knows where each key lives, and priority updates reach only the shard that holds the item."""

import json
import os
import threading

import dm_env
import numpy as np
import pytest
import reverb
from _dqn_run import run_dqn
from conftest import usage_error

import replay

SPEC = replay.EnvironmentSpec(
    observations=dm_env.specs.Array((), np.float32),
    actions=dm_env.specs.DiscreteArray(2),
    rewards=dm_env.specs.Array((), np.float32),
    discounts=dm_env.specs.Array((), np.float32),
)
ITEMS_PER_SHARD = 12
BATCH = 4


def _write(server, first_observation: float) -> None:
    """ITEMS_PER_SHARD one-step transitions whose observations start at `first_observation`."""
    adder = replay.NStepTransitionAdder(server.client(), n_step=1, discount=1.0, priority_fns={"t": None})
    adder.add_first(dm_env.restart(np.float32(first_observation)))
    for i in range(1, ITEMS_PER_SHARD):
        adder.add(np.int32(0), dm_env.transition(np.float32(0), np.float32(first_observation + i), np.float32(1)))
    adder.add(np.int32(0), dm_env.termination(np.float32(0), np.float32(first_observation + ITEMS_PER_SHARD)))
    adder.flush()


def _shard_of_observation(observation: float) -> int:
    return 0 if observation < 1000 else 1


@pytest.fixture
def shards():
    table = lambda: replay.tables.prioritized(  # noqa: E731
        "t", 1000, priority_exponent=1.0, signature=replay.NStepTransitionAdder.signature(SPEC)
    )
    with replay.ReplayServer([table()]) as first, replay.ReplayServer([table()]) as second:
        _write(first, 0.0)
        _write(second, 1000.0)
        yield first, second


class _Recording:
    """A real PriorityUpdater that also records every key it is asked to send."""

    def __init__(self, server):
        self.updater = replay.PriorityUpdater(server.client(), "t")
        self.keys = set()

    def update(self, keys, priorities):
        self.keys.update(np.asarray(keys, np.uint64).tolist())
        self.updater.update(keys, priorities)

    def close(self, timeout=None):
        self.updater.close(timeout)


def _priorities(server) -> dict:
    """key -> priority of every item of `server`'s table (sampled until each was seen)."""
    client, seen = server.client(), {}
    while len(seen) < ITEMS_PER_SHARD:
        for sample in client.sample("t", num_samples=64, emit_timesteps=False):
            seen[int(sample.info.key)] = float(sample.info.priority)
    return seen


def test_batches_come_from_both_shards_and_priorities_go_to_the_owner(shards):
    first, second = shards
    assert [s.client().server_info()["t"].current_size for s in shards] == [ITEMS_PER_SHARD] * 2
    samples = replay.InterleavedSamples(
        [iter(replay.make_dataset(s.address, "t", BATCH, num_workers_per_iterator=1)) for s in shards]
    )
    batches = [next(samples) for _ in range(6)]
    assert samples.batches_per_shard == [3, 3]
    true_shard = {}
    for index, batch in enumerate(batches):
        observations = batch.data.observation.numpy()
        # Turn by turn, and each batch wholly from its shard.
        assert {_shard_of_observation(o) for o in observations} == {index % 2}, observations
        for key, observation in zip(batch.info.key.numpy().tolist(), observations):
            true_shard[key] = _shard_of_observation(observation)
    keys = np.array(list(true_shard), np.uint64)
    np.testing.assert_array_equal(samples.shards_of(keys), [true_shard[k] for k in keys.tolist()])

    recording = [_Recording(first), _Recording(second)]
    updater = replay.ShardedPriorityUpdater(recording, samples.shards_of)
    stranger = np.uint64(12345)  # Sampled from neither shard.
    new_priority = {k: 2.0 + true_shard[k] * 10 + i for i, k in enumerate(keys.tolist())}
    updater.update(
        np.append(keys, stranger), [new_priority[k] for k in keys.tolist()] + [99.0]
    )  # One call, keys of both shards mixed.
    updater.close()
    assert updater.dropped == 1
    for shard, record in enumerate(recording):
        assert record.keys == {k for k, s in true_shard.items() if s == shard}
    for shard, server in enumerate(shards):
        on_server = _priorities(server)
        for key, priority in on_server.items():
            assert priority == new_priority.get(key, 1.0), (shard, key)
        assert {k for k, s in true_shard.items() if s == shard} <= set(on_server)


def _batch(keys):
    keys = np.asarray(keys, np.uint64)
    info = reverb.SampleInfo(
        key=keys, probability=np.ones(len(keys)), table_size=np.ones(len(keys)), priority=keys, times_sampled=keys
    )
    return reverb.ReplaySample(info=info, data=None)


def test_a_key_two_shards_returned_and_keys_of_forgotten_batches_are_unknown():
    samples = replay.InterleavedSamples(
        [iter([_batch([1, 2]), _batch([5])]), iter([_batch([2, 3]), _batch([6])])], remembered_batches=3
    )
    for _ in range(3):
        next(samples)
    # Key 2 came from both shards: no shard is sure to hold it, so it goes nowhere.
    np.testing.assert_array_equal(samples.shards_of([1, 2, 3, 5, 7]), [0, -1, 1, 0, -1])
    next(samples)  # A fourth batch: the first ([1, 2]) is forgotten.
    np.testing.assert_array_equal(samples.shards_of([1, 2, 3, 5, 6]), [-1, -1, 1, 0, 1])
    with pytest.raises(StopIteration):
        next(samples)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="at least one shard"):
        replay.InterleavedSamples([])
    with pytest.raises(ValueError, match="remembered_batches must be >= 1"):
        replay.InterleavedSamples([iter([])], remembered_batches=0)
    updater = replay.ShardedPriorityUpdater([], lambda keys: np.zeros(len(keys), np.int64))
    with pytest.raises(ValueError, match="differ in length: 2 vs 1"):
        updater.update([1, 2], [1.0])


def test_encore_inspect_shows_every_shard_and_their_sum(shards, capsys, tmp_path):
    import agents.inspect  # pylint: disable=import-outside-toplevel

    first, second = shards
    addresses = [first.address, second.address]
    program = {"name": "apex_dqn", "replay_address": first.address, "replay_shards": addresses, "nodes": []}
    (tmp_path / "program.json").write_text(json.dumps(program))

    assert agents.inspect.main(["info", str(tmp_path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [shard["address"] for shard in shown["shards"]] == addresses
    assert [shard["tables"][0]["current_size"] for shard in shown["shards"]] == [ITEMS_PER_SHARD] * 2
    assert shown["total"]["t"]["current_size"] == 2 * ITEMS_PER_SHARD
    assert shown["total"]["t"]["max_size"] == 2000

    assert agents.inspect.main(["info", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert f"Replay shard 1 of 2, Reverb server {second.address}" in text
    assert f"All 2 shards:\n  t: size {2 * ITEMS_PER_SHARD} / 2000" in text

    assert agents.inspect.main(["top", str(tmp_path), "--once"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "has 2 replay shards" in error and "pass one shard's host:port" in error


def test_distributed_dqn_with_two_replay_shards(tmp_path):
    """Each actor fills its own shard, the learner samples from both, and each shard checkpoints on its own."""
    run_dir = str(tmp_path / "run")
    args = ["--launch_type", "test_mt", "--num_actors", "2", "--num_replay_shards", "2"]
    result = run_dqn(args + ["--max_actor_steps", "1500", "--run_dir", run_dir], min_replay_size=100)
    shards = result["replay_shards"]
    assert len(shards) == 2
    for shard in shards:
        assert shard["inserts"] > 0 and shard["samples"] > 0 and shard["replay_size"] > 0, shards
        # Each shard's own SampleToInsertRatio limiter (samples_per_insert=4) held its learner back.
        assert shard["samples"] <= 4 * shard["inserts"], shards
    assert result["replay_size"] == sum(shard["replay_size"] for shard in shards)
    assert result["learner_steps"] > 0
    program = json.loads((tmp_path / "run" / "program.json").read_text())
    assert len(program["replay_shards"]) == 2 and program["replay_address"] == program["replay_shards"][0]
    assert len({node["address"] for node in program["nodes"] if node["label"] == "replay"}) == 2
    for shard in range(2):
        assert os.listdir(os.path.join(run_dir, "replay", f"shard_{shard}")), f"shard {shard} wrote no checkpoint"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--num_replay_shards", "0"], "num_replay_shards must be an integer >= 1 (got 0)"),
        (["--num_replay_shards", "3", "--num_actors", "2"], "needs at least as many actors (got 2)"),
        (["--num_replay_shards", "2", "--single_process"], "is for distributed runs"),
        (["--num_replay_shards", "2", "--agent", "a3c"], "assembles its own program"),
    ],
)
def test_shard_settings_that_cannot_work_are_refused(capsys, argv, message):
    assert message in usage_error(capsys, argv)


class _ClosesWithTheOthers(_Recording):
    """A real PriorityUpdater whose close() first waits, on a barrier, until every shard's close() has begun."""

    def __init__(self, server, barrier):
        super().__init__(server)
        self.barrier = barrier

    def close(self, timeout=None):
        self.barrier.wait(60)  # Raises BrokenBarrierError if the shards were closed one after another.
        super().close(timeout)


def test_shards_updaters_close_together_so_stop_waits_one_timeout_not_k(shards):
    barrier = threading.Barrier(len(shards))
    updaters = [_ClosesWithTheOthers(server, barrier) for server in shards]
    sharded = replay.ShardedPriorityUpdater(updaters, lambda keys: np.zeros(len(keys), np.int64))
    sharded.update([1], [2.0])
    sharded.close()
    assert not barrier.broken
    assert updaters[0].keys == {1} and not updaters[1].keys
