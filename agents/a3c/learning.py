"""A3C/A2C workers: the gradient of the n-step actor-critic loss on their own rollouts, pushed to a parameter
server."""

from replay import import_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
from typing import Any, Dict, List, Optional, Sequence, Tuple

import dm_env
import numpy as np
import tensorflow as tf

import replay
from agents.a3c.acting import RolloutCollector, n_step_targets
from agents.a3c.config import A3CConfig
from agents.a3c.networks import make_network
from agents.core import GradientSink, Versioned
from agents.impala.acting import numpy_forward


def make_optimizer(config: A3CConfig) -> tf.keras.optimizers.Optimizer:
    """The parameter server's optimizer: RMSProp, its mean of squared gradients starting at 0, clipping the global
    norm of each update's gradient to `max_gradient_norm`: A3C's push, or the mean of A2C's round, clipped as the
    gradient of one batch of all its workers' steps (clipping each push before the mean would shrink updates
    whose pushes disagree)."""
    return tf.keras.optimizers.RMSprop(
        config.learning_rate,
        rho=config.rmsprop_decay,
        epsilon=config.rmsprop_epsilon,
        global_clipnorm=config.max_gradient_norm,
    )


class A2CLoss:
    """The advantage actor-critic loss and its gradient, compiled: -log pi(a_t|s_t) A_t + value_cost (R_t - V(s_t))^2
    - entropy_cost H(pi(.|s_t)), averaged over a rollout's steps; its gradient is clipped by the server's optimizer
    (make_optimizer)."""

    def __init__(self, network: Any, config: A3CConfig):
        self._network = network
        self._config = config
        size = network.observation_size
        # The parameters are an input: assigned inside the compiled function, not one eager op per variable.
        self.gradients = tf.function(
            self._gradients,
            input_signature=[
                [tf.TensorSpec(variable.shape, variable.dtype) for variable in network.parameters],
                tf.TensorSpec([None, size], tf.float32),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None], tf.float32),
                tf.TensorSpec([None], tf.float32),
            ],
            autograph=False,
        )

    def _gradients(
        self, parameters, observations, actions, returns, advantages
    ) -> Tuple[List[tf.Tensor], Dict[str, tf.Tensor]]:
        """The gradient at `parameters` (which the network's variables take) and the loss's metrics."""
        config = self._config
        for variable, value in zip(self._network.parameters, parameters):
            variable.assign(value)
        with tf.GradientTape() as tape:
            logits, values = self._network(observations)
            log_pi = tf.nn.log_softmax(logits)
            log_pi_taken = tf.gather(log_pi, actions, axis=-1, batch_dims=1)
            policy_loss = -tf.reduce_mean(log_pi_taken * advantages)
            value_loss = tf.reduce_mean(tf.square(returns - values))
            entropy = -tf.reduce_mean(tf.reduce_sum(tf.exp(log_pi) * log_pi, axis=-1))
            loss = policy_loss + config.value_cost * value_loss - config.entropy_cost * entropy
        gradients = tape.gradient(loss, self._network.parameters)
        norm = tf.linalg.global_norm(gradients)
        metrics = {
            "loss": loss,
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "entropy": entropy,
            "gradient_norm": norm,
        }
        return gradients, metrics


class A3CWorker:
    """Acts `t_max` steps in its environments with its copy of the parameters, pushes the gradient of the loss on
    that rollout to `server` (to `group` of a grouped synchronous server), adopts the parameters it returns."""

    def __init__(
        self,
        config: A3CConfig,
        environments: Sequence[dm_env.Environment],
        server: GradientSink,
        seed: int,
        group: int = 0,
    ):
        spec = replay.make_environment_spec(environments[0])
        self._config = config
        self._network = make_network(spec, config, seed)
        self._loss = A2CLoss(self._network, config)
        forward = numpy_forward(config.activation, config.head_hidden_sizes)
        self._collector = RolloutCollector(environments, seed, forward)
        self._server = server
        self._group = group
        self.version = -1
        self._params: Optional[List[np.ndarray]] = None
        self.metrics: Dict[str, float] = {}

    def step(self) -> Optional[List[Tuple[float, int]]]:
        """One rollout and its push; returns the (return, length) of the episodes that ended in it, or None when
        the server had no parameters (or no answer) yet and nothing was done."""
        if self._params is None:
            self._adopt(self._server.get(self.version))
            if self._params is None:
                return None
        config = self._config
        rollout, finished = self._collector.collect(self._params, config.t_max)
        returns, advantages = n_step_targets(rollout, config.discount)
        flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731  [T, E, ...] -> [T * E, ...]
        gradients, metrics = self._loss.gradients(
            self._params, flat(rollout.observations), flat(rollout.actions), flat(returns), flat(advantages)
        )
        self._adopt(self._server.push_gradients([g.numpy() for g in gradients], self.version, self._group))
        self.metrics = {key: float(value) for key, value in metrics.items()}
        return finished

    def _adopt(self, fetched: Optional[Versioned]) -> None:
        if fetched is not None and fetched[0] > self.version:
            self.version, self._params = fetched
