"""A3C/A2C: n-step targets on a hand-built rollout, rollouts of a real environment, workers pushing to a real
parameter server, and end-to-end runs in which pushes, updates and parameter versions advance."""

import concurrent.futures
import os

import numpy as np
import pytest
from conftest import usage_error

import replay
from agents import envs, experiments, utils
from agents.a3c import A2CBuilder, A2CConfig, A3CBuilder, A3CConfig, Rollout, RolloutCollector, n_step_targets, nodes
from agents.a3c.networks import make_network
from agents.impala import numpy_forward


def test_n_step_targets_bootstrap_at_truncations_and_the_rollouts_end_but_not_at_terminations():
    # Environment 0 terminates at t=1; environment 1 is truncated at t=1 (discount 1); both rollouts end at t=2.
    rollout = Rollout(
        observations=np.zeros((3, 2, 1), np.float32),
        actions=np.zeros((3, 2), np.int32),
        rewards=np.array([[1, 1], [2, 1], [3, 1]], np.float32),
        discounts=np.array([[1, 1], [0, 1], [1, 1]], np.float32),
        continues=np.array([[1, 1], [0, 0], [0, 0]], np.float32),
        values=np.array([[0.5, 1.0], [1.0, 2.0], [1.5, 3.0]], np.float32),
        next_values=np.array([[10, 10], [20, 5], [30, 7]], np.float32),
    )
    returns, advantages = n_step_targets(rollout, discount=0.9)
    # By hand, backwards: R_2 = r_2 + 0.9 V(s'_2); R_1 = r_1 (terminated) or r_1 + 0.9 V(s'_1) (truncated);
    # R_0 = r_0 + 0.9 R_1.
    expected = np.array([[1 + 0.9 * 2, 1 + 0.9 * 5.5], [2, 1 + 0.9 * 5], [3 + 0.9 * 30, 1 + 0.9 * 7]], np.float32)
    np.testing.assert_allclose(returns, expected, rtol=1e-6)
    np.testing.assert_allclose(advantages, expected - rollout.values, rtol=1e-6)


def test_a_rollout_of_a_real_environment_marks_episode_ends_and_its_own_end():
    environments = [envs.make_environment("CartPole-v1", seed=s) for s in range(2)]
    collector = RolloutCollector(environments, seed=0)
    rng = np.random.default_rng(0)
    params = [rng.normal(size=(4, 8)), np.zeros(8), rng.normal(size=(8, 2)), np.zeros(2), np.ones((8, 1)), np.zeros(1)]
    params = [p.astype(np.float32) for p in params]
    finished = []
    rollout = None
    while not finished:  # Random policies end CartPole episodes within a few dozen steps.
        rollout, finished = collector.collect(params, t_max=30)
    assert rollout.observations.shape == (30, 2, 4) and rollout.actions.shape == (30, 2)
    assert np.all(rollout.continues[-1] == 0)
    ends = rollout.continues[:-1] == 0
    assert ends.sum() == len(finished)  # Each finished episode ended the chain of returns in its environment.
    assert np.all(rollout.discounts[:-1][ends] == 0)  # CartPole episodes this short terminate (pole or cart).
    assert np.all(rollout.discounts[:-1][~ends] == 1)
    for length in (length for _, length in finished):
        assert 1 <= length <= 500


@pytest.mark.parametrize("head_hidden_sizes", [(), (12,), (12, 6)])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_the_numpy_twin_computes_the_networks_logits_and_values(activation, head_hidden_sizes):
    spec = replay.make_environment_spec(envs.make_environment("CartPole-v1", seed=0))
    config = A3CConfig(activation=activation, hidden_sizes=(16, 8), head_hidden_sizes=head_hidden_sizes)
    network = make_network(spec, config, seed=0)
    rng = np.random.default_rng(0)
    # Every parameter nonzero (biases and the value head start at zero, which would hide a misread layer).
    network.set_parameters([p + rng.normal(scale=0.3, size=p.shape) for p in network.numpy_parameters()])
    observations = rng.normal(size=(5, 4)).astype(np.float32)
    logits, values = network(observations)
    forward = numpy_forward(config.activation, config.head_hidden_sizes)  # What workers and the evaluator act with.
    numpy_logits, numpy_values = forward(network.numpy_parameters(), observations)
    np.testing.assert_allclose(numpy_logits, logits.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(numpy_values, values.numpy(), rtol=1e-5, atol=1e-5)


def test_head_hidden_layers_follow_the_torso_in_each_heads_own_parameters():
    spec = replay.make_environment_spec(envs.make_environment("CartPole-v1", seed=0))
    linear_heads = make_network(spec, A3CConfig(hidden_sizes=(16,), head_hidden_sizes=()), seed=0)
    assert [(p.name.split("/")[-1], tuple(p.shape)) for p in linear_heads.parameters] == [
        ("w0:0", (4, 16)),
        ("b0:0", (16,)),
        ("policy_w:0", (16, 2)),
        ("policy_b:0", (2,)),
        ("value_w:0", (16, 1)),
        ("value_b:0", (1,)),
    ]  # IMPALA's layout, unchanged by the option's default.
    with_heads = make_network(spec, A3CConfig(hidden_sizes=(16,), head_hidden_sizes=(8,)), seed=0)
    assert [(p.name.split("/")[-1], tuple(p.shape)) for p in with_heads.parameters] == [
        ("w0:0", (4, 16)),
        ("b0:0", (16,)),
        ("policy_w0:0", (16, 8)),
        ("policy_b0:0", (8,)),
        ("policy_w:0", (8, 2)),
        ("policy_b:0", (2,)),
        ("value_w0:0", (16, 8)),
        ("value_b0:0", (8,)),
        ("value_w:0", (8, 1)),
        ("value_b:0", (1,)),
    ]
    # The torso is drawn first from the seed, so it is the same with or without head layers.
    np.testing.assert_array_equal(linear_heads.numpy_parameters()[0], with_heads.numpy_parameters()[0])
    with pytest.raises(ValueError, match="head_hidden_sizes must all be >= 1 \\(got \\(0,\\)\\)"):
        A3CConfig(head_hidden_sizes=(0,))


def test_the_loss_gradient_is_taken_at_the_parameters_passed_in():
    import tensorflow as tf

    from agents.a3c.learning import A2CLoss

    spec = replay.make_environment_spec(envs.make_environment("CartPole-v1", seed=0))
    config = A3CConfig(hidden_sizes=(8,), head_hidden_sizes=(4,))
    network, reference = make_network(spec, config, seed=0), make_network(spec, config, seed=1)
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(6, 4)).astype(np.float32)
    actions = rng.integers(0, 2, size=6).astype(np.int32)
    returns, advantages = rng.normal(size=(2, 6)).astype(np.float32)
    loss = A2CLoss(network, config)
    for seed in (1, 2):  # Two parameter sets through one compiled function: each call uses its own.
        parameters = make_network(spec, config, seed=seed).numpy_parameters()
        parameters = [p + rng.normal(scale=0.1, size=p.shape).astype(np.float32) for p in parameters]
        gradients, _ = loss.gradients(parameters, observations, actions, returns, advantages)
        reference.set_parameters(parameters)
        with tf.GradientTape() as tape:  # The loss written out again, on a network holding those parameters.
            logits, values = reference(observations)
            log_pi = tf.nn.log_softmax(logits)
            taken = tf.gather(log_pi, actions, axis=-1, batch_dims=1)
            expected_loss = -tf.reduce_mean(taken * advantages) + config.value_cost * tf.reduce_mean(
                tf.square(returns - values)
            )
        expected = tape.gradient(expected_loss, reference.parameters)
        for got, want in zip(gradients, expected):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("synchronous", [False, True])
def test_the_server_clips_each_updates_gradient_a2cs_mean_as_one_batch(synchronous):
    import tensorflow as tf

    from agents.a3c.learning import make_optimizer
    from agents.utils.parameter_server import ParameterServer

    config = (A2CConfig if synchronous else A3CConfig)(max_gradient_norm=0.3)
    initial = np.array([1.0, -1.0, 0.5], np.float32)
    # Two updates: a large gradient, then a small one (RMSProp's first step does not depend on its scale).
    rounds = [[[3.0, 0.0, 0.0], [0.0, 4.0, 0.0]], [[0.1, 0.0, 0.05], [0.0, 0.1, 0.05]]]
    if not synchronous:
        rounds = [pushes[:1] for pushes in rounds]
    server = ParameterServer(
        lambda: [initial.copy()], lambda: make_optimizer(config), group_size=len(rounds[0]), barrier_timeout=60.0
    )
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for version, pushes in enumerate(rounds):
            futures = [pool.submit(server.push_gradients, [np.array(push, np.float32)], version) for push in pushes]
            results = [future.result(timeout=60) for future in futures]
    ((_, parameters),) = {version: result for version, result in results}.items()

    def by_hand(clip: bool) -> np.ndarray:
        """RMSProp without clipping applied to each update's mean gradient, clipped first if `clip`."""
        variable = tf.Variable(initial)
        optimizer = tf.keras.optimizers.RMSprop(
            config.learning_rate, rho=config.rmsprop_decay, epsilon=config.rmsprop_epsilon
        )
        for pushes in rounds:
            mean = tf.constant(np.mean(pushes, axis=0), tf.float32)
            gradient = tf.clip_by_global_norm([mean], config.max_gradient_norm)[0][0] if clip else mean
            optimizer.apply_gradients([(gradient, variable)])
        return variable.numpy()

    np.testing.assert_allclose(parameters[0], by_hand(clip=True), rtol=1e-5)
    assert not np.allclose(parameters[0], by_hand(clip=False), rtol=1e-3)


def test_orthogonal_initialization_scales_torso_policy_and_value_layers_by_their_gains():
    spec = replay.make_environment_spec(envs.make_environment("CartPole-v1", seed=0))
    config = A3CConfig(hidden_sizes=(64, 64), head_hidden_sizes=(), orthogonal_init=True)
    torso_in, _, torso, _, policy, _, value, value_b = make_network(spec, config, seed=0).numpy_parameters()
    np.testing.assert_allclose(torso_in @ torso_in.T, 2.0 * np.eye(4), atol=1e-5)  # 4 orthogonal rows, gain sqrt 2.
    np.testing.assert_allclose(torso.T @ torso, 2.0 * np.eye(64), atol=1e-5)
    np.testing.assert_allclose(policy.T @ policy, 1e-4 * np.eye(2), atol=1e-9)
    assert np.isclose(np.linalg.norm(value), 1.0, atol=1e-6) and value_b[0] == 0.0
    glorot_value = make_network(spec, A3CConfig(orthogonal_init=False), seed=0).numpy_parameters()[-2]
    assert not glorot_value.any()  # Without it the value head starts at zero, as IMPALA's does.


def test_workers_push_to_a_synchronous_server_and_adopt_its_parameters(tmp_path):
    experiment = experiments.ExperimentConfig(builder=A2CBuilder(A2CConfig(num_envs=2)), run_dir=str(tmp_path))
    server = nodes.make_parameter_server(experiment, num_workers=1)
    loop = nodes.WorkerLoop(experiment, 0, 1, server, utils.Counter())
    worker = loop._worker  # pylint: disable=protected-access
    initial = server.get()[1]
    for _ in range(3):
        worker.step()
    server.close()
    assert worker.version == server.version() == 3
    stats = server.stats()
    assert (stats["pushes"], stats["updates"], stats["staleness_histogram"]) == (3, 3, {"0": 3})
    assert any(not np.array_equal(a, b) for a, b in zip(initial, server.get()[1]))


def test_settings_that_cannot_run_are_refused(capsys):
    with pytest.raises(ValueError, match=r"t_max must be >= 1 \(got 0\)"):
        A3CConfig(t_max=0)
    with pytest.raises(ValueError, match="activation must be 'relu' or 'tanh' \\(got 'gelu'\\)"):
        A3CConfig(activation="gelu")
    with pytest.raises(ValueError, match="num_groups=2 needs synchronous=true"):
        A3CConfig(num_groups=2)
    with pytest.raises(ValueError, match="3 workers do not split into num_groups=2 equal groups"):
        A2CConfig(num_groups=2).group_size(3)
    message = usage_error(capsys, ["--agent", "a3c", "--single_process", "--deterministic"])
    assert "single-process a3c runs cannot repeat exactly" in message
    message = usage_error(capsys, ["--agent", "a2c", "--env", "Pendulum-v1"])
    assert "A3C/A2C needs discrete actions" in message


@pytest.mark.parametrize(
    "builder, launch_type",
    [
        (A3CBuilder(A3CConfig()), "local_mp"),
        (A2CBuilder(A2CConfig()), "local_mp"),
        (A2CBuilder(A2CConfig()), "local_mt"),
        (A3CBuilder(A3CConfig()), "test_mt"),
    ],
    ids=["a3c-local_mp", "a2c-local_mp", "a2c-local_mt", "a3c-test_mt"],
)
def test_pushes_updates_and_versions_advance_in_a_distributed_run(tmp_path, builder, launch_type):
    experiment = experiments.ExperimentConfig(
        builder=builder,
        run_dir=str(tmp_path),
        env_name="CartPole-v1",
        eval_episodes=2,
        max_actor_steps=2_000,
        stop_when_solved=False,  # The defaults can solve CartPole within the budget; run it out all the same.
    )
    result = experiments.run_experiment(experiment, num_actors=2, launch_type=launch_type)
    server = result["parameter_server"]
    assert result["stopped_by"] == "budget" and result["actor_steps"] >= 2_000, result
    assert server["pushes"] > 0 and server["updates"] > 0 and result["learner_steps"] == server["updates"], server
    assert result["parameter_version"] > 0  # The evaluator evaluated parameters the server had updated.
    if builder.config.synchronous:  # Two workers a round; a round short of a late worker has one push.
        assert server["updates"] <= server["pushes"] - server["waiting"] <= 2 * server["updates"], server
    else:
        assert server["pushes"] == server["updates"] + server["dropped_stale"], server
        assert sum(server["staleness_histogram"].values()) == server["updates"]
    for worker in ("actor_0", "actor_1"):
        log = utils.read_csv_log(os.path.join(tmp_path, "logs", f"{worker}.csv"))
        assert max(log["parameter_version"]) > 0, f"{worker} never adopted updated parameters"
    assert utils.read_csv_log(os.path.join(tmp_path, "logs", "learner.csv"))["pushes"]


def test_a_single_process_run_through_the_research_script(tmp_path):
    from agents import run

    argv = ["--agent", "a2c", "--single_process", "--num_actors", "2", "--max_actor_steps", "1000"]
    argv += ["--stop_when_solved", "false"]
    result = run.main([*argv, "--eval_episodes", "2", "--run_dir", str(tmp_path / "run")])
    assert result["stopped_by"] == "budget" and result["actor_steps"] >= 1000
    server = result["parameter_server"]
    assert server["group_size"] == 2 and server["updates"] > 0 and server["pushes"] <= 2 * server["updates"]
    assert os.path.exists(tmp_path / "run" / "learning_curve.png")
