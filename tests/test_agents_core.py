"""Tests of agents.core, agents.envs and agents.utils (no replay or launch needed)."""

import os
import socket
import threading

import numpy as np
import pytest
from conftest import wait_until
from dm_env import specs

import agents
import launch as lp
from agents import envs, utils


class _RandomActor(agents.Actor):
    """Uniform random actor recording what it is shown."""

    def __init__(self, num_actions: int):
        self._num_actions = num_actions
        self._rng = np.random.default_rng(0)
        self.first_count = 0
        self.observed = []
        self.updates = 0

    def select_action(self, observation):
        return self._rng.integers(self._num_actions)

    def observe_first(self, timestep):
        assert timestep.first()
        self.first_count += 1

    def observe(self, action, next_timestep):
        self.observed.append(next_timestep)

    def update(self, wait=False):
        self.updates += 1


def _run_until_last(environment, action):
    timestep = environment.reset()
    steps = 0
    while not timestep.last():
        timestep = environment.step(action)
        steps += 1
    return timestep, steps


def test_cartpole_specs_follow_dm_env():
    env = envs.make_environment("CartPole-v1", seed=0)
    assert env.observation_spec().dtype == np.float32
    assert env.observation_spec().shape == (4,)
    assert isinstance(env.action_spec(), specs.DiscreteArray)
    assert env.action_spec().num_values == 2
    timestep = env.reset()
    assert timestep.first() and timestep.reward is None and timestep.discount is None
    env.observation_spec().validate(timestep.observation)
    timestep = env.step(env.action_spec().generate_value())
    assert timestep.mid()
    env.observation_spec().validate(timestep.observation)
    env.reward_spec().validate(timestep.reward)
    env.discount_spec().validate(timestep.discount)


def test_termination_has_discount_zero_and_step_after_last_restarts():
    env = envs.make_environment("CartPole-v1", seed=0)
    timestep, steps = _run_until_last(env, 0)  # Always pushing left falls over quickly.
    assert steps < 50
    assert timestep.discount == 0.0
    env.discount_spec().validate(timestep.discount)
    assert env.step(0).first()


def test_truncation_has_discount_one():
    env = envs.make_environment("Pendulum-v1", seed=0)  # Only ever truncated, at 200 steps.
    assert env.action_spec().dtype == np.float32
    timestep, steps = _run_until_last(env, np.zeros(1, np.float32))
    assert steps == 200
    assert timestep.last() and timestep.discount == 1.0


def test_seed_makes_episodes_reproducible():
    first = [envs.make_environment("CartPole-v1", seed=3).reset().observation for _ in range(2)]
    np.testing.assert_array_equal(first[0], first[1])


def test_unknown_environment_error_names_the_fix():
    with pytest.raises(ValueError, match="gymnasium id"):
        envs.make_environment("NoSuchEnv-v0")


def test_environment_loop_logs_counts_and_updates():
    env = envs.make_environment("CartPole-v1", seed=0)
    actor = _RandomActor(2)
    counter = utils.Counter()
    logger = utils.InMemoryLogger()
    loop = agents.EnvironmentLoop(env, actor, counter=counter, logger=logger)
    steps = loop.run(num_episodes=3)
    assert actor.first_count == 3 and len(logger.data) == 3
    assert steps == len(actor.observed) == actor.updates
    assert counter.get_counts() == {"episodes": 3, "steps": steps}
    row = logger.data[-1]
    assert row["episode_length"] > 0 and row["episode_return"] == row["episode_length"]
    assert row["steps_per_second"] > 0 and row["steps"] == steps
    assert loop.run(should_stop=lambda: True) == 0


def test_counter_prefixes_and_parent_totals():
    parent = utils.Counter()
    actor_a = utils.Counter(parent, prefix="actor", time_delta=0.0)
    actor_b = utils.Counter(parent, prefix="actor", time_delta=0.0)
    learner = utils.Counter(parent, prefix="learner", time_delta=0.0)
    actor_a.increment(steps=5)
    actor_b.increment(steps=7)
    counts = learner.increment(steps=2)
    assert counts["actor_steps"] == 12 and counts["learner_steps"] == 2
    assert parent.get_counts() == {"actor_steps": 12, "learner_steps": 2}
    restored = utils.Counter()
    restored.restore(parent.save())
    assert restored.get_counts() == parent.get_counts()


def test_variable_server_versions():
    server = utils.VariableServer()
    assert server.get() is None and server.version() == -1
    assert server.publish([np.ones(2)]) == 0
    version, params = server.get(-1)
    assert version == 0 and params[0].sum() == 2
    assert server.get(0) is None
    assert server.publish([np.zeros(2)], version=5) == 5
    with pytest.raises(ValueError, match="not newer"):
        server.publish([np.zeros(2)], version=5)


class _GatedVariableServer(utils.VariableServer):
    """A VariableServer whose `get` waits until the test opens the gate, like a stalled network call."""

    def __init__(self):
        super().__init__()
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.calls = 0

    def get(self, known_version=-1):
        self.calls += 1
        self.entered.set()
        if not self.gate.wait(timeout=30):
            raise TimeoutError("the test never opened the gate")
        return super().get(known_version)


def test_variable_client_update_returns_while_a_fetch_is_stalled():
    server = _GatedVariableServer()
    server.publish([np.full(3, 1.0)])
    client = utils.VariableClient(server, update_period=1)
    try:
        client.update()  # Requests a fetch, which stalls in get() ...
        assert server.entered.wait(timeout=30)
        for _ in range(100):
            client.update()  # ... while update() keeps returning, with no parameters yet.
        assert client.version == -1 and server.calls == 1
        server.gate.set()
        wait_until(lambda: client.update() or client.version == 0, "the stalled fetch to land")
        assert client.params[0][0] == 1.0
        server.publish([np.full(3, 2.0)])
        client.update(wait=True)
        assert client.version == 1 and client.params[0][0] == 2.0
    finally:
        server.gate.set()
        client.close()


class _EnteredSource:
    """A remote variable source (a real courier client) that says when a fetch has called it."""

    def __init__(self, client):
        self.client = client
        self.entered = threading.Event()

    def get(self, known_version=-1):
        self.entered.set()
        return self.client.get(known_version)

    def close(self):
        self.client.close()


def test_variable_client_closing_its_source_ends_a_fetch_waiting_for_a_gone_server(caplog):
    with socket.socket() as sock:  # A port nobody serves: the server stopped before this actor.
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    remote = lp.CourierClient(address, label="variable_server/0", token="t", connect_timeout=60, call_timeout=60)
    source = _EnteredSource(remote)
    client = utils.VariableClient(source, update_period=1, closes_source=True)
    client.update()  # Requests a fetch, which waits for the server.
    assert source.entered.wait(timeout=30)
    client.close()  # Joins the fetch thread for at most 5 s: it ends only if closing the source ended the call.
    assert not [thread for thread in threading.enumerate() if thread.name == "variable-client"]
    assert not [record for record in caplog.records if "Fetching parameters failed" in record.getMessage()]


def test_variable_client_polls_every_period():
    server = utils.VariableServer()
    server.publish([np.zeros(1)])
    client = utils.VariableClient(server, update_period=1000)
    try:
        for _ in range(999):
            client.update()
        assert client.num_fetches == 0
        client.update()  # The 1000th call requests a fetch.
        wait_until(lambda: client.num_fetches == 1, "the requested fetch")
        client.update()
        assert client.version == 0
    finally:
        client.close()


def test_loggers_write_csv_tensorboard_and_plot(tmp_path):
    run_dir = str(tmp_path)
    lines = []
    actor_log = utils.make_logger("actor", run_dir, print_fn=lines.append, steps_key="actor_steps")
    eval_log = utils.make_logger("evaluator", run_dir, print_fn=lines.append)
    for i in range(5):
        actor_log.write({"actor_steps": 10 * i, "episode_return": float(i)})
        eval_log.write({"actor_steps": 10 * i, "eval_return": np.float32(2 * i)})
    actor_log.close()
    eval_log.close()
    assert lines[0].startswith("[Actor] Actor Steps = 0")
    columns = utils.read_csv_log(os.path.join(run_dir, "logs", "evaluator.csv"))
    assert columns["eval_return"] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert len(columns["timestamp"]) == 5
    assert any(f.startswith("events") for f in os.listdir(os.path.join(run_dir, "tb", "actor")))
    png = utils.plot_learning_curve(run_dir)
    assert png.endswith("learning_curve.png") and os.path.getsize(png) > 1000


def test_time_filter_drops_rows():
    memory = utils.InMemoryLogger()
    logger = utils.TimeFilter(memory, time_delta=60)
    for i in range(10):
        logger.write({"i": i})
    assert memory.data == [{"i": 0}]


def test_checkpointer_restores_tf_and_saveable_state(tmp_path):
    import tensorflow as tf

    variable = tf.Variable([1.0, 2.0])
    counter = utils.Counter()
    counter.increment(learner_steps=7)
    checkpointer = utils.Checkpointer({"weights": variable, "counter": counter}, str(tmp_path))
    assert checkpointer.save() is None  # Not due yet.
    assert checkpointer.save(force=True)
    restored_variable = tf.Variable([0.0, 0.0])
    restored_counter = utils.Counter()
    restored = utils.Checkpointer({"weights": restored_variable, "counter": restored_counter}, str(tmp_path))
    assert restored.restored_from is not None
    np.testing.assert_array_equal(restored_variable.numpy(), [1.0, 2.0])
    assert restored_counter.get_counts() == {"learner_steps": 7}
