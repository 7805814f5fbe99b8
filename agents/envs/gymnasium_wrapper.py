"""A gymnasium environment seen through the dm_env interface."""

from typing import Any, Optional

import dm_env
import gymnasium
import numpy as np
from dm_env import specs

from agents.envs.solved import reward_range


def _space_to_spec(space: gymnasium.Space, name: str) -> specs.Array:
    if isinstance(space, gymnasium.spaces.Discrete):
        if space.start != 0:
            raise ValueError(
                f"{name} space {space} starts at {space.start}; only Discrete spaces "
                "starting at 0 map to dm_env DiscreteArray."
            )
        return specs.DiscreteArray(int(space.n), dtype=np.int64, name=name)
    if isinstance(space, gymnasium.spaces.Box):
        dtype = np.float32 if np.issubdtype(space.dtype, np.floating) else space.dtype
        return specs.BoundedArray(
            space.shape, dtype, minimum=space.low.astype(dtype), maximum=space.high.astype(dtype), name=name
        )
    raise ValueError(
        f"{name} space {type(space).__name__} is not supported; use an environment with Discrete or Box spaces."
    )


class GymnasiumWrapper(dm_env.Environment):
    """Adapts a gymnasium environment to dm_env.

    Floating observations become float32. Termination is a LAST step with
    discount 0; time-limit truncation is a LAST step with discount 1. Calling
    `step` after a LAST step (or before any `reset`) starts a new episode.
    """

    def __init__(self, environment: gymnasium.Env, seed: Optional[int] = None):
        self._environment = environment
        self._seed = seed
        self._observation_spec = _space_to_spec(environment.observation_space, "observation")
        self._action_spec = _space_to_spec(environment.action_space, "action")
        self._obs_dtype = self._observation_spec.dtype
        self._discrete = isinstance(self._action_spec, specs.DiscreteArray)
        self._needs_reset = True

    def reset(self) -> dm_env.TimeStep:
        observation, _ = self._environment.reset(seed=self._seed)
        self._seed = None  # Seed once; later episodes continue the same stream.
        self._needs_reset = False
        return dm_env.restart(self._observation(observation))

    def step(self, action: Any) -> dm_env.TimeStep:
        if self._needs_reset:
            return self.reset()
        action = int(action) if self._discrete else np.asarray(action, self._action_spec.dtype)
        observation, reward, terminated, truncated, _ = self._environment.step(action)
        observation = self._observation(observation)
        reward = np.float32(reward)
        if terminated:
            self._needs_reset = True
            return dm_env.TimeStep(dm_env.StepType.LAST, reward, np.float32(0.0), observation)
        if truncated:
            self._needs_reset = True
            return dm_env.truncation(reward, observation, discount=np.float32(1.0))
        return dm_env.transition(reward, observation, discount=np.float32(1.0))

    def _observation(self, observation: Any) -> np.ndarray:
        return np.asarray(observation, dtype=self._obs_dtype)

    def observation_spec(self) -> specs.Array:
        return self._observation_spec

    def action_spec(self) -> specs.Array:
        return self._action_spec

    def reward_spec(self) -> specs.Array:
        """A BoundedArray for environments whose per-step rewards agents.envs knows the bounds of."""
        bounds = reward_range(getattr(self._environment.spec, "id", None) or "")
        if bounds is None:
            return specs.Array((), np.float32, name="reward")
        return specs.BoundedArray((), np.float32, minimum=bounds[0], maximum=bounds[1], name="reward")

    def discount_spec(self) -> specs.BoundedArray:
        return specs.BoundedArray((), np.float32, minimum=0.0, maximum=1.0, name="discount")

    @property
    def environment(self) -> gymnasium.Env:
        """The wrapped gymnasium environment."""
        return self._environment

    def close(self) -> None:
        self._environment.close()


def make_environment(name: str, seed: Optional[int] = None) -> dm_env.Environment:
    """Makes the gymnasium environment `name` (e.g. "CartPole-v1") as a dm_env.Environment."""
    try:
        environment = gymnasium.make(name, disable_env_checker=True)
    except gymnasium.error.Error as error:
        raise ValueError(
            f"Unknown environment {name!r} ({error}); pass a gymnasium id such as 'CartPole-v1' or 'Pendulum-v1'."
        ) from None
    if seed is not None:
        environment.action_space.seed(seed)
    return GymnasiumWrapper(environment, seed=seed)
