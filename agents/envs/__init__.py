"""Environments for agents: gymnasium environments through the dm_env interface."""

from agents.envs.gymnasium_wrapper import GymnasiumWrapper, make_environment
from agents.envs.requirements import num_discrete_actions
from agents.envs.solved import MAX_RETURNS, SOLVED_RETURNS, max_return, solved_return

__all__ = [
    "GymnasiumWrapper",
    "MAX_RETURNS",
    "SOLVED_RETURNS",
    "make_environment",
    "max_return",
    "num_discrete_actions",
    "solved_return",
]
