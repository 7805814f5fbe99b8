"""The R2D2 learner: burn-in from stored recurrent states, n-step double-Q with value rescaling, sequence
priorities."""

from replay import import_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
from typing import Dict, Iterator, Optional

import numpy as np
import reverb
import tensorflow as tf

import replay
from agents import core
from agents.networks import NetworkLearner
from agents.r2d2.networks import RecurrentQNetwork
from agents.utils import Logger
from agents.utils.losses import importance_weights


def value_rescaling(x: tf.Tensor, epsilon: float = 1e-3) -> tf.Tensor:
    """h(x) = sign(x)(sqrt(|x| + 1) - 1) + epsilon x (Pohlen et al. 2018): squashes large returns."""
    return tf.sign(x) * (tf.sqrt(tf.abs(x) + 1.0) - 1.0) + epsilon * x


def inverse_value_rescaling(x: tf.Tensor, epsilon: float = 1e-3) -> tf.Tensor:
    """h^-1(x) = sign(x)(((sqrt(1 + 4 epsilon (|x| + 1 + epsilon)) - 1) / (2 epsilon))^2 - 1).

    The fraction is computed as 2 (|x| + 1 + epsilon) / (sqrt(1 + 4 epsilon (|x| + 1 + epsilon)) + 1), the same
    value without subtracting nearly equal numbers (which costs float32 about 1e-4 of relative accuracy)."""
    offset = tf.abs(x) + 1.0 + epsilon
    root = 2.0 * offset / (tf.sqrt(1.0 + 4.0 * epsilon * offset) + 1.0)
    return tf.sign(x) * (tf.square(root) - 1.0)


def transformed_n_step_targets(
    q_online: tf.Tensor,
    q_target: tf.Tensor,
    rewards: tf.Tensor,
    discounts: tf.Tensor,
    valid: tf.Tensor,
    gamma: float,
    n_step: int,
    epsilon: float = 1e-3,
) -> tf.Tensor:
    """Targets [T-1, B] for the first T-1 rows of time-major sequences (Q-values [T, B, A], the rest [T, B]):

        h(r_t + g_t r_{t+1} + ... + g_t...g_{t+k-2} r_{t+k-1} + g_t...g_{t+k-1} h^-1(Q_target(o_{t+k}, a*)))

    with g_s = gamma * discounts[s], a* = argmax_a Q_online(o_{t+k}, a) (double Q) and k = n_step, or fewer where
    the n steps would run past the sequence's last row or into a row that is not `valid` (an episode's closing
    row or zero padding): the return then bootstraps from that row, whose observation is real (the closing row
    holds the episode's last observation; a termination's zero discount cancels its value).
    """
    steps = q_online.shape[0]
    rewards = tf.cast(rewards, tf.float32)
    discounts = tf.cast(discounts, tf.float32)
    best_actions = tf.argmax(q_online, axis=-1, output_type=tf.int32)
    bootstrap = inverse_value_rescaling(tf.gather(q_target, best_actions, axis=-1, batch_dims=2), epsilon)
    # Rows whose reward can enter a return: valid ones that have a next row.
    usable = tf.concat([tf.cast(valid[:-1], tf.float32), tf.zeros_like(rewards[:1])], axis=0)
    padding = tf.zeros([n_step, tf.shape(rewards)[1]], tf.float32)
    usable, rewards, discounts = (tf.concat([x, padding], axis=0) for x in (usable, rewards, discounts))
    returns = tf.zeros_like(rewards[: steps - 1])
    scale = tf.ones_like(returns)  # The discount of the next reward (and of the bootstrap).
    taken = tf.zeros_like(returns)  # Steps summed so far.
    alive = tf.ones_like(returns)
    for k in range(n_step):
        alive = alive * usable[k : k + steps - 1]
        returns += alive * scale * rewards[k : k + steps - 1]
        scale = alive * scale * gamma * discounts[k : k + steps - 1] + (1.0 - alive) * scale
        taken += alive
    bootstrap_rows = tf.range(steps - 1)[:, None] + tf.cast(taken, tf.int32)
    bootstrap_values = tf.transpose(
        tf.gather(tf.transpose(bootstrap), tf.transpose(bootstrap_rows), axis=1, batch_dims=1)
    )
    return value_rescaling(returns + scale * bootstrap_values, epsilon)


def sequence_priorities(abs_td_errors: tf.Tensor, mask: tf.Tensor, max_weight: float) -> tf.Tensor:
    """Per sequence (time-major [T, B] -> [B]): max_weight * max|td| + (1 - max_weight) * mean|td| over the masked
    steps (0 for a sequence without any)."""
    mask = tf.cast(mask, tf.float32)
    masked = abs_td_errors * mask
    mean = tf.reduce_sum(masked, axis=0) / tf.maximum(tf.reduce_sum(mask, axis=0), 1.0)
    return max_weight * tf.reduce_max(masked, axis=0) + (1.0 - max_weight) * mean


class R2D2Learner(NetworkLearner):
    """Double Q-learning on batches of sequences (reverb.ReplaySample of replay.Step, [B, S, ...]) whose extras
    hold the actor's recurrent state before each step and a `valid` flag (acting.extras_spec).

    Each step unrolls the online and the target network from the state stored at each sequence's first row over
    the first `burn_in` rows without gradient (refreshing a state the actor computed with older parameters), then
    over the remaining rows; the loss is 0.5 td^2 against `transformed_n_step_targets`, averaged over each
    sequence's valid steps and weighted by importance weights (1/P)^exponent normalised by their max. The
    priorities max_priority_weight * max|td| + (1 - max_priority_weight) * mean|td| per sequence go back through
    `priority_updater`; the target network is copied every `target_update_period` steps. Counts `steps` on
    `counter`, and every `publish_period` steps publishes numpy parameters to `publisher`.
    """

    def __init__(
        self,
        network: RecurrentQNetwork,
        target_network: RecurrentQNetwork,
        iterator: Iterator[reverb.ReplaySample],
        *,
        burn_in: int,
        discount: float = 0.99,
        n_step: int = 5,
        learning_rate: float = 1e-3,
        target_update_period: int = 100,
        importance_sampling_exponent: float = 0.6,
        max_priority_weight: float = 0.9,
        value_rescaling_epsilon: float = 1e-3,
        max_gradient_norm: Optional[float] = 10.0,
        priority_updater: Optional[replay.PriorityUpdater] = None,
        publisher: Optional[core.ParameterPublisher] = None,
        publish_period: int = 10,
        counter: Optional[core.Counting] = None,
        logger: Optional[Logger] = None,
    ):
        super().__init__(
            {"network": network, "target_network": target_network}, publisher, publish_period, counter, logger
        )
        self._network = network
        self._target_network = target_network
        self._iterator = iterator
        self._burn_in = int(burn_in)
        self._discount = float(discount)
        self._n_step = int(n_step)
        self._target_update_period = int(target_update_period)
        self._importance_exponent = float(importance_sampling_exponent)
        self._max_priority_weight = float(max_priority_weight)
        self._epsilon = float(value_rescaling_epsilon)
        self._max_gradient_norm = max_gradient_norm
        self._priority_updater = priority_updater
        self._optimizer = self._adam("optimizer", learning_rate, network)
        target_network.set_parameters(network.numpy_parameters())
        # Plain graph code (autograph off): a faster first trace; the time loops are unrolled over static lengths.
        self._step_fn = tf.function(self._sgd_step, autograph=False)
        self.publish()

    def loss(self, data: replay.Step, probabilities: tf.Tensor) -> Dict[str, tf.Tensor]:
        """The importance-weighted loss of a batch of sequences ([B, S, ...]), with per-sequence `priorities` and
        metrics."""
        time_major = lambda x: tf.transpose(x, [1, 0, *range(2, x.shape.rank)])  # noqa: E731
        observations = time_major(tf.cast(data.observation, tf.float32))
        stored = data.extras["core_state"]
        state = (stored["hidden"][:, 0], stored["cell"][:, 0])
        online_state = target_state = state
        if self._burn_in > 0:
            burn_in = observations[: self._burn_in]
            _, online_state = self._network.unroll(burn_in, state)
            _, target_state = self._target_network.unroll(burn_in, state)
            online_state = tf.nest.map_structure(tf.stop_gradient, online_state)
            target_state = tf.nest.map_structure(tf.stop_gradient, target_state)
        trace = observations[self._burn_in :]
        q_online, _ = self._network.unroll(trace, online_state)
        q_target, _ = self._target_network.unroll(trace, target_state)
        rewards, discounts = (time_major(x)[self._burn_in :] for x in (data.reward, data.discount))
        valid = time_major(data.extras["valid"])[self._burn_in :]
        targets = transformed_n_step_targets(
            tf.stop_gradient(q_online),
            tf.stop_gradient(q_target),
            rewards,
            discounts,
            valid,
            self._discount,
            self._n_step,
            self._epsilon,
        )
        actions = tf.cast(time_major(data.action)[self._burn_in :][:-1], tf.int32)
        q_taken = tf.gather(q_online[:-1], actions, axis=-1, batch_dims=2)
        td_errors = targets - q_taken
        mask = tf.cast(valid[:-1], tf.float32)
        count = tf.maximum(tf.reduce_sum(mask, axis=0), 1.0)
        sequence_losses = tf.reduce_sum(0.5 * tf.square(td_errors) * mask, axis=0) / count
        loss = tf.reduce_mean(sequence_losses * importance_weights(probabilities, self._importance_exponent))
        abs_td = tf.abs(td_errors)
        total = tf.maximum(tf.reduce_sum(mask), 1.0)
        return {
            "loss": loss,
            "priorities": sequence_priorities(tf.stop_gradient(abs_td), mask, self._max_priority_weight),
            "mean_q": tf.reduce_sum(q_taken * mask) / total,
            "td_error": tf.reduce_sum(abs_td * mask) / total,
        }

    def _sgd_step(self, sample: reverb.ReplaySample):
        variables = self._network.parameters
        with tf.GradientTape() as tape:
            metrics = self.loss(sample.data, sample.info.probability)
        gradients = tape.gradient(metrics["loss"], variables)
        if self._max_gradient_norm is not None:
            gradients, metrics["gradient_norm"] = tf.clip_by_global_norm(gradients, self._max_gradient_norm)
        else:
            metrics["gradient_norm"] = tf.linalg.global_norm(gradients)
        self._optimizer.apply_gradients(zip(gradients, variables))
        num_steps = self._num_steps.assign_add(1)

        def update_target():
            return tf.group([t.assign(o) for t, o in zip(self._target_network.parameters, variables)])

        with tf.control_dependencies([tf.cond(num_steps % self._target_update_period == 0, update_target, tf.no_op)]):
            return sample.info.key, {key: tf.identity(value) for key, value in metrics.items()}, tf.identity(num_steps)

    def step(self) -> None:
        """One gradient step on one sampled batch of sequences, then priorities, publishing, logs."""
        keys, metrics, steps = self._step_fn(next(self._iterator))
        priorities = metrics.pop("priorities")
        if self._priority_updater is not None:
            self._priority_updater.update(keys.numpy(), priorities.numpy().astype(np.float64))
        self._reports.after_step(int(steps), 1, lambda: {key: float(value) for key, value in metrics.items()})
