"""Partially observed variants of gymnasium tasks, registered with gymnasium so their ids work wherever a gymnasium
id does (agents.run --env, the benchmarks' baselines)."""

import gymnasium
import numpy as np
from gymnasium.envs.classic_control import CartPoleEnv

CARTPOLE_NO_VELOCITY = "CartPoleNoVel-v1"

# CartPole's observation is (cart position, cart velocity, pole angle, pole angular velocity).
_POSITIONS = np.array([0, 2])


class _PositionsOnly(gymnasium.ObservationWrapper):
    """CartPole observing only the cart position and the pole angle: the velocities must be inferred from the
    history (as rl-zoo's CartPoleNoVel-v1 and RLlib's StatelessCartPole)."""

    def __init__(self, environment: gymnasium.Env):
        super().__init__(environment)
        box = environment.observation_space
        self.observation_space = gymnasium.spaces.Box(box.low[_POSITIONS], box.high[_POSITIONS], dtype=box.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[_POSITIONS]


def _make_cartpole_no_velocity(**kwargs) -> gymnasium.Env:
    return _PositionsOnly(CartPoleEnv(**kwargs))


def register_partially_observed() -> None:
    """Registers the variants with gymnasium (once per process)."""
    if CARTPOLE_NO_VELOCITY not in gymnasium.registry:
        # CartPole-v1's time limit and threshold.
        gymnasium.register(
            CARTPOLE_NO_VELOCITY, entry_point=_make_cartpole_no_velocity, max_episode_steps=500, reward_threshold=475.0
        )
