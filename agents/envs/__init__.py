"""Environments for agents: gymnasium environments through the dm_env interface."""

from agents.envs.gymnasium_wrapper import GymnasiumWrapper, make_environment
from agents.envs.partially_observed import CARTPOLE_NO_VELOCITY, register_partially_observed
from agents.envs.requirements import bounded_actions, num_discrete_actions
from agents.envs.solved import MAX_RETURNS, REWARD_RANGES, SOLVED_RETURNS, max_return, reward_range, solved_return

__all__ = [
    "CARTPOLE_NO_VELOCITY",
    "GymnasiumWrapper",
    "MAX_RETURNS",
    "REWARD_RANGES",
    "SOLVED_RETURNS",
    "bounded_actions",
    "make_environment",
    "max_return",
    "num_discrete_actions",
    "reward_range",
    "solved_return",
]

register_partially_observed()  # Partially observed variants (e.g. CartPoleNoVel-v1) become gymnasium ids.
