"""D4PG: the categorical projection against a plain numpy reading of C51's, the learner's direction on a fixed
batch, actions within bounds for every actor, the continuous environments' specs, the settings it refuses, and an
end-to-end distributed run (local_mp) in which data flows."""

import os

import numpy as np
import pytest
import reverb
import tensorflow as tf
from dm_env import specs

import replay
from agents import core, envs, experiments, registry, run, utils
from agents.d4pg import (
    D4PGBuilder,
    D4PGConfig,
    categorical_projection,
    numpy_policy,
    sigma_ladder,
)

# ------------------------------------------------------------------------------------------------ projection


def numpy_projection(values, probabilities, support):
    """Bellemare et al. (2017), Algorithm 1, atom by atom: T z_j clipped to [v_min, v_max], b_j = (T z_j - v_min)
    / dz, its mass split between atoms floor(b_j) and ceil(b_j) (all of it to one atom when b_j is whole)."""
    v_min, v_max = support[0], support[-1]
    spacing = (v_max - v_min) / (len(support) - 1)
    projected = np.zeros((values.shape[0], len(support)))
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            b = (min(max(values[i, j], v_min), v_max) - v_min) / spacing
            lower, upper = int(np.floor(b)), int(np.ceil(b))
            if lower == upper:
                projected[i, lower] += probabilities[i, j]
            else:
                projected[i, lower] += probabilities[i, j] * (upper - b)
                projected[i, upper] += probabilities[i, j] * (b - lower)
    return projected


@pytest.mark.parametrize("num_atoms,v_min,v_max", [(51, -10.0, 10.0), (11, -1627.0, 0.0), (2, 0.0, 1.0)])
def test_categorical_projection_matches_numpy(num_atoms, v_min, v_max):
    rng = np.random.default_rng(num_atoms)
    batch = 64
    support = np.linspace(v_min, v_max, num_atoms).astype(np.float32)
    probabilities = rng.dirichlet(np.ones(num_atoms), size=batch).astype(np.float32)
    width = v_max - v_min
    # Rewards that push atoms past both ends of the support; discounts include 0 (a termination) and 1.
    rewards = rng.uniform(v_min - 0.5 * width, v_max + 0.5 * width, size=batch).astype(np.float32)
    discounts = rng.choice([0.0, 0.5, 0.99, 1.0], size=batch).astype(np.float32)
    values = rewards[:, None] + discounts[:, None] * support[None, :]
    expected = numpy_projection(values, probabilities, support)
    got = categorical_projection(tf.constant(values), tf.constant(probabilities), tf.constant(support)).numpy()
    np.testing.assert_allclose(got, expected, atol=2e-5)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)  # Mass is kept.
    # Atoms beyond the support land on its ends; with discount 0 the whole mass sits at the clipped reward.
    for i in np.flatnonzero(discounts == 0):
        clipped = min(max(rewards[i], v_min), v_max)
        np.testing.assert_allclose(got[i] @ support, clipped, rtol=1e-4, atol=1e-3 * width)
    assert (rewards > v_max).any() and (rewards < v_min).any()


# ------------------------------------------------------------------------------------------------ the learner


def _spec(name="Pendulum-v1"):
    return replay.make_environment_spec(envs.make_environment(name, seed=0))


def _fixed_batch(rng, batch=128):
    """Pendulum-shaped transitions: observations (cos, sin, velocity), actions in [-2, 2], half of them terminal."""
    angles = rng.uniform(-np.pi, np.pi, batch)
    observations = np.stack([np.cos(angles), np.sin(angles), rng.uniform(-8, 8, batch)], -1).astype(np.float32)
    data = replay.Transition(
        observation=observations,
        action=rng.uniform(-2, 2, (batch, 1)).astype(np.float32),
        reward=-(angles**2).astype(np.float32),
        discount=np.where(rng.random(batch) < 0.5, 0.0, 0.99**4).astype(np.float32),  # Half terminal.
        next_observation=np.roll(observations, 1, axis=0),
        extras=(),
    )
    info = reverb.SampleInfo(
        key=tf.zeros([batch], tf.uint64),
        probability=tf.fill([batch], 1.0 / batch),
        table_size=tf.fill([batch], np.int64(batch)),
        priority=tf.ones([batch], tf.float64),
        times_sampled=tf.zeros([batch], tf.int32),
    )
    return reverb.ReplaySample(info, tf.nest.map_structure(tf.constant, data))


def test_a_learner_step_lowers_the_critic_loss_and_moves_actions_toward_higher_q():
    sample = _fixed_batch(np.random.default_rng(0))
    # A support that fits the batch's returns (rewards in [-pi^2, 0]), so the targets are sharp enough to fit.
    config = D4PGConfig(policy_hidden_sizes=(32, 32), critic_hidden_sizes=(64, 64), v_min=-20.0, v_max=0.0)
    builder = D4PGBuilder(config)
    networks = builder.make_networks(_spec(), seed=0)
    server = utils.VariableServer()
    learner = builder.make_learner(networks, iter(tf.data.Dataset.from_tensors(sample).repeat()), publisher=server)
    observations = sample.data.next_observation

    actions = networks.policy(observations)
    with tf.GradientTape() as tape:
        tape.watch(actions)
        q_values = networks.critic.mean(networks.critic(observations, actions))
    dqda = tape.gradient(q_values, actions).numpy()
    before_loss = float(tf.reduce_mean(learner.losses(sample.data)["critic_loss"]))
    learner.step()
    new_actions = networks.policy(observations)
    # The policy's actions move up the critic's slope, and by the critic they were trained against (the target
    # critic is still its copy: target_update_period is 100) the new actions are worth more.
    assert float(np.sum((new_actions - actions).numpy() * dqda)) > 0
    frozen_critic = networks.target_critic
    q_before = frozen_critic.mean(frozen_critic(observations, actions))
    q_after = frozen_critic.mean(frozen_critic(observations, new_actions))
    assert float(tf.reduce_mean(q_after - q_before)) > 0
    learner.run(num_steps=29)
    assert float(tf.reduce_mean(learner.losses(sample.data)["critic_loss"])) < before_loss - 0.1
    version, params = server.get()
    assert version == 30 and len(params) == len(networks.policy.parameters)  # The policy, every publish_period.


def test_target_networks_copy_periodically_or_follow_by_polyak_averaging():
    sample = _fixed_batch(np.random.default_rng(1), batch=16)
    for config, check in (
        (D4PGConfig(target_update_period=3), "copy"),
        (D4PGConfig(target_update_tau=0.5), "polyak"),
    ):
        builder = D4PGBuilder(config.replace(policy_hidden_sizes=(8,), critic_hidden_sizes=(8,)))
        networks = builder.make_networks(_spec(), seed=0)
        learner = builder.make_learner(networks, iter(tf.data.Dataset.from_tensors(sample).repeat()))
        initial = networks.target_critic.numpy_parameters()
        learner.run(num_steps=2)
        target = networks.target_critic.numpy_parameters()
        online = networks.critic.numpy_parameters()
        if check == "copy":
            assert all(np.array_equal(t, i) for t, i in zip(target, initial))  # Unchanged before step 3.
            learner.step()  # Step 3 updates the online networks, then the targets copy them.
            online = networks.critic.numpy_parameters() + networks.policy.numpy_parameters()
            targets = networks.target_critic.numpy_parameters() + networks.target_policy.numpy_parameters()
            assert all(np.array_equal(t, o) for t, o in zip(targets, online))
        else:
            assert not all(np.array_equal(t, i) for t, i in zip(target, initial))
            assert not all(np.allclose(t, o) for t, o in zip(target, online))


def test_prioritized_learner_sends_the_critic_loss_back_as_priorities():
    builder = D4PGBuilder(D4PGConfig(prioritized=True, min_replay_size=1, batch_size=8, policy_hidden_sizes=(8,)))
    assert builder.prioritized and builder.priority_table == builder.config.replay_table_name
    environment = envs.make_environment("Pendulum-v1", seed=0)
    spec = replay.make_environment_spec(environment)
    with replay.ReplayServer(builder.make_replay_tables(spec, rate_limited=False)) as server:
        client = server.client()
        adder = builder.make_adder(client)
        timestep = environment.reset()
        adder.add_first(timestep)
        for _ in range(30):
            timestep = environment.step(np.zeros(1, np.float32))
            adder.add(np.zeros(1, np.float32), timestep)
        adder.flush()
        batch = next(builder.make_dataset_iterator(server.address))
        with replay.PriorityUpdater(client, builder.priority_table) as updater:
            learner = builder.make_learner(
                builder.make_networks(spec, 0),
                iter(tf.data.Dataset.from_tensors(batch).repeat()),
                priority_updater=updater,
            )
            expected = dict(zip(batch.info.key.numpy().tolist(), learner.losses(batch.data)["critic_loss"].numpy()))
            learner.step()
            updater.flush(timeout=30)
        priorities = {}
        for sample in client.sample(builder.priority_table, num_samples=300, emit_timesteps=False):
            priorities[sample.info.key] = sample.info.priority
        adder.close()
    assert set(expected) <= set(priorities)
    for key, loss in expected.items():  # Each sampled transition's critic loss (before the step) is its priority.
        assert priorities[key] == pytest.approx(loss, rel=1e-5)
    assert all(p == 1.0 for key, p in priorities.items() if key not in expected)


# ------------------------------------------------------------------------------------------------ acting


def test_actions_stay_within_bounds_for_every_actor_and_the_evaluator_acts_without_noise():
    environment = envs.make_environment("Pendulum-v1", seed=0)
    spec = replay.make_environment_spec(environment)
    builder = D4PGBuilder(D4PGConfig(sigma_max=2.0, sigma_min=0.1, policy_hidden_sizes=(16,)))
    networks = builder.make_networks(spec, seed=0)
    # A large output bias drives the policy to its upper bound, where noise pushes past it unless clipped.
    networks.policy.set_parameters([*networks.policy.numpy_parameters()[:-1], np.full(1, 10.0, np.float32)])
    server = utils.VariableServer()
    server.publish(networks.policy.numpy_parameters(), 1)
    clients = []
    try:
        num_actors = 4
        sigmas = []
        for actor_id in range(num_actors):
            client = utils.VariableClient(server)
            clients.append(client)
            actor = builder.make_actor(spec, client, None, core.ActorSettings(actor_id, num_actors, seed=actor_id))
            actor.update(wait=True)
            sigmas.append(actor.sigma)
            recorder = _Recorder(actor)
            steps = core.EnvironmentLoop(environment, recorder).run(num_episodes=2)
            recorded = np.array(recorder.actions)
            assert steps == 400 and recorded.shape == (400, 1)
            assert recorded.min() >= -2.0 and recorded.max() <= 2.0, f"actor {actor_id} left the bounds"
            assert np.mean(recorded == 2.0) > 0.3  # Clipped there, not merely near it.
        assert sigmas == pytest.approx(sigma_ladder(num_actors, 2.0, 0.1))
        assert sigmas[0] == 2.0 and sigmas[-1] == pytest.approx(0.1) and sorted(sigmas, reverse=True) == sigmas

        client = utils.VariableClient(server)
        clients.append(client)
        evaluator = builder.make_evaluation_actor(spec, client, seed=0)
        evaluator.update(wait=True)
        observation = environment.reset().observation
        greedy = numpy_policy(server.get()[1], observation, np.array([-2.0]), np.array([2.0]))
        np.testing.assert_array_equal(evaluator.select_action(observation), greedy)
        np.testing.assert_array_equal(evaluator.select_action(observation), greedy)  # No noise.
        np.testing.assert_allclose(greedy, networks.policy(observation[None]).numpy()[0], rtol=1e-5, atol=1e-5)
    finally:
        for client in clients:
            client.close()


class _Recorder(core.Actor):
    """Passes through to an actor and keeps the actions it chose."""

    def __init__(self, actor):
        self._actor = actor
        self.actions = []

    def select_action(self, observation):
        action = self._actor.select_action(observation)
        self.actions.append(action)
        return action

    def observe_first(self, timestep):
        self._actor.observe_first(timestep)

    def observe(self, action, next_timestep):
        self._actor.observe(action, next_timestep)

    def update(self, wait=False):
        self._actor.update(wait)


def test_the_numpy_policy_matches_the_network_and_acts_before_parameters_arrive():
    spec = _spec("MountainCarContinuous-v0")
    builder = D4PGBuilder(D4PGConfig(policy_hidden_sizes=(16, 8, 4)))
    networks = builder.make_networks(spec, seed=3)
    observations = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32) * 10
    expected = networks.policy(observations).numpy()
    for observation, action in zip(observations, expected):
        got = numpy_policy(networks.policy.numpy_parameters(), observation, np.array([-1.0]), np.array([1.0]))
        np.testing.assert_allclose(got, action, rtol=1e-5, atol=1e-6)
    client = utils.VariableClient(utils.VariableServer())
    try:
        actor = builder.make_actor(spec, client, None, core.ActorSettings(single_process=True))
        assert actor.sigma == builder.config.sigma_max
        action = actor.select_action(observations[0])  # No parameters yet: uniform within the bounds.
        assert action.shape == (1,) and -1.0 <= action[0] <= 1.0
    finally:
        client.close()


# ------------------------------------------------------------------------------------------------ environments


@pytest.mark.parametrize(
    "name,low,high,rewards,solved",
    [("Pendulum-v1", -2.0, 2.0, (-16.2736044, 0.0), -200.0), ("MountainCarContinuous-v0", -1.0, 1.0, (-0.1, 100), 90)],
)
def test_continuous_environments_have_bounded_specs_and_thresholds(name, low, high, rewards, solved):
    environment = envs.make_environment(name, seed=0)
    action_spec = environment.action_spec()
    assert isinstance(action_spec, specs.BoundedArray) and action_spec.shape == (1,)
    assert action_spec.dtype == np.float32
    np.testing.assert_array_equal(action_spec.minimum, [low]) and np.testing.assert_array_equal(
        action_spec.maximum, [high]
    )
    reward_spec = environment.reward_spec()
    assert isinstance(reward_spec, specs.BoundedArray)
    assert (float(reward_spec.minimum), float(reward_spec.maximum)) == pytest.approx(rewards)
    assert envs.solved_return(name) == solved and envs.max_return(name) is not None
    timestep = environment.reset()
    for _ in range(50):
        timestep = environment.step(action_spec.maximum)
        reward_spec.validate(timestep.reward)
    assert D4PGConfig().value_range(replay.make_environment_spec(environment))[0] < 0


def test_value_range_follows_the_reward_bounds_and_the_discount():
    spec = _spec()
    assert D4PGConfig(discount=0.99).value_range(spec) == pytest.approx((-1627.36044, 0.0))
    assert D4PGConfig(discount=0.9).value_range(spec) == pytest.approx((-162.736044, 0.0))
    assert D4PGConfig(v_min=-5.0, v_max=5.0).value_range(spec) == (-5.0, 5.0)


def test_bad_settings_get_one_error_naming_the_field_and_the_fix(capsys):
    with pytest.raises(ValueError, match=r"num_atoms must be >= 2.*set both v_min and v_max"):
        D4PGConfig(num_atoms=1, v_min=-1.0)
    with pytest.raises(ValueError, match=r"sigma_min \(0.5\) must be <= sigma_max \(0.1\)"):
        D4PGConfig(sigma_min=0.5, sigma_max=0.1)
    with pytest.raises(ValueError, match="D4PG needs continuous actions.*Pendulum-v1"):
        D4PGBuilder(D4PGConfig()).check_environment(_spec("CartPole-v1"))
    assert registry.builder_class("d4pg") is D4PGBuilder
    # The research script refuses them before any node starts, in one line each.
    for argv, expected in (
        (["--agent", "d4pg", "--env", "CartPole-v1"], "D4PG needs continuous actions"),
        (["--agent", "d4pg", "--env", "Pendulum-v1", "--config", "v_max=1"], "set both v_min and v_max"),
        (
            ["--agent", "d4pg", "--env", "Pendulum-v1", "--config", "v_min=none", "--config", "dqda_clipping=-1"],
            "dqda_clipping must be >= 0",
        ),
    ):
        with pytest.raises(SystemExit) as exit_info:
            run.main(argv)
        assert exit_info.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines


# ------------------------------------------------------------------------------------------------ end to end


def test_d4pg_runs_distributed_and_data_flows(tmp_path):
    # The rate limiter holds actors back unless the learner samples: reaching the step budget means data flowed.
    config = D4PGConfig(
        policy_hidden_sizes=(32, 32),
        critic_hidden_sizes=(32, 32),
        batch_size=32,
        min_replay_size=200,
        samples_per_insert=8.0,
        samples_per_insert_tolerance=0.5,
        variable_update_period=20,
    )
    experiment = experiments.ExperimentConfig(
        builder=D4PGBuilder(config),
        run_dir=str(tmp_path),
        env_name="Pendulum-v1",
        eval_episodes=2,
        max_actor_steps=2_000,
    )
    result = experiments.run_distributed(experiment, num_actors=2, launch_type="local_mp")
    assert result["actor_steps"] >= 2_000 and result["learner_steps"] > 0, result
    assert result["parameter_version"] > 0
    assert result["replay_inserts"] > 0 and result["replay_samples"] >= config.batch_size * result["learner_steps"]
    for actor in ("actor_0", "actor_1"):
        log = utils.read_csv_log(os.path.join(tmp_path, "logs", f"{actor}.csv"))
        assert max(log["parameter_version"]) > 0, f"{actor} never received parameters"
    learner_log = utils.read_csv_log(os.path.join(tmp_path, "logs", "learner.csv"))
    assert learner_log["learner_steps"] and np.isfinite(learner_log["critic_loss"]).all()
