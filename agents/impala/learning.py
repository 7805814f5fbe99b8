"""V-trace and the IMPALA learner."""

from replay import import_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
from typing import Any, Dict, Iterator, NamedTuple, Optional

import reverb
import tensorflow as tf

from agents import core
from agents.impala.networks import ActorCriticNetwork
from agents.networks import NetworkLearner
from agents.utils import Logger


class VTraceReturns(NamedTuple):
    vs: tf.Tensor  # V-trace targets v_s, [T, B].
    pg_advantages: tf.Tensor  # rho_s * (r_s + gamma_s * v_{s+1} - V(x_s)), [T, B].


def vtrace(
    values: tf.Tensor,
    bootstrap_value: tf.Tensor,
    rewards: tf.Tensor,
    discounts: tf.Tensor,
    rhos: tf.Tensor,
    *,
    lambda_: float = 1.0,
    clip_rho_threshold: float = 1.0,
    clip_pg_rho_threshold: float = 1.0,
    clip_c_threshold: float = 1.0,
) -> VTraceReturns:
    """V-trace targets and policy-gradient advantages (Espeholt et al. 2018), time-major.

    values V(x_s), rewards r_s, discounts gamma_s and importance ratios rho_s = pi(a_s|x_s) / mu(a_s|x_s) are
    [T, B]; bootstrap_value V(x_T) is [B]. With delta_s = min(rho-bar, rho_s) (r_s + gamma_s V(x_{s+1}) - V(x_s))
    and c_s = lambda min(c-bar, rho_s), the targets follow the paper's recursion backwards from v_T = V(x_T):

        v_s - V(x_s) = delta_s + gamma_s c_s (v_{s+1} - V(x_{s+1})).

    A discount of 0 (a termination) stops both the bootstrap and the trace. T is static (an unrolled loop).
    """
    values_next = tf.concat([values[1:], bootstrap_value[None]], axis=0)
    clipped_rhos = tf.minimum(clip_rho_threshold, rhos)
    cs = lambda_ * tf.minimum(clip_c_threshold, rhos)
    deltas = clipped_rhos * (rewards + discounts * values_next - values)
    correction = tf.zeros_like(bootstrap_value)  # v_{s+1} - V(x_{s+1}), zero past the end.
    corrections = []
    for s in reversed(range(values.shape[0])):
        correction = deltas[s] + discounts[s] * cs[s] * correction
        corrections.append(correction)
    vs = values + tf.stack(corrections[::-1])
    vs_next = tf.concat([vs[1:], bootstrap_value[None]], axis=0)
    pg_advantages = tf.minimum(clip_pg_rho_threshold, rhos) * (rewards + discounts * vs_next - values)
    return VTraceReturns(tf.stop_gradient(vs), tf.stop_gradient(pg_advantages))


class IMPALALearner(NetworkLearner):
    """Actor-critic with V-trace on batches of sequences (reverb.ReplaySample of replay.Step, [B, T, ...]) whose
    extras hold the behaviour logits and a `valid` flag (acting.extras_spec).

    Each step is one compiled tf.function: the network on all B x T observations, V-trace over the first T - 1
    steps (the last only bootstraps) with discount = environment discount * gamma and rewards multiplied by
    `reward_scale`, and loss = policy gradient + baseline_cost (v_s - V)^2 - entropy_cost entropy, averaged over
    the valid steps; Adam with global-norm clipping. Rows that are not real steps (an episode's closing row and
    zero padding) get rho = 0 and discount 0, so they neither contribute nor leak into the targets of the steps
    before them.
    Counts `steps` on `counter`, and every `publish_period` steps publishes numpy parameters to `publisher`.
    """

    def __init__(
        self,
        network: ActorCriticNetwork,
        iterator: Iterator[reverb.ReplaySample],
        *,
        discount: float = 0.99,
        reward_scale: float = 1.0,
        learning_rate: float = 1e-3,
        baseline_cost: float = 0.5,
        entropy_cost: float = 0.01,
        max_gradient_norm: Optional[float] = 40.0,
        clip_rho_threshold: float = 1.0,
        clip_pg_rho_threshold: float = 1.0,
        clip_c_threshold: float = 1.0,
        vtrace_lambda: float = 1.0,
        publisher: Optional[core.ParameterPublisher] = None,
        publish_period: int = 1,
        counter: Optional[core.Counting] = None,
        logger: Optional[Logger] = None,
    ):
        super().__init__({"network": network}, publisher, publish_period, counter, logger)
        self._network = network
        self._iterator = iterator
        self._discount = float(discount)
        self._reward_scale = float(reward_scale)
        self._baseline_cost = float(baseline_cost)
        self._entropy_cost = float(entropy_cost)
        self._max_gradient_norm = max_gradient_norm
        self._vtrace_kwargs = dict(
            lambda_=float(vtrace_lambda),
            clip_rho_threshold=float(clip_rho_threshold),
            clip_pg_rho_threshold=float(clip_pg_rho_threshold),
            clip_c_threshold=float(clip_c_threshold),
        )
        self._optimizer = self._adam("optimizer", learning_rate, network)
        # Plain graph code (autograph off): a faster first trace; the V-trace loop is unrolled over static T.
        self._step_fn = tf.function(self._sgd_step, autograph=False)
        # Traced and run once before the first parameters go out (when the iterator states its batches' spec):
        # actors wait for those, so the first step's ~0.6-1.5 s no longer holds them at a full queue (distributed
        # CartPole: the queue was full ~1.4 s of the run's first 2 s, and never after).
        element_spec = getattr(iterator, "element_spec", None)
        if element_spec is not None and all(s.shape.is_fully_defined() for s in tf.nest.flatten(element_spec)):
            self._warm_up(self._step_fn, element_spec)
        self.publish()

    def loss(self, data: Any) -> Dict[str, tf.Tensor]:
        """The loss and its parts on a batch of sequences (replay.Step, [B, T, ...])."""
        observations = data.observation
        batch_size, length = tf.shape(data.action)[0], data.action.shape[1]
        logits, values = self._network(observations)
        logits = tf.reshape(logits, [batch_size, length, -1])
        values = tf.reshape(values, [batch_size, length])
        # Time-major, the last step only bootstrapping.
        time_major = lambda x: tf.transpose(x, [1, 0, *range(2, len(x.shape))])  # noqa: E731
        logits, values = time_major(logits), time_major(values)
        actions = time_major(tf.cast(data.action, tf.int32))[:-1]
        behaviour_logits = time_major(tf.cast(data.extras["logits"], tf.float32))[:-1]
        mask = time_major(tf.cast(data.extras["valid"], tf.float32))[:-1]
        rewards = time_major(tf.cast(data.reward, tf.float32))[:-1] * self._reward_scale
        discounts = time_major(tf.cast(data.discount, tf.float32))[:-1] * self._discount * mask

        log_pi = tf.nn.log_softmax(logits[:-1])
        log_pi_taken = tf.gather(log_pi, actions, axis=-1, batch_dims=2)
        log_mu_taken = tf.gather(tf.nn.log_softmax(behaviour_logits), actions, axis=-1, batch_dims=2)
        rhos = tf.exp(tf.stop_gradient(log_pi_taken) - log_mu_taken) * mask
        returns = vtrace(values[:-1], values[-1], rewards, discounts, rhos, **self._vtrace_kwargs)

        count = tf.maximum(tf.reduce_sum(mask), 1.0)
        policy_loss = -tf.reduce_sum(mask * log_pi_taken * returns.pg_advantages) / count
        value_loss = tf.reduce_sum(mask * tf.square(returns.vs - values[:-1])) / count
        entropy = -tf.reduce_sum(mask * tf.reduce_sum(tf.exp(log_pi) * log_pi, axis=-1)) / count
        loss = policy_loss + self._baseline_cost * value_loss - self._entropy_cost * entropy
        return {
            "loss": loss,
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "entropy": entropy,
            "mean_value": tf.reduce_sum(mask * values[:-1]) / count,
            "mean_rho": tf.reduce_sum(rhos) / count,
        }

    def _sgd_step(self, sample: reverb.ReplaySample) -> Dict[str, tf.Tensor]:
        variables = self._network.parameters
        with tf.GradientTape() as tape:
            metrics = self.loss(sample.data)
        gradients = tape.gradient(metrics["loss"], variables)
        if self._max_gradient_norm is not None:
            gradients, metrics["gradient_norm"] = tf.clip_by_global_norm(gradients, self._max_gradient_norm)
        else:
            metrics["gradient_norm"] = tf.linalg.global_norm(gradients)
        self._optimizer.apply_gradients(zip(gradients, variables))
        with tf.control_dependencies([self._num_steps.assign_add(1)]):
            return {**metrics, "num_steps": tf.identity(self._num_steps)}

    def step(self) -> None:
        """One gradient step on one sampled batch, then publishing and logs."""
        metrics = self._step_fn(next(self._iterator))
        self._reports.after_step(
            int(metrics["num_steps"]), 1, lambda: {k: float(v) for k, v in metrics.items() if k != "num_steps"}
        )
