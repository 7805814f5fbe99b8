"""The actor-critic network as a tf.Module; acting.numpy_policy_and_value is its numpy twin."""

from replay import import_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from agents import envs
from agents.networks import ParameterModule
from replay import EnvironmentSpec


_TF_ACTIVATIONS = {"relu": tf.nn.relu, "tanh": tf.tanh}


def _orthogonal(rng: np.random.Generator, shape: Tuple[int, int], gain: float) -> np.ndarray:
    """A (fan_in, fan_out) matrix with orthonormal rows or columns (whichever are fewer), times `gain`."""
    u, _, vt = np.linalg.svd(rng.standard_normal(shape), full_matrices=False)
    return gain * (u if u.shape == shape else vt)


class ActorCriticNetwork(ParameterModule):
    """A shared MLP torso (`activation`: relu or tanh) feeding a policy head (one logit per action) and a value
    head; with `head_hidden_sizes` each head first has hidden layers of its own, of those sizes (empty: the heads
    are linear on the torso's output).

    `parameters` lists the variables in the order `acting.numpy_policy_and_value` understands: (w, b) per torso
    layer, then (w, b) per policy hidden layer and the policy head's (w, b), then the same for the value head, so
    actors act from published numpy copies. The policy head starts small (near-uniform policy).
    `orthogonal_init`: orthogonal weights with gain sqrt(2) in the hidden layers, 0.01 for the policy head and 1
    for the value head (the PPO/A2C convention); otherwise Glorot-uniform weights, the policy head scaled by 0.01
    and the value head at zero.
    """

    def __init__(
        self,
        observation_size: int,
        num_actions: int,
        hidden_sizes: Sequence[int] = (64, 64),
        seed: Optional[int] = None,
        name: str = "actor_critic",
        activation: str = "relu",
        orthogonal_init: bool = False,
        head_hidden_sizes: Sequence[int] = (),
    ):
        super().__init__(name=name)
        self.activation = activation
        self._activation = _TF_ACTIVATIONS[activation]
        self.observation_size = observation_size
        self.num_actions = num_actions
        self.hidden_sizes = tuple(hidden_sizes)
        self.head_hidden_sizes = tuple(head_hidden_sizes)
        rng = np.random.default_rng(seed)
        torso_size = (observation_size, *self.hidden_sizes)[-1]
        head_size = (torso_size, *self.head_hidden_sizes)[-1]
        with self.name_scope:
            self._add_hidden_layers("", [observation_size, *self.hidden_sizes], rng, orthogonal_init)
            self._add_hidden_layers("policy_", [torso_size, *self.head_hidden_sizes], rng, orthogonal_init)
            if orthogonal_init:
                self._add_parameter("policy_w", _orthogonal(rng, (head_size, num_actions), 0.01))
            else:
                limit = 0.01 * np.sqrt(6.0 / (head_size + num_actions))
                self._add_parameter("policy_w", rng.uniform(-limit, limit, (head_size, num_actions)))
            self._add_parameter("policy_b", np.zeros(num_actions))
            self._add_hidden_layers("value_", [torso_size, *self.head_hidden_sizes], rng, orthogonal_init)
            value_w = _orthogonal(rng, (head_size, 1), 1.0) if orthogonal_init else np.zeros((head_size, 1))
            self._add_parameter("value_w", value_w)
            self._add_parameter("value_b", np.zeros(1))

    def _add_hidden_layers(
        self, prefix: str, sizes: Sequence[int], rng: np.random.Generator, orthogonal_init: bool
    ) -> None:
        """(w, b) for each pair of consecutive `sizes`, named `{prefix}w{i}` and `{prefix}b{i}`."""
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            if orthogonal_init:
                self._add_parameter(f"{prefix}w{i}", _orthogonal(rng, (fan_in, fan_out), np.sqrt(2.0)))
            else:
                limit = np.sqrt(6.0 / (fan_in + fan_out))  # Glorot uniform.
                self._add_parameter(f"{prefix}w{i}", rng.uniform(-limit, limit, (fan_in, fan_out)))
            self._add_parameter(f"{prefix}b{i}", np.zeros(fan_out))

    def __call__(self, observations: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        """(logits [N, num_actions], values [N]) for observations of any leading shape, flattened to N."""
        hidden = tf.reshape(tf.cast(observations, tf.float32), [-1, self.observation_size])
        params = self._parameters
        hidden = self._hidden_layers(hidden, params[: 2 * len(self.hidden_sizes)])
        heads = params[2 * len(self.hidden_sizes) :]
        policy, value = heads[: len(heads) // 2], heads[len(heads) // 2 :]
        policy_hidden = self._hidden_layers(hidden, policy[:-2])
        value_hidden = self._hidden_layers(hidden, value[:-2])
        logits = tf.matmul(policy_hidden, policy[-2]) + policy[-1]
        values = tf.squeeze(tf.matmul(value_hidden, value[-2]) + value[-1], axis=-1)
        return logits, values

    def _hidden_layers(self, hidden: tf.Tensor, params: Sequence[tf.Variable]) -> tf.Tensor:
        for w, b in zip(params[::2], params[1::2]):
            hidden = self._activation(tf.matmul(hidden, w) + b)
        return hidden


def make_actor_critic_network(
    environment_spec: EnvironmentSpec,
    hidden_sizes: Sequence[int] = (64, 64),
    seed: Optional[int] = None,
    name: str = "actor_critic",
    agent: str = "IMPALA",
    activation: str = "relu",
    orthogonal_init: bool = False,
    head_hidden_sizes: Sequence[int] = (),
) -> ActorCriticNetwork:
    """An ActorCriticNetwork sized for a flat observation and a discrete action spec (else a ValueError naming
    `agent`)."""
    observation_size = int(np.prod(environment_spec.observations.shape))
    num_actions = envs.num_discrete_actions(environment_spec, agent)
    return ActorCriticNetwork(
        observation_size, num_actions, hidden_sizes, seed, name, activation, orthogonal_init, head_hidden_sizes
    )
