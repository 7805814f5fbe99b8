"""D4PG's policy and categorical critic as tf.Modules; acting.numpy_policy is the policy's numpy twin."""

from replay import import_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from agents import envs
from agents.d4pg.acting import LAYER_NORM_EPSILON
from agents.networks import ParameterModule
from replay import EnvironmentSpec


def _add_layer_norm_mlp(module: ParameterModule, sizes: Sequence[int], rng: np.random.Generator) -> None:
    """(w, b) per layer of sizes[0] -> ... -> sizes[-1], with the layer norm's (scale, offset) after the first.
    Weights are uniform in +-1/sqrt(fan_in) (variance scale 1/3, as Acme's LayerNormMLP)."""
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        limit = 1.0 / np.sqrt(fan_in)
        module._add_parameter(f"w{i}", rng.uniform(-limit, limit, (fan_in, fan_out)))
        module._add_parameter(f"b{i}", np.zeros(fan_out))
        if i == 0:
            module._add_parameter("layer_norm_scale", np.ones(fan_out))
            module._add_parameter("layer_norm_offset", np.zeros(fan_out))


def _layer_norm_mlp(params: Sequence[tf.Variable], inputs: tf.Tensor, num_layers: int) -> tf.Tensor:
    """Linear, layer norm and tanh, then (linear, ELU) for each further layer (Acme's LayerNormMLP)."""
    w, b, scale, offset = params[:4]
    hidden = tf.matmul(inputs, w) + b
    mean, variance = tf.nn.moments(hidden, axes=[-1], keepdims=True)
    hidden = tf.tanh((hidden - mean) * tf.math.rsqrt(variance + LAYER_NORM_EPSILON) * scale + offset)
    for i in range(1, num_layers):
        hidden = tf.nn.elu(tf.matmul(hidden, params[2 * i + 2]) + params[2 * i + 3])
    return hidden


class PolicyNetwork(ParameterModule):
    """A deterministic policy: a layer-norm MLP, a near-zero linear layer, tanh, scaled to [minimum, maximum].

    `parameters` lists (w0, b0, layer norm scale, offset, w1, b1, ..., output w, b), the order
    `acting.numpy_policy` reads.
    """

    def __init__(
        self,
        observation_size: int,
        action_minimum: np.ndarray,
        action_maximum: np.ndarray,
        hidden_sizes: Sequence[int] = (256, 256),
        seed: Optional[int] = None,
        name: str = "policy",
    ):
        super().__init__(name=name)
        self.observation_size = observation_size
        self.hidden_sizes = tuple(hidden_sizes)
        self.action_shape = tuple(np.shape(action_minimum))
        self.action_minimum = np.asarray(action_minimum, np.float32)
        self.action_maximum = np.asarray(action_maximum, np.float32)
        action_size = int(np.prod(self.action_shape))
        rng = np.random.default_rng(seed)
        with self.name_scope:
            _add_layer_norm_mlp(self, [observation_size, *self.hidden_sizes], rng)
            limit = 1e-2 / np.sqrt(self.hidden_sizes[-1])  # Near zero: actions start near the middle of the range.
            self._add_parameter("output_w", rng.uniform(-limit, limit, (self.hidden_sizes[-1], action_size)))
            self._add_parameter("output_b", np.zeros(action_size))

    def __call__(self, observations: tf.Tensor) -> tf.Tensor:
        """Actions [N, *action_shape] for observations flattened to [N, observation_size]."""
        inputs = tf.reshape(tf.cast(observations, tf.float32), [-1, self.observation_size])
        hidden = _layer_norm_mlp(self._parameters, inputs, len(self.hidden_sizes))
        squashed = tf.tanh(tf.matmul(hidden, self._parameters[-2]) + self._parameters[-1])
        squashed = tf.reshape(squashed, [-1, *self.action_shape])
        return self.action_minimum + (squashed + 1.0) * 0.5 * (self.action_maximum - self.action_minimum)


class CriticNetwork(ParameterModule):
    """A categorical critic: a layer-norm MLP over (observation, action) with one logit per atom of an evenly
    spaced support on [v_min, v_max]."""

    def __init__(
        self,
        observation_size: int,
        action_size: int,
        v_min: float,
        v_max: float,
        num_atoms: int = 51,
        hidden_sizes: Sequence[int] = (256, 256),
        seed: Optional[int] = None,
        name: str = "critic",
    ):
        super().__init__(name=name)
        self.observation_size = observation_size
        self.action_size = action_size
        self.hidden_sizes = tuple(hidden_sizes)
        self.atoms = tf.constant(np.linspace(v_min, v_max, num_atoms), tf.float32)
        rng = np.random.default_rng(seed)
        with self.name_scope:
            _add_layer_norm_mlp(self, [observation_size + action_size, *self.hidden_sizes], rng)
            limit = 1e-2 / np.sqrt(self.hidden_sizes[-1])  # Near-uniform distributions at first.
            self._add_parameter("logits_w", rng.uniform(-limit, limit, (self.hidden_sizes[-1], num_atoms)))
            self._add_parameter("logits_b", np.zeros(num_atoms))

    def __call__(self, observations: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        """Logits [N, num_atoms] of the return distribution of each (observation, action)."""
        inputs = tf.concat(
            [
                tf.reshape(tf.cast(observations, tf.float32), [-1, self.observation_size]),
                tf.reshape(tf.cast(actions, tf.float32), [-1, self.action_size]),
            ],
            axis=-1,
        )
        hidden = _layer_norm_mlp(self._parameters, inputs, len(self.hidden_sizes))
        return tf.matmul(hidden, self._parameters[-2]) + self._parameters[-1]

    def mean(self, logits: tf.Tensor) -> tf.Tensor:
        """The expected return [N] of distributions given by their logits [N, num_atoms]."""
        return tf.reduce_sum(tf.nn.softmax(logits) * self.atoms, axis=-1)


class D4PGNetworks(NamedTuple):
    """The online networks the learner trains and the target networks it bootstraps from."""

    policy: PolicyNetwork
    critic: CriticNetwork
    target_policy: PolicyNetwork
    target_critic: CriticNetwork


def make_networks(
    environment_spec: EnvironmentSpec,
    policy_hidden_sizes: Sequence[int],
    critic_hidden_sizes: Sequence[int],
    num_atoms: int,
    v_min: float,
    v_max: float,
    seed: Optional[int] = None,
) -> D4PGNetworks:
    """Online and target networks (targets start as copies) for a flat observation and a bounded action spec."""
    observation_size = int(np.prod(environment_spec.observations.shape))
    minimum, maximum = envs.bounded_actions(environment_spec, "D4PG")
    rng = np.random.default_rng(seed)
    policy_seed, critic_seed = (int(s) for s in rng.integers(2**31, size=2))

    def networks(prefix: str) -> Tuple[PolicyNetwork, CriticNetwork]:
        return (
            PolicyNetwork(observation_size, minimum, maximum, policy_hidden_sizes, policy_seed, f"{prefix}policy"),
            CriticNetwork(
                observation_size,
                minimum.size,
                v_min,
                v_max,
                num_atoms,
                critic_hidden_sizes,
                critic_seed,
                f"{prefix}critic",
            ),
        )

    return D4PGNetworks(*networks(""), *networks("target_"))
