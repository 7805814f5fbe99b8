"""R2D2: value rescaling, transformed n-step double-Q targets against a term-by-term reading, the state actors store
against the state they had, burn-in that carries no gradient, sequence priorities through a real table, the
partially observed CartPole, and an end-to-end distributed run (local_mp) in which data flows."""

import os

import gymnasium
import numpy as np
import tensorflow as tf
import tree

import replay
from agents import core, envs, experiments, utils
from agents.r2d2 import (
    R2D2Builder,
    R2D2Config,
    extras_spec,
    inverse_value_rescaling,
    numpy_q_step,
    sequence_priorities,
    transformed_n_step_targets,
    value_rescaling,
)
from tests._replay_helpers import drain

ENV = "CartPoleNoVel-v1"

# ------------------------------------------------------------------------------------------ value rescaling


def test_value_rescaling_and_its_inverse_are_inverse():
    magnitudes = np.logspace(-6, 6, 2001)
    x = tf.constant(np.concatenate([-magnitudes[::-1], [0.0], magnitudes]), tf.float64)
    np.testing.assert_allclose(inverse_value_rescaling(value_rescaling(x)).numpy(), x.numpy(), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(value_rescaling(inverse_value_rescaling(x)).numpy(), x.numpy(), rtol=1e-6, atol=1e-12)
    # h(3) = sqrt(4) - 1 + 0.003, odd, and it squashes: h(99) = 9 + 0.099.
    np.testing.assert_allclose(value_rescaling(tf.constant([3.0, -3.0, 99.0])).numpy(), [1.003, -1.003, 9.099], 1e-6)


# ---------------------------------------------------------------------------------- n-step double-Q targets


def _reference_targets(q_online, q_target, rewards, discounts, valid, gamma, n, eps=1e-3):
    """Term by term: from each row t, sum up to n rewards while the rows are valid and have a next row, then
    bootstrap (in h^-1 space) from the row reached, with the target network's value of the online argmax."""
    h = lambda x: np.sign(x) * (np.sqrt(np.abs(x) + 1) - 1) + eps * x  # noqa: E731
    h_inverse = lambda x: inverse_value_rescaling(tf.constant(x, tf.float64), eps).numpy()  # noqa: E731
    length, batch = rewards.shape
    targets = np.zeros((length - 1, batch))
    for b in range(batch):
        for t in range(length - 1):
            total, scale, j = 0.0, 1.0, t
            while j < t + n and j < length - 1 and valid[j, b]:
                total += scale * rewards[j, b]
                scale *= gamma * discounts[j, b]
                j += 1
            best = np.argmax(q_online[j, b])
            targets[t, b] = h(total + scale * h_inverse(q_target[j, b, best]))
    return targets


def _hand_built_sequences():
    """Three sequences of 9 rows: mid-episode (all valid); terminated after row 3 (closing row 4, then padding);
    truncated by a time limit after row 5 (discount 1, so its closing row 6 is bootstrapped from)."""
    rng = np.random.default_rng(0)
    length, batch, actions = 9, 3, 2
    rewards = rng.uniform(0.5, 1.5, (length, batch)).astype(np.float32)
    discounts = np.ones((length, batch), np.float32)
    valid = np.ones((length, batch), bool)
    valid[4:, 1] = False
    discounts[3, 1] = 0.0
    discounts[4:, 1] = rewards[4:, 1] = 0.0
    valid[6:, 2] = False
    discounts[6:, 2] = rewards[6:, 2] = 0.0
    q_online = rng.normal(size=(length, batch, actions)).astype(np.float32)
    q_target = rng.normal(size=(length, batch, actions)).astype(np.float32)
    return q_online, q_target, rewards, discounts, valid


def test_transformed_n_step_targets_on_hand_built_sequences():
    gamma, n = 0.9, 5
    q_online, q_target, rewards, discounts, valid = _hand_built_sequences()
    targets = transformed_n_step_targets(
        *(tf.constant(x) for x in (q_online, q_target, rewards, discounts, valid)), gamma, n
    ).numpy()
    np.testing.assert_allclose(
        targets, _reference_targets(q_online, q_target, rewards, discounts, valid, gamma, n), 1e-5
    )

    def bootstrap(row, b):
        return float(inverse_value_rescaling(tf.constant(q_target[row, b, np.argmax(q_online[row, b])])))

    h = lambda x: float(value_rescaling(tf.constant(x, tf.float32)))  # noqa: E731
    r = rewards
    # Mid-episode, row 0: five rewards, then the double-Q value of row 5.
    expected = sum(gamma**k * r[k, 0] for k in range(5)) + gamma**5 * bootstrap(5, 0)
    np.testing.assert_allclose(targets[0, 0], h(expected), rtol=1e-5)
    # Row 6 of the same: only row 7 has a next row in the sequence; it bootstraps from row 8 after two rewards.
    np.testing.assert_allclose(targets[6, 0], h(r[6, 0] + gamma * r[7, 0] + gamma**2 * bootstrap(8, 0)), rtol=1e-5)
    # Terminated: row 1 sums rewards 1..3 and the termination's zero discount cancels the bootstrap.
    np.testing.assert_allclose(targets[1, 1], h(r[1, 1] + gamma * r[2, 1] + gamma**2 * r[3, 1]), rtol=1e-5)
    # Truncated: row 3 sums rewards 3..5 and bootstraps from the closing row 6 (the episode's last observation).
    truncated = r[3, 2] + gamma * r[4, 2] + gamma**2 * r[5, 2] + gamma**3 * bootstrap(6, 2)
    np.testing.assert_allclose(targets[3, 2], h(truncated), rtol=1e-5)


# ---------------------------------------------------------------------------------------------- priorities


def test_priorities_mix_max_and_mean_over_valid_steps():
    abs_td = tf.constant([[1.0, 4.0], [2.0, 0.5], [3.0, 100.0]])  # [T, B]; 100 is on a masked step.
    mask = tf.constant([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    priorities = sequence_priorities(abs_td, mask, 0.9).numpy()
    np.testing.assert_allclose(priorities, [0.9 * 3.0 + 0.1 * 2.0, 0.9 * 4.0 + 0.1 * 2.25], rtol=1e-6)
    assert sequence_priorities(abs_td, tf.zeros_like(mask), 0.9).numpy().tolist() == [0.0, 0.0]


def _spec():
    return replay.make_environment_spec(envs.make_environment(ENV))


def _write_episodes(builder, client, params, num_episodes, seed=0):
    """Runs the builder's actor (epsilon 0.3, parameters `params`) for `num_episodes` episodes into replay through
    the builder's adder; returns per episode the observations and the state the actor had before each of them."""
    environment = envs.make_environment(ENV, seed=seed)
    spec = replay.make_environment_spec(environment)
    variable_server = utils.VariableServer()
    variable_server.publish(params, 1)
    variable_client = utils.VariableClient(variable_server)
    adder = builder.make_adder(client)
    actor = builder.make_actor(spec, variable_client, adder, core.ActorSettings(seed=seed, single_process=True))
    episodes = []
    try:
        variable_client.update(wait=True)
        for _ in range(num_episodes):
            timestep = environment.reset()
            actor.observe_first(timestep)
            observations, states = [], []
            while not timestep.last():
                observations.append(timestep.observation)
                states.append(actor.state)
                action = actor.select_action(timestep.observation)
                timestep = environment.step(action)
                actor.observe(action, timestep)
            episodes.append((np.array(observations), states))
        adder.flush()
    finally:
        adder.close()
        variable_client.close()
    return episodes


def test_priorities_reach_the_table_through_the_priority_updater():
    config = R2D2Config(burn_in=2, trace_length=6, sequence_period=3, batch_size=8, min_replay_size=1)
    builder = R2D2Builder(config)
    networks = builder.make_networks(_spec(), seed=0)
    with replay.ReplayServer(builder.make_replay_tables(_spec(), rate_limited=False)) as server:
        client = server.client()
        _write_episodes(builder, client, networks[0].numpy_parameters(), num_episodes=3)
        sample = next(builder.make_dataset_iterator(server.address))
        updater = replay.PriorityUpdater(client, config.replay_table_name)
        learner = builder.make_learner(networks, iter([sample]), priority_updater=updater)
        expected = dict(
            zip(
                sample.info.key.numpy().tolist(),
                learner.loss(sample.data, sample.info.probability)["priorities"].numpy(),
            )
        )
        learner.step()  # Priorities come from the batch before the step's update.
        updater.close()
        size = client.server_info()[config.replay_table_name].current_size
        seen = {}
        for item in client.sample(config.replay_table_name, num_samples=50 * size, emit_timesteps=False):
            seen[int(item.info.key)] = float(item.info.priority)
    for key, priority in expected.items():
        np.testing.assert_allclose(seen[key], priority, rtol=1e-5)
    assert len(expected) > 1 and max(expected.values()) > 0


# ------------------------------------------------------------------------------------------ stored state


def test_the_stored_state_is_the_actors_state_at_each_sequence_start():
    config = R2D2Config(burn_in=2, trace_length=6, sequence_period=3)
    builder = R2D2Builder(config)
    spec = _spec()
    signature = replay.SequenceAdder.signature(spec, extras_spec(config.lstm_size), config.sequence_length)
    params = builder.make_networks(spec, seed=1)[0].numpy_parameters()
    # A FIFO table with the builder's signature: items come back in the order the adder wrote them.
    table = replay.tables.queue(config.replay_table_name, max_size=10_000, signature=signature)
    with replay.ReplayServer([table]) as server:
        client = server.client()
        episodes = _write_episodes(builder, client, params, num_episodes=2, seed=3)
        items = drain(client, config.replay_table_name, like=signature)
    position = 0
    for observations, states in episodes:
        # Every item of this episode starts on the period grid; match it by its first observation.
        episode_items = []
        while position < len(items):
            item = items[position]
            start = _find(observations, item.observation)
            if start is None:
                break
            episode_items.append((start, item))
            position += 1
        assert len(episode_items) >= 2, "each episode writes several sequences"
        for start, item in episode_items:
            assert start % config.sequence_period == 0
            hidden, cell = states[start]
            np.testing.assert_allclose(item.extras["core_state"]["hidden"][0], hidden, rtol=1e-6)
            np.testing.assert_allclose(item.extras["core_state"]["cell"][0], cell, rtol=1e-6)
            real = min(config.sequence_length, len(observations) - start)
            assert item.extras["valid"][:real].all() and not item.extras["valid"][real:].any()
        assert not np.any(episode_items[0][1].extras["core_state"]["hidden"][0]), "a new episode starts from zeros"
        assert np.any(episode_items[-1][1].extras["core_state"]["hidden"][0])
        # The states are the numpy twin's unroll over the episode from zeros.
        state = (np.zeros(config.lstm_size, np.float32),) * 2
        for observation, (hidden, cell) in zip(observations, states):
            np.testing.assert_allclose(state[0], hidden, rtol=1e-6)
            np.testing.assert_allclose(state[1], cell, rtol=1e-6)
            _, state = numpy_q_step(params, observation, state, config.dueling)
    assert position == len(items)


def _find(observations, sequence):
    """The row of `observations` the item's observations start at (its real rows match), or None."""
    for start in range(len(observations)):
        real = min(len(sequence), len(observations) - start)
        if np.array_equal(observations[start : start + real], sequence[:real]):
            return start
    return None


# ----------------------------------------------------------------------------------------------- the learner


def _random_batch(config, rng, batch=4):
    spec = _spec()
    signature = replay.SequenceAdder.signature(spec, extras_spec(config.lstm_size), config.sequence_length)
    length = config.sequence_length
    data = tree.map_structure(lambda s: np.zeros((batch, *s.shape), s.dtype.as_numpy_dtype), signature)
    data = data._replace(
        observation=rng.normal(size=(batch, length, 2)).astype(np.float32),
        action=rng.integers(2, size=(batch, length)),
        reward=np.ones((batch, length), np.float32),
        discount=np.ones((batch, length), np.float32),
        extras={
            "core_state": {
                "cell": rng.normal(size=(batch, length, config.lstm_size)).astype(np.float32),
                "hidden": rng.normal(size=(batch, length, config.lstm_size)).astype(np.float32) * 0.5,
            },
            "valid": np.ones((batch, length), bool),
        },
    )
    return tree.map_structure(tf.constant, data), tf.fill([batch], 0.1)


def test_burn_in_carries_no_gradient():
    config = R2D2Config(burn_in=3, trace_length=5, sequence_period=5)
    builder = R2D2Builder(config)
    networks = builder.make_networks(_spec(), seed=0)
    learner = builder.make_learner(networks, iter(()))
    data, probabilities = _random_batch(config, np.random.default_rng(0))
    observations = tf.Variable(data.observation)
    with tf.GradientTape(persistent=True) as tape:
        loss = learner.loss(data._replace(observation=tf.identity(observations)), probabilities)["loss"]
    input_gradient = tape.gradient(loss, observations).numpy()
    assert not np.any(input_gradient[:, : config.burn_in]), "the burn-in inputs get no gradient"
    assert np.all(np.abs(input_gradient[:, config.burn_in : -1]).sum(-1) > 0)
    parameter_gradients = tape.gradient(loss, networks[0].parameters)

    # The same gradients as a learner without burn-in handed the burn-in's final state as the stored state.
    time_major = tf.transpose(data.observation[:, : config.burn_in], [1, 0, 2])
    stored = data.extras["core_state"]
    _, (hidden, cell) = networks[0].unroll(time_major, (stored["hidden"][:, 0], stored["cell"][:, 0]))
    trace = tree.map_structure(lambda x: x[:, config.burn_in :], data)
    state = {
        "hidden": tf.tile(hidden[:, None], [1, trace.action.shape[1], 1]),
        "cell": tf.tile(cell[:, None], [1, trace.action.shape[1], 1]),
    }
    trace = trace._replace(extras={"core_state": state, "valid": trace.extras["valid"]})
    no_burn_in = R2D2Builder(config.replace(burn_in=0)).make_learner(networks, iter(()))
    with tf.GradientTape() as tape:
        loss_without = no_burn_in.loss(trace, probabilities)["loss"]
    np.testing.assert_allclose(float(loss_without), float(loss), rtol=1e-5)
    for with_burn_in, without in zip(parameter_gradients, tape.gradient(loss_without, networks[0].parameters)):
        np.testing.assert_allclose(with_burn_in.numpy(), without.numpy(), rtol=1e-4, atol=1e-6)


def test_the_numpy_twin_matches_the_network():
    config = R2D2Config()
    network = R2D2Builder(config).make_networks(_spec(), seed=2)[0]
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(7, 3, 2)).astype(np.float32)
    q_values, (hidden, cell) = network.unroll(tf.constant(observations), network.initial_state(3))
    state = (np.zeros((3, config.lstm_size), np.float32),) * 2
    params = network.numpy_parameters()
    for t in range(7):
        q, state = numpy_q_step(params, observations[t], state, config.dueling)
        np.testing.assert_allclose(q, q_values[t].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(state[0], hidden.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(state[1], cell.numpy(), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------- environment


def test_cartpole_without_velocities():
    environment = gymnasium.make(ENV)
    full = gymnasium.make("CartPole-v1")
    observation, _ = environment.reset(seed=5)
    full_observation, _ = full.reset(seed=5)
    assert environment.observation_space.shape == (2,)
    np.testing.assert_array_equal(observation, full_observation[[0, 2]])
    observation, *_ = environment.step(1)
    full_observation, *_ = full.step(1)
    np.testing.assert_array_equal(observation, full_observation[[0, 2]])
    assert environment.spec.max_episode_steps == 500
    assert envs.solved_return(ENV) == 475.0 and envs.max_return(ENV) == 500.0
    assert envs.make_environment(ENV).observation_spec().shape == (2,)


# ------------------------------------------------------------------------------------------------ end to end


def test_r2d2_runs_distributed_and_data_flows(tmp_path):
    # The rate limiter holds actors to the learner's sampling: reaching the step budget means data flowed.
    config = R2D2Config(min_replay_size=16, batch_size=8)
    experiment = experiments.ExperimentConfig(
        builder=R2D2Builder(config), run_dir=str(tmp_path), env_name=ENV, eval_episodes=2, max_actor_steps=2_000
    )
    result = experiments.run_distributed(experiment, num_actors=2, launch_type="local_mp")
    assert result["actor_steps"] >= 2_000 and result["learner_steps"] > 0, result
    assert result["parameter_version"] > 0
    assert result["replay_inserts"] > 0 and result["replay_samples"] >= config.batch_size * result["learner_steps"]
    for actor in ("actor_0", "actor_1"):
        log = utils.read_csv_log(os.path.join(tmp_path, "logs", f"{actor}.csv"))
        assert max(log["parameter_version"]) > 0, f"{actor} never received parameters"
    assert utils.read_csv_log(os.path.join(tmp_path, "logs", "learner.csv"))["learner_steps"]


def test_r2d2_learns_in_a_single_process(tmp_path):
    config = R2D2Config(min_replay_size=16, batch_size=8)
    experiment = experiments.ExperimentConfig(
        builder=R2D2Builder(config), run_dir=str(tmp_path), env_name=ENV, eval_episodes=2, max_actor_steps=1_000
    )
    result = experiments.run_single_process(experiment, print_fn=lambda line: None)
    assert result["actor_steps"] >= 1_000, result
    # One learner step per batch_size * sequence_period / samples_per_insert actor steps after the warm-up.
    builder = experiment.builder
    expected = (
        result["actor_steps"] - builder.min_actor_steps_before_learning()
    ) * builder.learner_steps_per_actor_step()
    assert result["learner_steps"] >= int(expected) > 0, result
