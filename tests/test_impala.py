"""IMPALA: V-trace against a plain numpy reading of the paper, the learner's direction on a fixed batch, the queue
settings it refuses, and an end-to-end distributed run (local_mp) in which data flows."""

import os

import numpy as np
import pytest
import reverb
import tensorflow as tf

import replay
from agents import core, envs, experiments, run, utils
from agents.experiments._iterators import StoppableIterator
from agents.impala import IMPALABuilder, IMPALAConfig, numpy_policy_and_value, vtrace

# ------------------------------------------------------------------------------------------------ V-trace


def numpy_vtrace(values, bootstrap, rewards, discounts, rhos, lambda_=1.0, rho_bar=1.0, pg_rho_bar=1.0, c_bar=1.0):
    """Espeholt et al. (2018), eq. (1), term by term:
    v_s = V(x_s) + sum_{t=s}^{T-1} gamma_s..gamma_{t-1} (c_s..c_{t-1}) delta_t,
    delta_t = min(rho_bar, rho_t) (r_t + gamma_t V(x_{t+1}) - V(x_t)), c_i = lambda min(c_bar, rho_i);
    advantages min(pg_rho_bar, rho_s) (r_s + gamma_s v_{s+1} - V(x_s)) with v_T = V(x_T)."""
    length, batch = values.shape
    next_values = np.concatenate([values[1:], bootstrap[None]], axis=0)
    vs = np.zeros_like(values)
    for b in range(batch):
        for s in range(length):
            total = values[s, b]
            for t in range(s, length):
                weight = 1.0
                for i in range(s, t):
                    weight *= discounts[i, b] * lambda_ * min(c_bar, rhos[i, b])
                delta = min(rho_bar, rhos[t, b]) * (rewards[t, b] + discounts[t, b] * next_values[t, b] - values[t, b])
                total += weight * delta
            vs[s, b] = total
    next_vs = np.concatenate([vs[1:], bootstrap[None]], axis=0)
    advantages = np.minimum(pg_rho_bar, rhos) * (rewards + discounts * next_vs - values)
    return vs, advantages


def _random_inputs(rng, length, batch, rho_high=2.5):
    values = rng.normal(size=(length, batch)).astype(np.float32)
    bootstrap = rng.normal(size=batch).astype(np.float32)
    rewards = rng.normal(size=(length, batch)).astype(np.float32)
    discounts = (0.9 * (rng.random((length, batch)) > 0.15)).astype(np.float32)  # Some terminations.
    rhos = rng.uniform(0.1, rho_high, size=(length, batch)).astype(np.float32)
    return values, bootstrap, rewards, discounts, rhos


def _tf_vtrace(values, bootstrap, rewards, discounts, rhos, **kwargs):
    returns = vtrace(*(tf.constant(x) for x in (values, bootstrap, rewards, discounts, rhos)), **kwargs)
    return returns.vs.numpy(), returns.pg_advantages.numpy()


@pytest.mark.parametrize("length,batch", [(1, 1), (2, 3), (7, 1), (19, 4), (30, 2)])
def test_vtrace_matches_the_papers_definition(length, batch):
    rng = np.random.default_rng(length * 100 + batch)
    inputs = _random_inputs(rng, length, batch)
    for thresholds in ({}, {"lambda_": 0.9, "rho_bar": 1.5, "pg_rho_bar": 0.8, "c_bar": 1.2}):
        expected_vs, expected_advantages = numpy_vtrace(*inputs, **thresholds)
        kwargs = {
            "lambda_": thresholds.get("lambda_", 1.0),
            "clip_rho_threshold": thresholds.get("rho_bar", 1.0),
            "clip_pg_rho_threshold": thresholds.get("pg_rho_bar", 1.0),
            "clip_c_threshold": thresholds.get("c_bar", 1.0),
        }
        vs, advantages = _tf_vtrace(*inputs, **kwargs)
        np.testing.assert_allclose(vs, expected_vs, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(advantages, expected_advantages, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("length,batch", [(1, 2), (5, 3), (19, 4)])
def test_on_policy_vtrace_is_the_n_step_bootstrapped_return(length, batch):
    rng = np.random.default_rng(length)
    values, bootstrap, rewards, discounts, _ = _random_inputs(rng, length, batch)
    vs, advantages = _tf_vtrace(values, bootstrap, rewards, discounts, np.ones_like(values))
    # G_s = r_s + gamma_s G_{s+1}, G_T = V(x_T): the return of the rest of the sequence, then bootstrapped.
    returns = np.zeros_like(values)
    following = bootstrap.copy()
    for s in reversed(range(length)):
        following = rewards[s] + discounts[s] * following
        returns[s] = following
    np.testing.assert_allclose(vs, returns, rtol=1e-5, atol=1e-5)
    next_returns = np.concatenate([returns[1:], bootstrap[None]], axis=0)
    np.testing.assert_allclose(advantages, rewards + discounts * next_returns - values, rtol=1e-5, atol=1e-5)


def test_vtrace_clips_importance_ratios_above_one():
    rng = np.random.default_rng(7)
    values, bootstrap, rewards, discounts, _ = _random_inputs(rng, 10, 3)
    large = np.full_like(values, 3.0)
    # With rho-bar = c-bar = 1 any rho >= 1 counts as 1, so large ratios give the on-policy targets...
    clipped = _tf_vtrace(values, bootstrap, rewards, discounts, large)
    on_policy = _tf_vtrace(values, bootstrap, rewards, discounts, np.ones_like(values))
    np.testing.assert_allclose(clipped[0], on_policy[0], rtol=1e-6)
    np.testing.assert_allclose(clipped[1], on_policy[1], rtol=1e-6)
    # ...and without clipping they would differ.
    unclipped = _tf_vtrace(
        values, bootstrap, rewards, discounts, large, clip_rho_threshold=10.0, clip_pg_rho_threshold=10.0
    )
    assert not np.allclose(unclipped[0], on_policy[0])
    # Ratios below one are not clipped: they change the targets.
    small = _tf_vtrace(values, bootstrap, rewards, discounts, np.full_like(values, 0.5))
    assert not np.allclose(small[0], on_policy[0])


def test_a_zero_discount_at_a_termination_stops_the_bootstrap():
    rng = np.random.default_rng(3)
    values, bootstrap, rewards, _, rhos = _random_inputs(rng, 12, 4)
    discounts = np.full_like(values, 0.99)
    terminal = 5
    discounts[terminal] = 0.0
    vs, advantages = _tf_vtrace(values, bootstrap, rewards, discounts, rhos)
    # Anything after the termination (later values, rewards, the bootstrap) leaves the steps up to it unchanged.
    later_values = values.copy()
    later_values[terminal + 1 :] += 100.0
    later_rewards = rewards.copy()
    later_rewards[terminal + 1 :] -= 50.0
    changed = _tf_vtrace(later_values, bootstrap + 100.0, later_rewards, discounts, rhos)
    np.testing.assert_allclose(changed[0][: terminal + 1], vs[: terminal + 1], rtol=1e-6)
    np.testing.assert_allclose(changed[1][: terminal + 1], advantages[: terminal + 1], rtol=1e-6)
    # At the termination the target is the reward alone (on-policy here: rho = 1).
    on_policy = _tf_vtrace(values, bootstrap, rewards, discounts, np.ones_like(rhos))
    np.testing.assert_allclose(on_policy[0][terminal], rewards[terminal], rtol=1e-6)


# ------------------------------------------------------------------------------------------------ learner


def _spec():
    return replay.make_environment_spec(envs.make_environment("CartPole-v1"))


def _fixed_batch(rng, batch=16, length=20):
    """Random observations and uniformly random actions; reward 1 for the action matching the sign of the first
    observation feature, each step its own episode (discount 0), behaviour logits of the uniform policy."""
    observations = rng.normal(size=(batch, length, 4)).astype(np.float32)
    actions = rng.integers(2, size=(batch, length))
    good = (observations[..., 0] > 0).astype(np.int64)
    data = replay.Step(
        observation=observations,
        action=actions,
        reward=(actions == good).astype(np.float32),
        discount=np.zeros((batch, length), np.float32),
        start_of_episode=np.ones((batch, length), bool),
        extras={"logits": np.zeros((batch, length, 2), np.float32), "valid": np.ones((batch, length), bool)},
    )
    info = reverb.SampleInfo(
        key=tf.zeros([batch], tf.uint64),
        probability=tf.ones([batch], tf.float64),
        table_size=tf.ones([batch], tf.int64),
        priority=tf.ones([batch], tf.float64),
        times_sampled=tf.zeros([batch], tf.int32),
    )
    return reverb.ReplaySample(info, tf.nest.map_structure(tf.constant, data)), good


def test_the_learner_favours_high_advantage_actions_and_fits_values():
    sample, good = _fixed_batch(np.random.default_rng(0))
    builder = IMPALABuilder(IMPALAConfig(learning_rate=1e-3))
    network = builder.make_networks(_spec(), seed=0)
    server = utils.VariableServer()
    learner = builder.make_learner(network, iter(tf.data.Dataset.from_tensors(sample).repeat()), publisher=server)
    observations = sample.data.observation.numpy().reshape(-1, 4)

    def log_prob_of_good_actions():
        logits, _ = numpy_policy_and_value(network.numpy_parameters(), observations)
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        return log_probs[np.arange(len(observations)), good.reshape(-1)].mean()

    before_log_prob = log_prob_of_good_actions()
    before_value_loss = float(learner.loss(sample.data)["value_loss"])
    learner.run(num_steps=30)
    assert learner.num_steps == 30
    assert log_prob_of_good_actions() > before_log_prob + 0.1
    assert float(learner.loss(sample.data)["value_loss"]) < 0.5 * before_value_loss
    version, params = server.get()
    assert version == 30 and len(params) == len(network.parameters)  # Published every step.


def test_the_learner_runs_its_first_step_before_publishing_and_keeps_its_state():
    """Given batches of a known spec, the learner traces and runs its step at construction (TensorFlow's first call
    costs as much as the trace) and leaves networks, optimizer and step count as they were: its first real step
    reuses that trace and ends where a learner that never warmed up ends."""
    sample, _ = _fixed_batch(np.random.default_rng(3), batch=4)
    builder = IMPALABuilder(IMPALAConfig())
    server = utils.VariableServer()
    warmed = builder.make_learner(
        builder.make_networks(_spec(), seed=0), iter(tf.data.Dataset.from_tensors(sample).repeat()), publisher=server
    )
    cold = builder.make_learner(builder.make_networks(_spec(), seed=0), (sample for _ in range(1)))
    assert warmed._step_fn.experimental_get_tracing_count() == 1 and cold._step_fn.experimental_get_tracing_count() == 0
    assert warmed.num_steps == 0 and int(warmed._optimizer.iterations) == 0
    version, published = server.get()
    assert version == 0
    for got, initial in zip(published, builder.make_networks(_spec(), seed=0).numpy_parameters()):
        np.testing.assert_array_equal(got, initial)
    warmed.step()
    cold.step()
    assert warmed._step_fn.experimental_get_tracing_count() == 1  # The real batch reused the warm-up's trace.
    assert warmed.num_steps == cold.num_steps == 1
    for got, expected in zip(warmed.get_variables()[0], cold.get_variables()[0]):
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_padding_rows_do_not_count():
    """Rows whose `valid` extra is False (an episode's closing row) contribute nothing to the loss."""
    sample, _ = _fixed_batch(np.random.default_rng(1))
    builder = IMPALABuilder(IMPALAConfig())
    learner = builder.make_learner(builder.make_networks(_spec(), seed=0), iter(()))
    data = sample.data
    valid = np.ones(data.action.shape, bool)
    valid[:, 10:] = False
    masked = data._replace(extras={"logits": data.extras["logits"], "valid": tf.constant(valid)})
    garbage = masked._replace(reward=tf.where(tf.constant(valid), data.reward, 1e3))
    np.testing.assert_allclose(float(learner.loss(masked)["loss"]), float(learner.loss(garbage)["loss"]), rtol=1e-6)


def test_reward_scale_multiplies_the_rewards_the_loss_sees():
    sample, _ = _fixed_batch(np.random.default_rng(2))
    builder = IMPALABuilder(IMPALAConfig(reward_scale=0.05))
    scaled = builder.make_learner(builder.make_networks(_spec(), seed=0), iter(()))
    unscaled_builder = IMPALABuilder(IMPALAConfig(reward_scale=1.0))
    unscaled = unscaled_builder.make_learner(unscaled_builder.make_networks(_spec(), seed=0), iter(()))
    pre_scaled = sample.data._replace(reward=sample.data.reward * 0.05)
    expected = unscaled.loss(pre_scaled)
    got = scaled.loss(sample.data)
    for key in ("loss", "policy_loss", "value_loss"):
        np.testing.assert_allclose(float(got[key]), float(expected[key]), rtol=1e-5)
    assert float(got["value_loss"]) < 0.01 * float(unscaled.loss(sample.data)["value_loss"])


# ------------------------------------------------------------------------------------------------ the queue


def test_the_queue_must_hold_a_batch_and_two_sequences(capsys):
    with pytest.raises(ValueError, match=r"max_queue_size \(9\) must be >= batch_size \+ 2 \(10\).*max_queue_size=10"):
        IMPALAConfig(batch_size=8, max_queue_size=9)
    config = IMPALAConfig(batch_size=8, max_queue_size=10)
    [table] = IMPALABuilder(config).make_replay_tables(_spec())
    assert table.info.max_size == 10 and table.info.max_times_sampled == 1  # Each sequence is sampled once.
    [single] = IMPALABuilder(config).make_replay_tables(_spec(), rate_limited=False)
    assert single.info.max_size >= 10_000  # One process that acts and learns must never wait for room.
    # The research script refuses it before any node starts, in one line.
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--agent", "impala", "--config", "batch_size=8", "--config", "max_queue_size=4"])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "max_queue_size=10" in lines[0], lines


def test_a_single_process_never_outruns_the_queue_and_keeps_up_with_it():
    """learner_steps_per_actor_step, learner_steps_per_episode and min_actor_steps_before_learning never ask for
    a batch the queue lacks, and consume what is written: the queue stays as short as a batch and a sequence."""
    builder = IMPALABuilder(IMPALAConfig(batch_size=2, max_queue_size=4))
    environment = envs.make_environment("CartPole-v1", seed=0)
    spec = replay.make_environment_spec(environment)
    with replay.ReplayServer(builder.make_replay_tables(spec, rate_limited=False)) as server:
        client = server.client()
        adder = builder.make_adder(client)
        variable_client = utils.VariableClient(utils.VariableServer())
        actor = builder.make_actor(spec, variable_client, adder, core.ActorSettings())
        steps, episodes, left_over = 0, 0, []
        credit_start = None  # (steps, episodes) when learning starts, as the single-process loop counts them.
        while steps < 3_000:
            timestep = environment.reset()
            actor.observe_first(timestep)
            while not timestep.last():
                action = actor.select_action(timestep.observation)
                timestep = environment.step(action)
                actor.observe(action, timestep)
                steps += 1
                episodes += int(timestep.last())
                adder.flush()
                if credit_start is None and steps > builder.min_actor_steps_before_learning():
                    credit_start = (steps - 1, episodes - int(timestep.last()))
                learner_steps = 0
                if credit_start is not None:
                    learner_steps = int(
                        (steps - credit_start[0]) * builder.learner_steps_per_actor_step()
                        + (episodes - credit_start[1]) * builder.learner_steps_per_episode()
                        + 1e-9
                    )
                inserted = client.server_info(timeout=5)["queue"].current_size
                left_over.append(inserted - learner_steps * 2)
        adder.close()
        variable_client.close()
    assert episodes > 100  # Many closing rows: without learner_steps_per_episode it ends ~8 longer.
    assert min(left_over) >= 0
    assert max(left_over[-500:]) <= 2 + 2, max(left_over[-500:])


# ------------------------------------------------------------------------------------------------ end to end


def test_the_learner_node_input_states_its_spec_from_an_empty_queue():
    """The distributed learner's input gives its batches' spec before any data, so the learner warms up before
    the actors (waiting for its first parameters) write; from a replay that does not answer it gives None, and the
    learner warms up at its first batch instead."""
    builder = IMPALABuilder(IMPALAConfig())
    with replay.ReplayServer(builder.make_replay_tables(_spec())) as server:
        address = server.address
        iterator = StoppableIterator(lambda: builder.make_dataset_iterator(address, 1000), lambda: True)
        assert iterator.element_spec.data.observation.shape == (4, 20, 4)
        learner = builder.make_learner(builder.make_networks(_spec(), seed=0), iterator)
        assert learner._step_fn.experimental_get_tracing_count() == 1
        with pytest.raises(StopIteration):  # Empty for the rate limiter's second, and told to stop.
            learner.step()
    gone = StoppableIterator(
        lambda: replay.make_dataset(address, "queue", 4, get_signature_timeout_secs=1), lambda: True
    )
    assert gone.element_spec is None


def test_impala_runs_distributed_and_data_flows(tmp_path):
    # Actors wait on the full queue unless the learner consumes it: reaching the step budget means data flowed.
    experiment = experiments.ExperimentConfig(
        builder=IMPALABuilder(IMPALAConfig()),
        run_dir=str(tmp_path),
        env_name="CartPole-v1",
        eval_episodes=2,
        max_actor_steps=4_000,
    )
    result = experiments.run_distributed(experiment, num_actors=2, launch_type="local_mp")
    assert result["actor_steps"] >= 4_000 and result["learner_steps"] > 0, result
    assert result["parameter_version"] > 0
    assert result["replay_inserts"] > 0 and result["replay_samples"] > 0, result
    # Every sample was one sequence of a learner batch; the queue gave each one out once.
    assert result["replay_samples"] >= IMPALAConfig().batch_size * result["learner_steps"] > 0
    for actor in ("actor_0", "actor_1"):
        log = utils.read_csv_log(os.path.join(tmp_path, "logs", f"{actor}.csv"))
        assert max(log["parameter_version"]) > 0, f"{actor} never received parameters"
        # Actors wait for the learner's first parameters: no episode of their own untrained network.
        assert min(log["parameter_version"]) >= 0, f"{actor} acted before the learner published"
    assert utils.read_csv_log(os.path.join(tmp_path, "logs", "learner.csv"))["learner_steps"]
