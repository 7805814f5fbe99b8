"""Q-networks (MLP and dueling) as tf.Modules; acting.numpy_q_values is their numpy twin."""

from replay import import_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from agents import envs
from agents.networks import ParameterModule
from replay import EnvironmentSpec


class QNetwork(ParameterModule):
    """An MLP from flat observations to one Q-value per action.

    With `dueling`, the torso feeds a value head V and an advantage head A and
    Q = V + A - mean(A). `parameters` lists the variables in a fixed order that
    `numpy_q_values` understands, so actors can act from published numpy copies.
    """

    def __init__(
        self,
        observation_size: int,
        num_actions: int,
        hidden_sizes: Sequence[int] = (64, 64),
        dueling: bool = False,
        seed: Optional[int] = None,
        name: str = "q_network",
    ):
        super().__init__(name=name)
        self.observation_size = observation_size
        self.num_actions = num_actions
        self.hidden_sizes = tuple(hidden_sizes)
        self.dueling = dueling
        rng = np.random.default_rng(seed)
        sizes = [observation_size, *self.hidden_sizes]
        heads = [1, num_actions] if dueling else [num_actions]
        shapes = list(zip(sizes[:-1], sizes[1:])) + [(sizes[-1], out) for out in heads]
        with self.name_scope:
            for i, (fan_in, fan_out) in enumerate(shapes):
                limit = np.sqrt(6.0 / (fan_in + fan_out))  # Glorot uniform.
                self._add_parameter(f"w{i}", rng.uniform(-limit, limit, (fan_in, fan_out)))
                self._add_parameter(f"b{i}", np.zeros(fan_out))

    def __call__(self, observations: tf.Tensor) -> tf.Tensor:
        hidden = tf.reshape(tf.cast(observations, tf.float32), [-1, self.observation_size])
        params = self._parameters
        num_torso = len(self.hidden_sizes)
        for i in range(num_torso):
            hidden = tf.nn.relu(tf.matmul(hidden, params[2 * i]) + params[2 * i + 1])
        heads = [tf.matmul(hidden, params[j]) + params[j + 1] for j in range(2 * num_torso, len(params), 2)]
        if not self.dueling:
            return heads[0]
        value, advantage = heads
        return value + advantage - tf.reduce_mean(advantage, axis=-1, keepdims=True)


def make_q_network(
    environment_spec: EnvironmentSpec,
    hidden_sizes: Sequence[int] = (64, 64),
    dueling: bool = False,
    seed: Optional[int] = None,
    name: str = "q_network",
) -> QNetwork:
    """A QNetwork sized for a flat observation and a discrete action spec."""
    observation_size = int(np.prod(environment_spec.observations.shape))
    num_actions = envs.num_discrete_actions(environment_spec, "DQN")
    return QNetwork(observation_size, num_actions, hidden_sizes, dueling, seed, name)
