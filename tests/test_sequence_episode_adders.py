"""SequenceAdder (all four end behaviours) and EpisodeAdder write exactly Acme's items."""

import dm_env
import numpy as np
import pytest
from _replay_helpers import assert_nest_close, drain, run_episode

import replay

S = replay.Step
E = replay.EndBehavior


def episode(rewards, last=dm_env.termination):
    """Observations 1, 2, ...; action 0; the given rewards; the final step made by `last`."""
    steps = [(0, dm_env.transition(r, float(i + 2))) for i, r in enumerate(rewards[:-1])]
    return steps + [(0, last(rewards[-1], float(len(rewards) + 1)))]


def sequences(client):
    """Items as lists of (observation, action, reward, discount, start_of_episode) rows."""
    items = drain(client, "priority_table", like=S(0, 0, 0, 0, 0, ()))
    return [[tuple(float(x) for x in row) for row in zip(*item[:5])] for item in items]


def row(obs, reward, discount, start=False):
    return (obs, 0.0, reward, discount, float(start))


PAD = row(0, 0, 0)


HEAD = [[row(1, 2, 1, True), row(2, 3, 1), row(3, 5, 1)], [row(3, 5, 1), row(4, 7, 1), row(5, 8, 0)]]


@pytest.mark.parametrize(
    "behavior, last",
    [
        (E.WRITE, [row(4, 7, 1), row(5, 8, 0), row(6, 0, 0)]),
        (E.ZERO_PAD, [row(5, 8, 0), row(6, 0, 0), PAD]),
        (E.TRUNCATE, [row(5, 8, 0), row(6, 0, 0)]),
    ],
)
def test_end_behaviours_on_docstring_example(client, behavior, last):
    # sequence_length=3, period=2, rows 1..6 (5 actions + final observation): writes at rows 3 and 5,
    # then the end behaviour (see EndBehavior's docstring).
    adder = replay.SequenceAdder(client, sequence_length=3, period=2, end_of_episode_behavior=behavior)
    run_episode(adder, 1.0, episode([2.0, 3.0, 5.0, 7.0, 8.0]))
    assert sequences(client) == HEAD + [last]


def test_period_one_overlaps(client):
    adder = replay.SequenceAdder(client, sequence_length=3, period=1)
    run_episode(adder, 1.0, episode([2.0, 3.0, 5.0, 7.0]))
    assert sequences(client) == [
        [row(1, 2, 1, True), row(2, 3, 1), row(3, 5, 1)],
        [row(2, 3, 1), row(3, 5, 1), row(4, 7, 0)],
        [row(3, 5, 1), row(4, 7, 0), row(5, 0, 0)],
    ]


def test_long_episode_zero_pad_and_truncate(client):
    rewards = [2.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0]
    head = [[row(1, 2, 1, True), row(2, 3, 1), row(3, 5, 1)], [row(4, 7, 1), row(5, 9, 1), row(6, 11, 1)]]
    run_episode(replay.SequenceAdder(client, 3, 3), 1.0, episode(rewards))
    assert sequences(client) == head + [[row(7, 13, 0), row(8, 0, 0), PAD]]
    run_episode(replay.SequenceAdder(client, 3, 3, end_of_episode_behavior=E.TRUNCATE), 1.0, episode(rewards))
    assert sequences(client) == head + [[row(7, 13, 0), row(8, 0, 0)]]


def test_episode_shorter_than_sequence(client):
    run_episode(replay.SequenceAdder(client, 4, 2), 1.0, episode([2.0, 3.0]))
    assert sequences(client) == [[row(1, 2, 1, True), row(2, 3, 0), row(3, 0, 0), PAD]]
    run_episode(replay.SequenceAdder(client, 4, 1, end_of_episode_behavior=E.TRUNCATE), 1.0, episode([2.0, 3.0]))
    assert sequences(client) == [[row(1, 2, 1, True), row(2, 3, 0), row(3, 0, 0)]]
    run_episode(replay.SequenceAdder(client, 4, 1, end_of_episode_behavior=E.WRITE), 1.0, episode([2.0, 3.0]))
    assert sequences(client) == []  # WRITE drops episodes shorter than a sequence.


def test_continue_runs_into_next_episode(client):
    adder = replay.SequenceAdder(client, 3, 2, end_of_episode_behavior=E.CONTINUE)
    for _ in range(2):
        run_episode(adder, 1.0, episode([2.0, 3.0, 5.0, 7.0, 9.0, 13.0], last=dm_env.truncation))
    adder.flush()  # CONTINUE never ends the writer's episode, so items are sent lazily.
    got = sequences(client)
    assert got[:4] == [
        [row(1, 2, 1, True), row(2, 3, 1), row(3, 5, 1)],
        [row(3, 5, 1), row(4, 7, 1), row(5, 9, 1)],
        [row(5, 9, 1), row(6, 13, 1), row(7, 0, 0)],
        [row(7, 0, 0), row(1, 2, 1, True), row(2, 3, 1)],
    ]
    assert len(got) == 6  # 14 rows: writes at rows 3, 5, ..., 13.


def test_deprecated_flags_map_to_behaviours(client):
    assert replay.SequenceAdder(client, 3, 1, pad_end_of_episode=False)._end_behavior is E.TRUNCATE
    assert (
        replay.SequenceAdder(client, 3, 1, break_end_of_episode=False, pad_end_of_episode=False)._end_behavior
        is E.CONTINUE
    )
    with pytest.raises(ValueError, match="incompatible"):
        replay.SequenceAdder(client, 3, 1, pad_end_of_episode=True, break_end_of_episode=False)
    with pytest.raises(ValueError, match="not both"):
        replay.SequenceAdder(client, 3, 1, end_of_episode_behavior=E.WRITE, pad_end_of_episode=True)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sequence_length=0, period=1), "sequence_length must be an integer >= 1"),
        (dict(sequence_length=3, period=0), "period must be an integer >= 1"),
        (dict(sequence_length=3, period=2.5), "period must be an integer >= 1"),
    ],
)
def test_invalid_lengths(client, kwargs, match):
    with pytest.raises(ValueError, match=match):
        replay.SequenceAdder(client, **kwargs)


def test_sequence_signature_and_extras_with_dict_observations():
    spec = replay.EnvironmentSpec(
        observations={"x": dm_env.specs.Array((2,), np.float32)},
        actions=dm_env.specs.DiscreteArray(3),
        rewards=dm_env.specs.Array((), np.float32),
        discounts=dm_env.specs.Array((), np.float32),
    )
    extras_spec = {"logits": dm_env.specs.Array((3,), np.float32)}
    signature = replay.SequenceAdder.signature(spec, extras_spec, sequence_length=4)
    assert signature.observation["x"].shape == (4, 2) and signature.start_of_episode.shape == (4,)
    with replay.ReplayServer([replay.tables.queue("priority_table", 100, signature=signature)]) as s:
        adder = replay.SequenceAdder(s.client(), sequence_length=4, period=2)
        obs = lambda i: {"x": np.full(2, i, np.float32)}  # noqa: E731
        extras = lambda i: {"logits": np.full(3, i, np.float32)}  # noqa: E731
        adder.add_first(dm_env.restart(obs(0)))
        for i in range(1, 6):
            adder.add(np.int32(i % 3), dm_env.transition(np.float32(i), obs(i), np.float32(1)), extras(i))
        adder.add(np.int32(0), dm_env.termination(np.float32(6), obs(6)), extras(6))
        items = [sample.data for sample in s.client().sample("priority_table", 3, emit_timesteps=False)]
        first = tree_unflatten(signature, items[0])
        np.testing.assert_array_equal(first.observation["x"][:, 0], [0, 1, 2, 3])
        np.testing.assert_array_equal(first.extras["logits"][:, 0], [1, 2, 3, 4])
        np.testing.assert_array_equal(first.start_of_episode, [True, False, False, False])


def tree_unflatten(structure, flat):
    import tree

    return tree.unflatten_as(structure, tree.flatten(flat))


def test_episode_adder_writes_whole_episodes(client):
    adder = replay.EpisodeAdder(client, max_sequence_length=10)
    run_episode(adder, 1.0, episode([2.0, 3.0, 5.0]))
    run_episode(adder, 1.0, episode([4.0]))
    assert sequences(client) == [
        [row(1, 2, 1, True), row(2, 3, 1), row(3, 5, 0), row(4, 0, 0)],
        [row(1, 4, 0, True), row(2, 0, 0)],
    ]


def test_episode_adder_padding(client):
    adder = replay.EpisodeAdder(client, max_sequence_length=5, padding_fn=np.zeros)
    run_episode(adder, 1.0, episode([2.0, 3.0]))
    assert sequences(client) == [[row(1, 2, 1, True), row(2, 3, 0), row(3, 0, 0), PAD, PAD]]


def test_episode_adder_rejects_episode_past_max_length(client):
    adder = replay.EpisodeAdder(client, max_sequence_length=3)
    adder.add_first(dm_env.restart(1.0))
    adder.add(0, dm_env.transition(0.0, 2.0))
    adder.add(0, dm_env.transition(0.0, 3.0))
    with pytest.raises(ValueError, match="episode longer than max_sequence_length - 1 = 2"):
        adder.add(0, dm_env.transition(0.0, 4.0))


def test_episode_priority_fn_sees_numpy_episode(client):
    seen = []
    adder = replay.EpisodeAdder(client, 10, priority_fns={"priority_table": lambda ep: seen.append(ep) or 2.0})
    run_episode(adder, 1.0, episode([2.0, 3.0]))
    assert_nest_close(seen[0].reward, np.array([2.0, 3.0, 0.0]))
    assert [s.info.priority for s in client.sample("priority_table", 1, emit_timesteps=False)] == [2.0]
