"""The experiment layer with an agent it has never seen: a few-line REINFORCE-like builder on a queue table,
run single-process and as a distributed program under test_mt and local_mp."""

import os
import sys

import cloudpickle
import dm_env
import numpy as np
import pytest

import agents
import replay
from agents import envs, experiments, utils

_TABLE = "queue"
_BATCH = 16


class _SoftmaxActor(agents.Actor):
    """Samples from softmax(observation @ W) (argmax when greedy); random before the first parameters."""

    def __init__(self, variable_client, adder, seed, greedy=False):
        self._client, self._adder, self._greedy = variable_client, adder, greedy
        self._rng = np.random.default_rng(seed)

    def select_action(self, observation):
        if self._client.params is None:
            return np.int64(self._rng.integers(2))
        logits = observation @ self._client.params[0]
        if self._greedy:
            return np.int64(np.argmax(logits))
        probabilities = np.exp(logits - logits.max())
        return np.int64(self._rng.choice(2, p=probabilities / probabilities.sum()))

    def observe_first(self, timestep):
        if self._adder is not None:
            self._adder.add_first(timestep)

    def observe(self, action, next_timestep):
        if self._adder is not None:
            self._adder.add(action, next_timestep)

    def update(self, wait=False):
        self._client.update(wait)


class _ReinforceLearner(agents.Learner):
    """Reward-weighted log-likelihood ascent on one-step transitions, in numpy."""

    def __init__(self, iterator, publisher, counter):
        self._iterator, self._publisher, self._counter = iterator, publisher, counter
        self._weights = np.zeros((4, 2), np.float32)
        self._steps = 0

    @property
    def num_steps(self):
        return self._steps

    def step(self):
        data = next(self._iterator).data
        observations, actions = data.observation, data.action.astype(np.int64)
        logits = observations @ self._weights
        probabilities = np.exp(logits - logits.max(-1, keepdims=True))
        probabilities /= probabilities.sum(-1, keepdims=True)
        grad_logits = -probabilities
        grad_logits[np.arange(len(actions)), actions] += 1.0
        self._weights += 0.01 * observations.T @ (grad_logits * data.reward[:, None]) / len(actions)
        self._steps += 1
        if self._publisher is not None:
            self._publisher.publish([self._weights.copy()], self._steps)
        if self._counter is not None:
            self._counter.increment(steps=1)

    def get_variables(self, names=()):
        return [[self._weights]]

    def save(self):
        return {"weights": self._weights.tolist(), "steps": self._steps}

    def restore(self, state):
        self._weights = np.asarray(state["weights"], np.float32)
        self._steps = state["steps"]


class ReinforceBuilder(agents.Builder):
    name = "reinforce"
    config_class = dict

    def make_replay_tables(self, environment_spec, rate_limited=True):
        # A queue blocks writers while full: one process that both acts and learns needs room to never block.
        return [
            replay.tables.queue(
                _TABLE,
                max_size=100 if rate_limited else 10_000,
                signature=replay.NStepTransitionAdder.signature(environment_spec),
            )
        ]

    def make_adder(self, client):
        return replay.NStepTransitionAdder(client, n_step=1, discount=1.0, priority_fns={_TABLE: None})

    def make_dataset_iterator(self, server_address, rate_limiter_timeout_ms=-1):
        return replay.make_numpy_iterator(
            server_address, _TABLE, _BATCH, rate_limiter_timeout_ms=rate_limiter_timeout_ms
        )

    def make_networks(self, environment_spec, seed):
        return None

    def make_learner(self, networks, iterator, *, publisher=None, priority_updater=None, counter=None, logger=None):
        return _ReinforceLearner(iterator, publisher, counter)

    def make_actor(self, environment_spec, variable_client, adder, settings):
        return _SoftmaxActor(variable_client, adder, settings.seed)

    def make_evaluation_actor(self, environment_spec, variable_client, seed):
        return _SoftmaxActor(variable_client, None, seed, greedy=True)

    def learner_steps_per_actor_step(self):
        return 1.0 / _BATCH

    def min_actor_steps_before_learning(self):
        return _BATCH


# Node processes (local_mp) rebuild the program from pickles: ship this module's classes by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _experiment(run_dir, **budget):
    return experiments.ExperimentConfig(
        builder=ReinforceBuilder({}), run_dir=str(run_dir), env_name="CartPole-v1", eval_episodes=2, **budget
    )


def _assert_data_flowed(result, run_dir):
    assert result["actor_steps"] > 0 and result["learner_steps"] > 0, result
    evaluations = utils.read_csv_log(os.path.join(run_dir, "logs", "evaluator.csv"))
    assert evaluations["screen_return"], "the evaluator never evaluated published parameters"
    assert os.listdir(os.path.join(run_dir, "checkpoints"))
    assert utils.read_json(os.path.join(run_dir, "result.json")) == result


def test_a_new_agent_runs_single_process(tmp_path):
    result = experiments.run_single_process(_experiment(tmp_path, max_actor_steps=600))
    _assert_data_flowed(result, str(tmp_path))
    assert result["actor_steps"] >= 600
    # Each learner step consumed one batch from the queue, at 1/16 of a learner step per actor step.
    assert result["learner_steps"] == pytest.approx((result["actor_steps"] - _BATCH) / _BATCH, abs=2)


@pytest.mark.parametrize("launch_type", ["test_mt", "local_mp"])
def test_a_new_agent_runs_distributed(tmp_path, launch_type):
    # Actors block on the full queue unless the learner consumes it, so 3,000 actor steps mean data flowed. No
    # wall-clock budget: on a heavily loaded machine one could end the run before the evaluator's first answer.
    experiment = _experiment(tmp_path, max_actor_steps=3000)
    result = experiments.run_distributed(experiment, num_actors=2, launch_type=launch_type)
    _assert_data_flowed(result, str(tmp_path))
    assert result["parameter_version"] > 0
    assert {"actor_0.csv", "actor_1.csv", "evaluator.csv"} <= set(os.listdir(tmp_path / "logs"))
    if launch_type == "local_mp":  # Every node imported TensorFlow (if at all) without its CPU-only plugin noise.
        for log in (tmp_path / "node_logs").iterdir():
            assert "Unable to register" not in log.read_text(), log.name


def test_experiment_config_names_bad_budgets(tmp_path):
    with pytest.raises(ValueError, match=r"max_seconds must be > 0 \(got -1\).*max_actor_steps must be >= 1"):
        _experiment(tmp_path, max_seconds=-1, max_actor_steps=0)
    assert _experiment(tmp_path).solved_return == envs.solved_return("CartPole-v1")


def test_an_environment_factory_replaces_the_gymnasium_id(tmp_path):
    seeds = []

    def factory(seed) -> dm_env.Environment:
        seeds.append(seed)
        return envs.make_environment("CartPole-v1", seed=seed)

    experiment = experiments.ExperimentConfig(
        builder=ReinforceBuilder({}), run_dir=str(tmp_path), environment_factory=factory, seed=3, max_actor_steps=50
    )
    experiments.run_single_process(experiment)
    assert seeds == [3, 10_003]  # Acting, then evaluation.
