"""Tests of the DQN pieces in one process, against a real replay.ReplayServer."""

import os

import dm_env
import numpy as np
import pytest
import tensorflow as tf

import agents
import replay
from agents import dqn, envs, experiments, utils

ENV = "CartPole-v1"
_TIMEOUT_MS = 20_000  # Sampling from a table below min_replay_size fails after this, never hangs.


def _spec():
    return replay.make_environment_spec(envs.make_environment(ENV))


def _fill(server, builder, num_episodes=20, seed=0):
    """Writes random-policy CartPole episodes through the builder's adder; returns steps written."""
    environment = envs.make_environment(ENV, seed=seed)
    adder = builder.make_adder(server.client())
    rng = np.random.default_rng(seed)
    steps = 0
    for _ in range(num_episodes):
        timestep = environment.reset()
        adder.add_first(timestep)
        while not timestep.last():
            action = np.int64(rng.integers(2))
            timestep = environment.step(action)
            adder.add(action, timestep)
            steps += 1
    adder.flush()
    return steps


@pytest.fixture(name="builder")
def fixture_builder():
    return dqn.DQNBuilder(
        dqn.DQNConfig(
            min_replay_size=100,
            batch_size=32,
            num_sgd_steps_per_step=1,
            target_update_period=10_000,
            learning_rate=1e-2,
        )
    )


@pytest.fixture(name="server")
def fixture_server(builder):
    with replay.ReplayServer(builder.make_replay_tables(_spec(), rate_limited=False)) as server:
        yield server


def test_apex_epsilon_ladder():
    epsilons = dqn.apex_epsilons(8)
    assert epsilons[0] == pytest.approx(0.4)
    assert epsilons[-1] == pytest.approx(0.4**8)
    assert epsilons[3] == pytest.approx(0.4 ** (1 + 7 * 3 / 7))
    assert all(a > b for a, b in zip(epsilons, epsilons[1:]))
    assert dqn.apex_epsilons(1) == [0.4]
    with pytest.raises(ValueError, match="num_actors"):
        dqn.apex_epsilons(0)


def test_linear_epsilon_schedule():
    schedule = dqn.linear_epsilon(1.0, 0.1, 100)
    assert schedule(0) == 1.0 and schedule(50) == pytest.approx(0.55) and schedule(1000) == pytest.approx(0.1)


def test_double_q_target_arithmetic():
    rewards = tf.constant([1.0, 2.0])
    discounts = tf.constant([0.81, 0.0])  # gamma^(n-1) for n=3, gamma=0.9; then a terminal.
    q_online = tf.constant([[1.0, 5.0], [3.0, 0.0]])  # Picks action 1, then action 0.
    q_target = tf.constant([[10.0, 20.0], [30.0, 40.0]])
    targets = dqn.double_q_targets(rewards, discounts, 0.9, q_online, q_target).numpy()
    np.testing.assert_allclose(targets, [1.0 + 0.9 * 0.81 * 20.0, 2.0])


def test_nstep_transitions_from_replay_give_expected_targets(server, builder):
    """CartPole rewards are 1: R = 1 + g + g^2 and D = g^2 for full 3-step transitions."""
    _fill(server, builder, num_episodes=10)
    gamma = builder.config.discount
    sample = next(iter(builder.make_dataset_iterator(server.address, _TIMEOUT_MS)))
    rewards, discounts = sample.data.reward.numpy(), sample.data.discount.numpy()
    full = np.isclose(discounts, gamma**2)  # Full 3-step transitions (not cut by an episode edge).
    assert full.any()
    np.testing.assert_allclose(rewards[full], 1 + gamma + gamma**2, rtol=1e-5)
    np.testing.assert_allclose(discounts[full], gamma**2, rtol=1e-5)
    q_next = np.ones((len(rewards), 2), np.float32)
    targets = dqn.double_q_targets(rewards, discounts, gamma, q_next, q_next).numpy()
    np.testing.assert_allclose(targets[full], 1 + gamma + gamma**2 + gamma**3, rtol=1e-5)


def test_importance_weights_normalised():
    weights = dqn.importance_weights(tf.constant([0.5, 0.25, 0.125]), 1.0).numpy()
    np.testing.assert_allclose(weights, [0.25, 0.5, 1.0])


@pytest.mark.parametrize("dueling", [False, True])
def test_numpy_twin_matches_network(dueling):
    network = dqn.QNetwork(4, 3, (16, 8), dueling=dueling, seed=1)
    observations = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(
        dqn.numpy_q_values(network.numpy_parameters(), observations, dueling),
        network(observations).numpy(),
        rtol=1e-5,
        atol=1e-6,
    )


def _td_errors(learner_network, target_network, batch, gamma):
    data = batch.data
    q_taken = tf.gather(learner_network(data.observation), tf.cast(data.action, tf.int32), axis=-1, batch_dims=1)
    targets = dqn.double_q_targets(
        data.reward, data.discount, gamma, learner_network(data.next_observation), target_network(data.next_observation)
    )
    return np.abs((targets - q_taken).numpy())


def test_learner_lowers_td_error_on_fixed_batch_and_updates_priorities(server, builder):
    _fill(server, builder)
    batch = next(iter(builder.make_dataset_iterator(server.address, _TIMEOUT_MS)))
    fixed = iter(tf.data.Dataset.from_tensors(batch).repeat())
    networks = builder.make_networks(_spec(), seed=0)
    counter = utils.Counter()
    variable_server = utils.VariableServer()
    with replay.PriorityUpdater(server.client(), builder.config.replay_table_name) as updater:
        learner = builder.make_learner(
            networks, fixed, priority_updater=updater, publisher=variable_server, counter=counter
        )
        before = _td_errors(*networks, batch, builder.config.discount).mean()
        learner.run(num_steps=60)
        after = _td_errors(*networks, batch, builder.config.discount).mean()
        updater.flush(timeout=30)
    assert after < 0.5 * before, (before, after)
    assert counter.get_counts() == {"steps": 60} and learner.num_steps == 60
    version, params = variable_server.get()
    assert version == 60
    np.testing.assert_array_equal(params[0], networks[0].parameters[0].numpy())
    keys = set(batch.info.key.numpy().tolist())
    priorities = {}
    for sample in server.client().sample(builder.config.replay_table_name, num_samples=300, emit_timesteps=False):
        priorities[sample.info.key] = sample.info.priority
    updated = [priorities[key] for key in keys if key in priorities]
    assert updated and all(p != 1.0 for p in updated)
    assert all(p == 1.0 for key, p in priorities.items() if key not in keys)


def test_several_sgd_steps_per_learner_step_match_single_steps(server, builder):
    """num_sgd_steps_per_step=4 on one batch == four single steps on its quarters, in order."""
    _fill(server, builder)
    config = builder.config.replace(num_sgd_steps_per_step=4, target_update_period=3)
    batch = next(iter(dqn.DQNBuilder(config).make_dataset_iterator(server.address, _TIMEOUT_MS)))
    assert batch.info.key.shape == [4 * config.batch_size]
    quarters = tf.nest.map_structure(lambda x: tf.reshape(x, [4, config.batch_size, *x.shape[1:]]), batch)
    fused_networks = builder.make_networks(_spec(), seed=0)
    fused_counter = utils.Counter()
    fused = dqn.DQNBuilder(config).make_learner(
        fused_networks, iter(tf.data.Dataset.from_tensors(batch)), counter=fused_counter
    )
    single_networks = builder.make_networks(_spec(), seed=0)
    single = dqn.DQNBuilder(config.replace(num_sgd_steps_per_step=1)).make_learner(
        single_networks, iter(tf.data.Dataset.from_tensor_slices(quarters))
    )
    fused.step()
    single.run(num_steps=4)
    assert fused.num_steps == single.num_steps == 4
    assert fused_counter.get_counts() == {"steps": 4}
    for fused_network, single_network in zip(fused_networks, single_networks):  # Online, then target.
        for a, b in zip(fused_network.numpy_parameters(), single_network.numpy_parameters()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(
        fused_networks[1].numpy_parameters()[0], builder.make_networks(_spec(), seed=0)[1].numpy_parameters()[0]
    )


def test_learner_save_restore_round_trip(server, builder):
    _fill(server, builder, num_episodes=10)
    networks = builder.make_networks(_spec(), seed=0)
    learner = builder.make_learner(networks, builder.make_dataset_iterator(server.address, _TIMEOUT_MS))
    learner.run(num_steps=3)
    state = learner.save()
    other = builder.make_learner(
        builder.make_networks(_spec(), seed=7), builder.make_dataset_iterator(server.address, _TIMEOUT_MS)
    )
    other.restore(state)
    assert other.num_steps == 3
    np.testing.assert_array_equal(other.get_variables()[0][0], learner.get_variables()[0][0])


def test_actor_acts_greedily_and_writes_transitions(server, builder):
    spec = _spec()
    network, _ = builder.make_networks(spec, seed=0)
    variable_server = utils.VariableServer()
    variable_server.publish(network.numpy_parameters())
    client = utils.VariableClient(variable_server)
    try:
        actor = dqn.DQNActor(
            spec.actions.num_values, False, client, epsilon=0.0, adder=builder.make_adder(server.client())
        )
        actor.update(wait=True)
        observation = np.array([0.1, -0.2, 0.05, 0.3], np.float32)
        assert actor.select_action(observation) == np.argmax(network(observation[None]).numpy())
        steps = agents.EnvironmentLoop(envs.make_environment(ENV, seed=0), actor).run(num_episodes=2)
    finally:
        client.close()
    info = server.client().server_info()[builder.config.replay_table_name]
    # One transition per step, plus the n-1 shorter ones ending at each episode's last step.
    assert info.current_size == steps + 2 * (builder.config.n_step - 1)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="min_replay_size"):
        dqn.DQNConfig(min_replay_size=10, max_replay_size=5)
    with pytest.raises(ValueError, match="n_step"):
        dqn.DQNConfig(n_step=0)
    with pytest.raises(ValueError, match="num_sgd_steps_per_step"):
        dqn.DQNConfig(num_sgd_steps_per_step=0)
    with pytest.raises(ValueError, match=r"learning_rate must be > 0 \(got -1\).*discount must be in \[0, 1\]"):
        dqn.DQNConfig(learning_rate=-1, discount=1.5)


def _actors_epsilons(builder, settings):
    """The starting epsilon of the actor `builder` makes for each of `settings`, and its epsilon after the config's
    decay steps."""
    variable_server = utils.VariableServer()
    clients = [utils.VariableClient(variable_server) for _ in settings]
    try:
        actors = [builder.make_actor(_spec(), client, None, s) for client, s in zip(clients, settings)]
        return [(actor._epsilon(0), actor._epsilon(builder.config.epsilon_decay_steps)) for actor in actors]
    finally:
        for client in clients:
            client.close()


def test_builder_gives_distributed_actors_the_apex_ladder_and_the_single_process_a_decay(builder):
    ladder = [agents.ActorSettings(actor_id=i, num_actors=3) for i in range(3)]
    *distributed, single = _actors_epsilons(builder, [*ladder, agents.ActorSettings(single_process=True)])
    assert [start for start, _ in distributed] == pytest.approx(dqn.apex_epsilons(3))
    assert single == (builder.config.epsilon_start, pytest.approx(builder.config.epsilon_end))


def test_apex_ladder_base_and_alpha_come_from_the_config():
    builder = dqn.DQNBuilder(dqn.DQNConfig(apex_epsilon_base=0.5, apex_epsilon_alpha=2.0))
    ladder = _actors_epsilons(builder, [agents.ActorSettings(actor_id=i, num_actors=2) for i in range(2)])
    assert [start for start, _ in ladder] == pytest.approx([0.5, 0.5**3])
    with pytest.raises(ValueError, match=r"apex_epsilon_base must be in \[0, 1\]"):
        dqn.DQNConfig(apex_epsilon_base=1.5)
    with pytest.raises(ValueError, match="apex_epsilon_alpha must be >= 0"):
        dqn.DQNConfig(apex_epsilon_alpha=-1)


def test_builder_refuses_continuous_actions_naming_the_fix(builder):
    with pytest.raises(ValueError, match="DQN needs discrete actions.*CartPole-v1"):
        builder.check_environment(replay.make_environment_spec(envs.make_environment("Pendulum-v1")))


def test_single_process_run_writes_run_files(tmp_path):
    from agents.dqn import run

    run_dir = str(tmp_path / "run")
    config = dqn.DQNConfig(min_replay_size=200, samples_per_insert=4.0, learning_rate=1e-6)  # Never solves first.
    result = run.main(["--single_process", "--max_actor_steps", "600", "--run_dir", run_dir], config=config)
    assert set(result) >= {"solved", "wall_seconds", "eval_return", "actor_steps", "learner_steps"}
    assert result["actor_steps"] >= 600 and result["learner_steps"] > 0
    for name in ("config.json", "result.json", "program.json", "learning_curve.png", "logs/actor.csv"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    assert utils.read_json(os.path.join(run_dir, "program.json"))["replay_address"].startswith("localhost:")
    saved = utils.read_json(os.path.join(run_dir, "config.json"))
    assert saved["agent"] == "dqn" and saved["config"]["samples_per_insert"] == 4.0


class _ScriptedReturns(dm_env.Environment):
    """One-step episodes whose rewards are `returns`, in order; counts resets."""

    def __init__(self, returns):
        self._returns = list(returns)
        self.episodes = 0

    def reset(self):
        self.episodes += 1
        return dm_env.restart(np.zeros(4, np.float32))

    def step(self, action):
        return dm_env.termination(self._returns[self.episodes - 1], np.zeros(4, np.float32))

    def observation_spec(self):
        return dm_env.specs.Array((4,), np.float32)

    def action_spec(self):
        return dm_env.specs.DiscreteArray(2)


class _FirstActionActor(agents.Actor):
    def select_action(self, observation):
        return 0

    def observe_first(self, timestep):
        pass

    def observe(self, action, next_timestep):
        pass

    def update(self, wait=False):
        pass


def test_a_solve_check_screens_then_stops_once_the_solving_mean_is_out_of_reach():
    returns = [500.0, 100.0] + [500.0] * 8
    environment = _ScriptedReturns(returns)
    assert experiments.evaluate(environment, _FirstActionActor(), 10) == pytest.approx(np.mean(returns))
    assert environment.episodes == 10
    # The screening 500 passes; after 500 and 100, eight perfect episodes reach 4,600 < 10 * 475: no need to play
    # them, and the partial mean is no evaluation.
    environment = _ScriptedReturns([500.0] + returns)
    assert experiments.solve_check(environment, _FirstActionActor(), 10, 475.0, 500.0) == (500.0, None, False)
    assert environment.episodes == 3
    environment = _ScriptedReturns([100.0])
    assert experiments.solve_check(environment, _FirstActionActor(), 10, 475.0, 500.0) == (100.0, None, False)
    assert environment.episodes == 1
    environment = _ScriptedReturns([500.0] * 11)
    assert experiments.solve_check(environment, _FirstActionActor(), 10, 475.0, 500.0) == (500.0, 500.0, True)
    assert environment.episodes == 11
    assert envs.max_return(ENV) == 500.0 and envs.max_return("NoSuchEnv-v0") is None


@pytest.mark.parametrize("stop_when_solved", [True, False])
def test_solve_checks_run_every_solve_check_every_actor_steps_between_full_evaluations(tmp_path, stop_when_solved):
    experiment = experiments.ExperimentConfig(
        dqn.DQNBuilder(dqn.DQNConfig()),
        str(tmp_path),
        eval_every=2_000,
        solve_check_every=500,
        stop_when_solved=stop_when_solved,
    )
    logger = utils.InMemoryLogger()
    evaluations = experiments.Evaluations(experiment, _ScriptedReturns([100.0] * 50), _FirstActionActor(), logger)
    evaluated_at = []
    for actor_steps in range(0, 4_001, 100):
        due = evaluations.due(actor_steps)
        rows = len(logger.data)
        evaluations.run({"actor_steps": actor_steps}, parameter_version=1)
        assert (len(logger.data) > rows) == due, f"due({actor_steps}) disagrees with what run did"
        if due:
            evaluated_at.append(actor_steps)
    full = [row["actor_steps"] for row in logger.data if not np.isnan(row["eval_return"])]
    assert full == [2_000, 4_000]
    if stop_when_solved:  # A check every 500 steps; a full evaluation counts as one.
        assert evaluated_at == [0, 500, 1_000, 1_500, 2_000, 2_500, 3_000, 3_500, 4_000]
    else:
        assert evaluated_at == [2_000, 4_000]
