"""Double DQN learner on prioritized n-step transitions."""

from replay import import_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import reverb
import tensorflow as tf

import replay
from agents import core
from agents.dqn.networks import QNetwork
from agents.networks import NetworkLearner
from agents.utils import Logger
from agents.utils.losses import huber, importance_weights

# What each learner step logs, averaged over its gradient steps: the loss, the mean Q-value of the actions taken,
# the mean absolute TD error and the gradient's global norm before clipping.
_METRICS = ("loss", "mean_q", "td_error", "gradient_norm")


def double_q_targets(
    rewards: tf.Tensor, discounts: tf.Tensor, gamma: float, q_next_online: tf.Tensor, q_next_target: tf.Tensor
) -> tf.Tensor:
    """n-step double-Q targets R + gamma * D * Q_target(s', argmax_a Q_online(s', a)).

    R and D are an n-step transition's return and total discount; D already
    holds gamma^(n-1) and the environment discounts, so one more gamma completes
    gamma^n for non-terminal transitions.
    """
    best_actions = tf.argmax(q_next_online, axis=-1, output_type=tf.int32)
    q_next = tf.gather(q_next_target, best_actions, axis=-1, batch_dims=1)
    return rewards + gamma * discounts * q_next


class DoubleQGradients:
    """The gradient of double DQN's loss on one minibatch: the Huber loss of the TD errors against
    `double_q_targets` (the target network's values at the online network's greedy actions), weighted by prioritized
    replay's importance weights (exponent `importance_sampling_exponent`), its global norm clipped to
    `max_gradient_norm` (None: no clipping). Called inside a tf.function."""

    def __init__(
        self,
        network: QNetwork,
        target_network: QNetwork,
        discount: float,
        importance_sampling_exponent: float,
        huber_delta: float,
        max_gradient_norm: Optional[float],
    ):
        self._network = network
        self._target_network = target_network
        self._discount = float(discount)
        self._beta = float(importance_sampling_exponent)
        self._huber_delta = float(huber_delta)
        self._max_gradient_norm = max_gradient_norm

    def __call__(self, sample: reverb.ReplaySample) -> Tuple[tf.Tensor, List[tf.Tensor], Dict[str, tf.Tensor]]:
        """(TD errors, gradients of the network's parameters, metrics) of one minibatch."""
        transitions = sample.data
        with tf.GradientTape() as tape:
            q_values = self._network(transitions.observation)
            actions = tf.cast(transitions.action, tf.int32)
            q_taken = tf.gather(q_values, actions, axis=-1, batch_dims=1)
            targets = double_q_targets(
                tf.cast(transitions.reward, tf.float32),
                tf.cast(transitions.discount, tf.float32),
                self._discount,
                self._network(transitions.next_observation),
                self._target_network(transitions.next_observation),
            )
            td_errors = tf.stop_gradient(targets) - q_taken
            losses = huber(td_errors, self._huber_delta)
            loss = tf.reduce_mean(losses * importance_weights(sample.info.probability, self._beta))
        gradients = tape.gradient(loss, self._network.parameters)
        if self._max_gradient_norm is not None:
            gradients, gradient_norm = tf.clip_by_global_norm(gradients, self._max_gradient_norm)
        else:
            gradient_norm = tf.linalg.global_norm(gradients)
        metrics = {
            "loss": loss,
            "mean_q": tf.reduce_mean(q_taken),
            "td_error": tf.reduce_mean(tf.abs(td_errors)),
            "gradient_norm": gradient_norm,  # Before clipping.
        }
        return td_errors, gradients, metrics


class DQNLearner(NetworkLearner):
    """Double DQN with Huber loss, importance weights, target network and clipped gradients.

    Each step takes a batch from `iterator` (reverb.ReplaySample of
    replay.Transition), splits it into `num_sgd_steps_per_step` minibatches
    and takes one gradient step on each (TensorFlow's per-call cost, ~0.5 ms,
    is paid once), sends |TD error| back as priorities through
    `priority_updater` (a replay.PriorityUpdater), counts `steps` on `counter`
    and every `publish_period` steps publishes numpy parameters to `publisher`.
    """

    def __init__(
        self,
        network: QNetwork,
        target_network: QNetwork,
        iterator: Iterator[reverb.ReplaySample],
        *,
        discount: float = 0.99,
        learning_rate: float = 1e-3,
        target_update_period: int = 100,
        importance_sampling_exponent: float = 0.4,
        huber_delta: float = 1.0,
        max_gradient_norm: Optional[float] = 10.0,
        priority_updater: Optional[replay.PriorityUpdater] = None,
        publisher: Optional[core.ParameterPublisher] = None,
        publish_period: int = 10,
        num_sgd_steps_per_step: int = 1,
        counter: Optional[core.Counting] = None,
        logger: Optional[Logger] = None,
    ):
        super().__init__(
            {"network": network, "target_network": target_network}, publisher, publish_period, counter, logger
        )
        self._network = network
        self._target_network = target_network
        self._iterator = iterator
        self._gradients = DoubleQGradients(
            network, target_network, discount, importance_sampling_exponent, huber_delta, max_gradient_norm
        )
        self._target_update_period = int(target_update_period)
        self._priority_updater = priority_updater
        if num_sgd_steps_per_step < 1:
            raise ValueError(f"num_sgd_steps_per_step must be >= 1 (got {num_sgd_steps_per_step}).")
        self._num_sgd_steps_per_step = int(num_sgd_steps_per_step)
        self._optimizer = self._adam("optimizer", learning_rate, network)
        target_network.set_parameters(network.numpy_parameters())
        # Plain graph code (autograph off) cuts the first trace by over a second.
        self._sgd_step_fn = tf.function(self._sgd_steps, autograph=False)
        self.publish()

    def _sgd_steps(self, sample: reverb.ReplaySample):
        """Updates on each of the batch's num_sgd_steps_per_step minibatches in turn."""
        count = self._num_sgd_steps_per_step
        minibatches = tf.nest.map_structure(lambda x: tf.reshape(x, [count, -1, *x.shape[1:]]), sample)

        def body(i, priorities, sums):
            td_errors, metrics = self._sgd_step(tf.nest.map_structure(lambda x: x[i], minibatches))
            return i + 1, priorities.write(i, tf.abs(td_errors)), {k: sums[k] + metrics[k] for k in sums}

        zeros = {key: tf.constant(0.0) for key in _METRICS}
        _, priorities, sums = tf.while_loop(
            lambda i, *_: i < count,
            body,
            (tf.constant(0), tf.TensorArray(tf.float32, count), zeros),
            parallel_iterations=1,
        )
        return (
            sample.info.key,
            tf.reshape(priorities.stack(), [-1]),
            {key: total / count for key, total in sums.items()},
            tf.identity(self._num_steps),
        )

    def _sgd_step(self, sample: reverb.ReplaySample):
        td_errors, gradients, metrics = self._gradients(sample)
        variables = self._network.parameters
        self._optimizer.apply_gradients(zip(gradients, variables))
        num_steps = self._num_steps.assign_add(1)

        def update_target():
            return tf.group([t.assign(o) for t, o in zip(self._target_network.parameters, variables)])

        with tf.control_dependencies([tf.cond(num_steps % self._target_update_period == 0, update_target, tf.no_op)]):
            return tf.identity(td_errors), {key: tf.identity(value) for key, value in metrics.items()}

    def step(self) -> None:
        """num_sgd_steps_per_step gradient steps on one sampled batch, then priorities, publishing, logs."""
        keys, priorities, metrics, steps = self._sgd_step_fn(next(self._iterator))
        if self._priority_updater is not None:
            self._priority_updater.update(keys.numpy(), priorities.numpy().astype(np.float64))
        self._reports.after_step(
            int(steps), self._num_sgd_steps_per_step, lambda: {key: float(value) for key, value in metrics.items()}
        )


class ParallelDQNLearner(core.Learner):
    """One of several double-DQN learners training one Q-network on a parameter server (Gorila-style).

    Each step takes a batch from `iterator`, splits it into `num_sgd_steps_per_step` minibatches and, for each,
    pushes the clipped gradient (see DoubleQGradients) to `parameter_server`, which applies it with its optimizer;
    the `(version, parameters)` the push returns become this learner's network, so the next minibatch's gradient is
    taken at the newest parameters. The target network copies them whenever the server's version passes a multiple
    of `target_update_period` (updates of the shared network, whoever pushed them). |TD errors| go back through
    `priority_updater`, steps (this learner's gradient pushes) to `counter` and rows with the adopted
    `parameter_version` to `logger`. The server publishes the parameters and holds all the state worth saving.
    A push that comes back with nothing (the program is stopping) ends the learner with StopIteration.
    """

    def __init__(
        self,
        network: QNetwork,
        target_network: QNetwork,
        iterator: Iterator[reverb.ReplaySample],
        parameter_server: core.GradientSink,
        *,
        discount: float = 0.99,
        target_update_period: int = 100,
        importance_sampling_exponent: float = 0.4,
        huber_delta: float = 1.0,
        max_gradient_norm: Optional[float] = 10.0,
        priority_updater: Optional[replay.PriorityUpdater] = None,
        num_sgd_steps_per_step: int = 1,
        counter: Optional[core.Counting] = None,
        logger: Optional[Logger] = None,
    ):
        if num_sgd_steps_per_step < 1:
            raise ValueError(f"num_sgd_steps_per_step must be >= 1 (got {num_sgd_steps_per_step}).")
        self._network = network
        self._target_network = target_network
        self._iterator = iterator
        self._server = parameter_server
        self._target_update_period = int(target_update_period)
        self._priority_updater = priority_updater
        self._num_sgd_steps_per_step = int(num_sgd_steps_per_step)
        self._reports = core.LearnerReports(network.numpy_parameters, counter=counter, logger=logger)
        self._gradients = DoubleQGradients(
            network, target_network, discount, importance_sampling_exponent, huber_delta, max_gradient_norm
        )
        self._gradients_fn = tf.function(self._minibatch_gradients, autograph=False)
        self._num_steps = 0
        self.version = -1  # Of the parameters the network holds (the server's version).
        self._target_version = -1

    @property
    def num_steps(self) -> int:
        return self._num_steps

    @property
    def checkpoint_objects(self) -> Dict[str, Any]:
        return {}  # The parameters and optimizer state live on the parameter server.

    def _minibatch_gradients(self, batch: reverb.ReplaySample, index: tf.Tensor):
        """|TD errors|, gradients and metrics of minibatch `index` of the batch's num_sgd_steps_per_step."""
        count = self._num_sgd_steps_per_step
        minibatch = tf.nest.map_structure(lambda x: tf.reshape(x, [count, -1, *x.shape[1:]])[index], batch)
        td_errors, gradients, metrics = self._gradients(minibatch)
        return tf.abs(td_errors), gradients, metrics

    def step(self) -> None:
        """num_sgd_steps_per_step gradient pushes on one sampled batch, then priorities, counts, logs."""
        if self.version < 0:
            self._adopt(self._server.get(self.version))
        batch = next(self._iterator)
        count = self._num_sgd_steps_per_step
        priorities, sums = [], {key: 0.0 for key in _METRICS}
        for i in range(count):
            td_errors, gradients, metrics = self._gradients_fn(batch, tf.constant(i))
            self._adopt(self._server.push_gradients([g.numpy() for g in gradients], self.version))
            self._num_steps += 1
            priorities.append(td_errors.numpy())
            sums = {key: total + float(metrics[key]) for key, total in sums.items()}
        if self._priority_updater is not None:
            self._priority_updater.update(batch.info.key.numpy(), np.concatenate(priorities).astype(np.float64))
        self._reports.after_step(
            self._num_steps,
            count,
            lambda: {**{key: total / count for key, total in sums.items()}, "parameter_version": self.version},
        )

    def _adopt(self, fetched: Optional[core.Versioned]) -> None:
        if fetched is None:
            raise StopIteration  # The server gave nothing back: the program is stopping.
        version, parameters = fetched
        if version <= self.version:
            return
        self._network.set_parameters(parameters)
        period = self._target_update_period
        if self._target_version < 0 or version // period > self._target_version // period:
            self._target_network.set_parameters(parameters)
            self._target_version = version
        self.version = version

    def get_variables(self, names: Sequence[str] = ()) -> List[Any]:
        return [self._network.numpy_parameters()]
