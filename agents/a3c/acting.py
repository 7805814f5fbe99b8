"""A3C rollouts: a worker's environments stepped in lockstep with a numpy copy of the policy (no TensorFlow)."""

from typing import List, NamedTuple, Sequence, Tuple

import dm_env
import numpy as np

from agents.impala.acting import PolicyAndValue, numpy_policy_and_value


class Rollout(NamedTuple):
    """`t_max` steps of `num_envs` environments, [T, E, ...], acted with one set of parameters."""

    observations: np.ndarray  # s_t
    actions: np.ndarray  # a_t ~ pi(.|s_t)
    rewards: np.ndarray  # r_t
    discounts: np.ndarray  # The environment's discount at s'_t: 0 at a termination, else 1 (truncations too).
    continues: np.ndarray  # 1 where s'_t is s_{t+1} of this rollout: neither the episode's end nor the rollout's.
    values: np.ndarray  # V(s_t)
    next_values: np.ndarray  # V(s'_t), the value of the observation step t reached (bootstraps where not continued)


class RolloutCollector:
    """Steps `environments` in lockstep; an environment whose episode ends starts the next one. `policy_and_value`
    is the network's forward pass in numpy (`agents.impala.acting.numpy_forward`)."""

    def __init__(
        self,
        environments: Sequence[dm_env.Environment],
        seed: int,
        policy_and_value: PolicyAndValue = numpy_policy_and_value,
    ):
        self._environments = list(environments)
        self._policy_and_value = policy_and_value
        self._rng = np.random.default_rng(seed)
        self._observations = [environment.reset().observation for environment in self._environments]
        self._episode_returns = np.zeros(len(self._environments))
        self._episode_lengths = np.zeros(len(self._environments), np.int64)

    def collect(self, params: Sequence[np.ndarray], t_max: int) -> Tuple[Rollout, List[Tuple[float, int]]]:
        """A rollout of `t_max` steps acted with `params` (ActorCriticNetwork's numpy parameters), and the
        (return, length) of every episode that ended in it."""
        num_envs = len(self._environments)
        observations = np.empty((t_max, num_envs, *np.shape(self._observations[0])), np.float32)
        next_observations = np.empty_like(observations)
        actions = np.empty((t_max, num_envs), np.int32)
        rewards = np.empty((t_max, num_envs), np.float32)
        discounts = np.empty((t_max, num_envs), np.float32)
        continues = np.ones((t_max, num_envs), np.float32)
        values = np.empty((t_max, num_envs), np.float32)
        finished = []
        for t in range(t_max):
            observations[t] = self._observations
            logits, values[t] = self._policy_and_value(params, observations[t])
            # Gumbel-max: argmax(logits + Gumbel noise) is a sample of softmax(logits).
            actions[t] = np.argmax(logits - np.log(-np.log(self._rng.random(logits.shape))), axis=-1)
            for e, environment in enumerate(self._environments):
                timestep = environment.step(actions[t, e])
                rewards[t, e] = timestep.reward
                discounts[t, e] = timestep.discount
                next_observations[t, e] = timestep.observation
                self._episode_returns[e] += timestep.reward
                self._episode_lengths[e] += 1
                if timestep.last():
                    continues[t, e] = 0.0
                    finished.append((float(self._episode_returns[e]), int(self._episode_lengths[e])))
                    self._episode_returns[e], self._episode_lengths[e] = 0.0, 0
                    self._observations[e] = environment.reset().observation
                else:
                    self._observations[e] = timestep.observation
        continues[-1] = 0.0  # The rollout ends: every last step bootstraps.
        next_values = self._policy_and_value(params, next_observations)[1].astype(np.float32)
        return Rollout(observations, actions, rewards, discounts, continues, values, next_values), finished


def n_step_targets(rollout: Rollout, discount: float) -> Tuple[np.ndarray, np.ndarray]:
    """(returns, advantages), [T, E]: the n-step bootstrapped return of every step and its advantage R_t - V(s_t).

    Backwards from the rollout's end, R_t = r_t + discount * d_t * (R_{t+1} if the episode continues inside the
    rollout, else V(s'_t)), with d_t = 0 at a termination (nothing follows it) and 1 at a time-limit truncation
    (the state reached still has a value) and within an episode.
    """
    returns = np.empty_like(rollout.rewards)
    following = np.zeros_like(rollout.rewards[0])  # R_{t+1}, unused at the last step (continues = 0 there).
    for t in reversed(range(len(rollout.rewards))):
        bootstrap = rollout.continues[t] * following + (1.0 - rollout.continues[t]) * rollout.next_values[t]
        following = returns[t] = rollout.rewards[t] + discount * rollout.discounts[t] * bootstrap
    return returns, returns - rollout.values
