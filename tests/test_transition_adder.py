"""NStepTransitionAdder writes exactly Acme's n-step transitions into a real Reverb table."""

import dm_env
import numpy as np
import pytest
from _replay_helpers import assert_nest_close, drain, run_episode

import replay

T = replay.Transition


def transitions(client, table="priority_table", like=None):
    return [T(*item) if like is None else item for item in drain(client, table, like)]


def check(client, expected, table="priority_table"):
    got = transitions(client, table, like=expected[0])
    assert len(got) == len(expected), got
    for g, e in zip(got, expected):
        assert_nest_close(g, e)


def test_one_step(client):
    adder = replay.NStepTransitionAdder(client, n_step=1, discount=0.9)
    run_episode(
        adder,
        1.0,
        [(0, dm_env.transition(0.0, 2.0)), (1, dm_env.transition(0.0, 3.0)), (0, dm_env.termination(1.0, 4.0))],
    )
    check(client, [T(1, 0, 0, 1, 2), T(2, 1, 0, 1, 3), T(3, 0, 1, 0, 4)])


def test_two_step_with_env_discounts(client):
    adder = replay.NStepTransitionAdder(client, n_step=2, discount=1.0)
    run_episode(
        adder,
        1.0,
        [
            (0, dm_env.transition(1.0, 2.0, discount=0.5)),
            (0, dm_env.transition(1.0, 3.0, discount=0.5)),
            (0, dm_env.termination(1.0, 4.0)),
        ],
    )
    # R = r0 + g d0 r1; D = g d0 d1. Short transitions from s0 at the start, to s_T at the end.
    check(client, [T(1, 0, 1.0, 0.5, 2), T(1, 0, 1.5, 0.25, 3), T(2, 0, 1.5, 0.0, 4), T(3, 0, 1.0, 0.0, 4)])


def test_three_step_varying_rewards_and_agent_discount(client):
    g = 0.5
    adder = replay.NStepTransitionAdder(client, n_step=3, discount=g)
    run_episode(
        adder,
        1.0,
        [
            (0, dm_env.transition(2.0, 2.0)),
            (0, dm_env.transition(3.0, 3.0)),
            (0, dm_env.transition(5.0, 4.0)),
            (0, dm_env.termination(7.0, 5.0)),
        ],
    )
    check(
        client,
        [
            T(1, 0, 2.0, 1.0, 2),
            T(1, 0, 2 + g * 3, g, 3),
            T(1, 0, 2 + g * 3 + g * g * 5, g * g, 4),
            T(2, 0, 3 + g * 5 + g * g * 7, 0.0, 5),
            T(3, 0, 5 + g * 7, 0.0, 5),
            T(4, 0, 7.0, 0.0, 5),
        ],
    )


@pytest.mark.parametrize("length", [1, 2, 3, 4, 7])
def test_episode_lengths_give_length_plus_n_minus_one_items(client, length):
    n = 4
    adder = replay.NStepTransitionAdder(client, n_step=n, discount=1.0)
    steps = [(0, dm_env.transition(1.0, float(i + 2))) for i in range(length - 1)]
    run_episode(adder, 1.0, steps + [(0, dm_env.termination(1.0, float(length + 1)))])
    got = transitions(client)
    assert len(got) == length + min(n, length) - 1
    # Every transition ends at most n steps after it starts and returns the number of rewards it spans.
    for t in got:
        span = t.next_observation - t.observation
        assert 1 <= span <= n and t.reward == span
    assert got[-1].observation == length and got[-1].next_observation == length + 1


def test_truncation_keeps_discount(client):
    adder = replay.NStepTransitionAdder(client, n_step=2, discount=0.9)
    run_episode(adder, 1.0, [(0, dm_env.transition(1.0, 2.0)), (0, dm_env.truncation(1.0, 3.0))])
    check(client, [T(1, 0, 1.0, 1.0, 2), T(1, 0, 1.9, 0.9, 3), T(2, 0, 1.0, 1.0, 3)])


def test_structured_rewards_discounts_and_dict_observations(client):
    adder = replay.NStepTransitionAdder(client, n_step=2, discount=1.0)
    obs = lambda i: {"pos": np.full(2, i, np.float32), "id": np.int32(i)}  # noqa: E731
    discount = {"a": 0.5, "b": 0.1}
    run_episode(
        adder,
        obs(1),
        [
            (0, dm_env.transition({"a": 1.0, "b": 2.0}, obs(2), discount=discount)),
            (0, dm_env.transition({"a": 1.0, "b": 2.0}, obs(3), discount=discount)),
            (0, dm_env.termination({"a": 1.0, "b": 2.0}, obs(4))._replace(discount={"a": 0.0, "b": 0.0})),
        ],
    )
    check(
        client,
        [
            T(obs(1), 0, {"a": 1.0, "b": 2.0}, {"a": 0.5, "b": 0.1}, obs(2)),
            T(obs(1), 0, {"a": 1.5, "b": 2.2}, {"a": 0.25, "b": 0.01}, obs(3)),
            T(obs(2), 0, {"a": 1.5, "b": 2.2}, {"a": 0.0, "b": 0.0}, obs(4)),
            T(obs(3), 0, {"a": 1.0, "b": 2.0}, {"a": 0.0, "b": 0.0}, obs(4)),
        ],
    )


def test_array_reward_broadcasts_against_array_discount(client):
    adder = replay.NStepTransitionAdder(client, n_step=2, discount=1.0)
    r, d = np.array([[1.0, 2.0]]), np.array([[0.5], [0.1]])
    run_episode(adder, 1.0, [(0, dm_env.transition(r, 2.0, discount=d)), (0, dm_env.termination(r, 3.0))])
    check(
        client,
        [
            T(1, 0, np.array([[1.0, 2.0], [1.0, 2.0]]), d, 2),
            T(1, 0, np.array([[1.5, 3.0], [1.1, 2.2]]), np.zeros((2, 1)), 3),
            T(2, 0, np.array([[1.0, 2.0], [1.0, 2.0]]), np.zeros((2, 1)), 3),
        ],
    )


def test_extras_are_those_of_the_first_step(client):
    adder = replay.NStepTransitionAdder(client, n_step=2, discount=1.0)
    run_episode(
        adder,
        1.0,
        [
            (0, dm_env.transition(1.0, 2.0), {"logp": np.float32(-1)}),
            (0, dm_env.termination(1.0, 3.0), {"logp": np.float32(-2)}),
        ],
    )
    got = transitions(client, like=T(0, 0, 0, 0, 0, {"logp": 0}))
    assert [float(t.extras["logp"]) for t in got] == [-1, -1, -2]


def test_episodes_do_not_mix(client):
    adder = replay.NStepTransitionAdder(client, n_step=3, discount=1.0)
    for start in (10.0, 20.0):
        run_episode(adder, start, [(0, dm_env.transition(1.0, start + 1)), (0, dm_env.termination(1.0, start + 2))])
    got = transitions(client)
    assert [(t.observation, t.next_observation) for t in got] == [
        (10, 11),
        (10, 12),
        (11, 12),
        (20, 21),
        (20, 22),
        (21, 22),
    ]


def test_reset_mid_episode_drops_the_open_step(client):
    """An episode cut short by reset() (no LAST timestep) keeps what it wrote; the next one starts clean."""
    adder = replay.NStepTransitionAdder(client, n_step=2, discount=1.0)
    run_episode(adder, 10.0, [(0, dm_env.transition(1.0, 11.0)), (0, dm_env.transition(1.0, 12.0))])
    adder.reset()
    run_episode(adder, 20.0, [(1, dm_env.termination(1.0, 21.0))])
    got = transitions(client)
    assert [(t.observation, t.action, t.next_observation) for t in got] == [(10, 0, 11), (10, 0, 12), (20, 1, 21)]


def test_priority_fns_feed_several_tables(client):
    adder = replay.NStepTransitionAdder(
        client, n_step=1, discount=1.0, priority_fns={"priority_table": None, "other": lambda t: 1.0 + float(t.reward)}
    )
    run_episode(adder, 1.0, [(0, dm_env.transition(2.0, 2.0)), (0, dm_env.termination(5.0, 3.0))])
    assert len(transitions(client)) == 2
    priorities = [s.info.priority for s in client.sample("other", num_samples=2, emit_timesteps=False)]
    assert priorities == [3.0, 6.0]


def test_signature_matches_written_items():
    spec = replay.EnvironmentSpec(
        observations=dm_env.specs.Array((3,), np.float32),
        actions=dm_env.specs.DiscreteArray(2),
        rewards=dm_env.specs.Array((), np.float32),
        discounts=dm_env.specs.BoundedArray((), np.float32, 0, 1),
    )
    signature = replay.NStepTransitionAdder.signature(spec)
    assert signature.reward.dtype == np.float32 and signature.next_observation.shape == (3,)
    with replay.ReplayServer([replay.tables.uniform("priority_table", 100, signature=signature)]) as s:
        adder = replay.NStepTransitionAdder(s.client(), n_step=3, discount=0.99)
        o = lambda i: np.full(3, i, np.float32)  # noqa: E731
        adder.add_first(dm_env.restart(o(0)))
        for i in range(1, 5):
            adder.add(np.int32(1), dm_env.transition(np.float32(1), o(i), np.float32(1)))
        adder.add(np.int32(0), dm_env.termination(np.float32(1), o(5)))
        assert s.client().server_info()["priority_table"].current_size == 5 + 2


def test_step_not_matching_signature_names_field():
    spec = replay.EnvironmentSpec(
        observations=dm_env.specs.Array((3,), np.float32),
        actions=dm_env.specs.DiscreteArray(2),
        rewards=dm_env.specs.Array((), np.float32),
        discounts=dm_env.specs.Array((), np.float32),
    )
    table = replay.tables.uniform("priority_table", 100, signature=replay.NStepTransitionAdder.signature(spec))
    with replay.ReplayServer([table]) as s:
        adder = replay.NStepTransitionAdder(s.client(), n_step=1, discount=1.0)
        with pytest.raises(ValueError, match=r"observation: expected float32\[3\], got float64\[4\]"):
            adder.add_first(dm_env.restart(np.zeros(4)))
        adder.add_first(dm_env.restart(np.zeros(3, np.float32)))
        with pytest.raises(ValueError, match=r"action: expected int32\[\], got float64\[2\]"):
            adder.add(np.zeros(2), dm_env.transition(np.float32(0), np.zeros(3, np.float32), np.float32(1)))


def test_later_step_changing_dtype_or_structure_names_field(client):
    """Only the first step is checked against the signature; Reverb's writer catches later changes, and the
    error still names the field."""
    adder = replay.NStepTransitionAdder(client, n_step=2, discount=1.0)
    adder.add_first(dm_env.restart(np.zeros(2, np.float32)))
    adder.add(np.int32(0), dm_env.transition(np.float32(0), np.zeros(2, np.float32), np.float32(1)))
    with pytest.raises(ValueError, match=r"wrong dtype.*column \('observation',\)"):
        adder.add(np.int32(0), dm_env.transition(np.float32(0), np.zeros(2, np.int64), np.float32(1)))

    adder = replay.NStepTransitionAdder(client, n_step=2, discount=1.0)
    adder.add_first(dm_env.restart({"a": np.float32(0), "b": np.float32(0)}))
    with pytest.raises(ValueError, match=r"observation has structure \{'a': '\*'\} but earlier steps had"):
        adder.add(np.int32(0), dm_env.transition(np.float32(0), {"a": np.float32(1)}, np.float32(1)))


def test_unknown_table_is_named(client):
    adder = replay.NStepTransitionAdder(client, n_step=1, discount=1.0, priority_fns={"nope": None})
    with pytest.raises(
        ValueError,
        match=r"unknown table 'nope' on the Reverb server at localhost:\d+, whose tables "
        r"are \['other', 'priority_table'\]: pass priority_fns=",
    ):
        adder.add_first(dm_env.restart(1.0))


@pytest.mark.parametrize("n_step", [0, -1, 1.5])
def test_invalid_n_step(client, n_step):
    with pytest.raises(ValueError, match="n_step must be an integer >= 1"):
        replay.NStepTransitionAdder(client, n_step=n_step, discount=1.0)


def test_add_before_add_first(client):
    adder = replay.NStepTransitionAdder(client, n_step=1, discount=1.0)
    with pytest.raises(ValueError, match="add_first must be called before add"):
        adder.add(0, dm_env.transition(0.0, 1.0))
    with pytest.raises(ValueError, match="FIRST timestep"):
        adder.add_first(dm_env.transition(0.0, 1.0))
