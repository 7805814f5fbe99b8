"""Categorical TD learning, the deterministic policy gradient, and the D4PG learner."""

from replay import import_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
from typing import Dict, Iterator, Optional

import numpy as np
import reverb
import tensorflow as tf

import replay
from agents import core
from agents.d4pg.networks import D4PGNetworks
from agents.networks import NetworkLearner
from agents.utils.losses import importance_weights
from agents.utils import Logger


def categorical_projection(values: tf.Tensor, probabilities: tf.Tensor, support: tf.Tensor) -> tf.Tensor:
    """Projects distributions with `probabilities` [B, K'] on atoms at `values` [B, K'] onto the evenly spaced
    `support` [K] (Bellemare et al. 2017): each atom's mass, its value clipped to the support's range, goes to the
    two nearest support atoms in proportion to closeness. Returns [B, K]."""
    v_min, v_max = support[0], support[-1]
    spacing = (v_max - v_min) / tf.cast(tf.shape(support)[0] - 1, support.dtype)
    clipped = tf.clip_by_value(values, v_min, v_max)[:, None, :]  # [B, 1, K']
    weights = tf.clip_by_value(1.0 - tf.abs(clipped - support[None, :, None]) / spacing, 0.0, 1.0)  # [B, K, K']
    return tf.reduce_sum(weights * probabilities[:, None, :], axis=-1)


def deterministic_policy_gradient_loss(actions: tf.Tensor, dqda: tf.Tensor, dqda_clipping: float) -> tf.Tensor:
    """Per-example loss [B] whose gradient with respect to `actions` is -dQ/da (clipped to +-dqda_clipping when
    it is > 0): 0.5 |stop_gradient(a + dQ/da) - a|^2, which moves the policy's actions up the critic's mean."""
    if dqda_clipping > 0:
        dqda = tf.clip_by_value(dqda, -dqda_clipping, dqda_clipping)
    target = tf.stop_gradient(actions + dqda)
    flat = lambda x: tf.reshape(x, [tf.shape(x)[0], -1])  # noqa: E731
    return 0.5 * tf.reduce_sum(tf.square(flat(target) - flat(actions)), axis=-1)


class D4PGLearner(NetworkLearner):
    """D4PG's learner on batches of n-step transitions (reverb.ReplaySample of replay.Transition).

    Each step is one compiled tf.function:
    - critic: cross-entropy between the critic's distribution at (o, a) and the target critic's distribution at
      (o', target policy(o')) with its atoms moved to R + discount * D * z and projected onto the support (R, D:
      the transition's n-step return and total discount); weighted by importance weights when prioritized;
    - policy: the deterministic policy gradient through the critic's mean at (o', policy(o')), as Acme's D4PG,
      with dQ/da clipping;
    - Adam for each network with global-norm clipping of its gradients; the target networks copy the online ones
      every `target_update_period` steps, or follow them by Polyak averaging with `target_update_tau` > 0.
    With a `priority_updater`, each transition's critic loss goes back to replay as its priority. Counts `steps`
    on `counter`, and every `publish_period` steps publishes the policy's numpy parameters to `publisher`.
    """

    def __init__(
        self,
        networks: D4PGNetworks,
        iterator: Iterator[reverb.ReplaySample],
        *,
        discount: float = 0.99,
        policy_learning_rate: float = 1e-4,
        critic_learning_rate: float = 1e-4,
        dqda_clipping: float = 1.0,
        max_gradient_norm: Optional[float] = 40.0,
        target_update_period: int = 100,
        target_update_tau: float = 0.0,
        importance_sampling_exponent: float = 0.2,
        priority_updater: Optional[replay.PriorityUpdater] = None,
        publisher: Optional[core.ParameterPublisher] = None,
        publish_period: int = 10,
        counter: Optional[core.Counting] = None,
        logger: Optional[Logger] = None,
    ):
        # The policy first: it is what actors receive.
        super().__init__(networks._asdict(), publisher, publish_period, counter, logger)
        self._networks = networks
        self._iterator = iterator
        self._discount = float(discount)
        self._dqda_clipping = float(dqda_clipping)
        self._max_gradient_norm = max_gradient_norm
        self._target_update_period = int(target_update_period)
        self._target_update_tau = float(target_update_tau)
        self._beta = float(importance_sampling_exponent)
        self._priority_updater = priority_updater
        self._policy_optimizer = self._adam("policy_optimizer", policy_learning_rate, networks.policy)
        self._critic_optimizer = self._adam("critic_optimizer", critic_learning_rate, networks.critic)
        networks.target_policy.set_parameters(networks.policy.numpy_parameters())
        networks.target_critic.set_parameters(networks.critic.numpy_parameters())
        # Plain graph code (autograph off) cuts the first trace.
        self._step_fn = tf.function(self._sgd_step, autograph=False)
        self.publish()

    def losses(self, transitions: replay.Transition) -> Dict[str, tf.Tensor]:
        """Per-transition critic and policy losses [B] and the critic's mean value at (o, a) [B]."""
        n = self._networks
        critic = n.critic
        rewards = tf.cast(transitions.reward, tf.float32)
        discounts = tf.cast(transitions.discount, tf.float32) * self._discount
        logits = critic(transitions.observation, transitions.action)
        next_logits = n.target_critic(transitions.next_observation, n.target_policy(transitions.next_observation))
        target_values = rewards[:, None] + discounts[:, None] * critic.atoms[None, :]
        targets = categorical_projection(target_values, tf.nn.softmax(next_logits), critic.atoms)
        critic_loss = tf.nn.softmax_cross_entropy_with_logits(tf.stop_gradient(targets), logits)

        actions = n.policy(transitions.next_observation)
        with tf.GradientTape() as action_tape:
            action_tape.watch(actions)
            q_values = critic.mean(critic(transitions.next_observation, actions))
        dqda = action_tape.gradient(q_values, actions)
        policy_loss = deterministic_policy_gradient_loss(actions, dqda, self._dqda_clipping)
        return {"critic_loss": critic_loss, "policy_loss": policy_loss, "q_value": critic.mean(logits)}

    def _sgd_step(self, sample: reverb.ReplaySample) -> Dict[str, tf.Tensor]:
        n = self._networks
        with tf.GradientTape(persistent=True) as tape:
            losses = self.losses(sample.data)
            critic_losses = losses["critic_loss"]
            if self._priority_updater is not None:
                critic_losses = critic_losses * importance_weights(sample.info.probability, self._beta)
            critic_loss = tf.reduce_mean(critic_losses)
            policy_loss = tf.reduce_mean(losses["policy_loss"])
        updates = []
        for loss, network, optimizer in (
            (critic_loss, n.critic, self._critic_optimizer),
            (policy_loss, n.policy, self._policy_optimizer),
        ):
            gradients = tape.gradient(loss, network.parameters)
            if self._max_gradient_norm is not None:
                gradients, _ = tf.clip_by_global_norm(gradients, self._max_gradient_norm)
            updates.append(optimizer.apply_gradients(zip(gradients, network.parameters)))
        del tape
        with tf.control_dependencies(updates):
            num_steps = self._num_steps.assign_add(1)
            pairs = [
                (target, online)
                for target_network, network in ((n.target_policy, n.policy), (n.target_critic, n.critic))
                for target, online in zip(target_network.parameters, network.parameters)
            ]
            if self._target_update_tau > 0:
                tau = self._target_update_tau
                target_update = tf.group([t.assign((1.0 - tau) * t + tau * o) for t, o in pairs])
            else:
                target_update = tf.cond(
                    num_steps % self._target_update_period == 0,
                    lambda: tf.group([t.assign(o) for t, o in pairs]),
                    tf.no_op,
                )
        with tf.control_dependencies([target_update]):
            return {
                "keys": sample.info.key,
                "priorities": tf.identity(losses["critic_loss"]),
                "critic_loss": tf.identity(critic_loss),
                "policy_loss": tf.identity(policy_loss),
                "q_value": tf.reduce_mean(losses["q_value"]),
                "num_steps": tf.identity(num_steps),
            }

    def step(self) -> None:
        """One gradient step of each network on one sampled batch, then priorities, publishing, logs."""
        result = self._step_fn(next(self._iterator))
        if self._priority_updater is not None:
            self._priority_updater.update(result["keys"].numpy(), result["priorities"].numpy().astype(np.float64))
        self._reports.after_step(
            int(result["num_steps"]),
            1,
            lambda: {key: float(result[key]) for key in ("critic_loss", "policy_loss", "q_value")},
        )
