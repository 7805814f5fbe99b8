"""Environments for agents: gymnasium environments through the dm_env interface."""

from agents.envs.gymnasium_wrapper import GymnasiumWrapper, make_environment
from agents.envs.solved import SOLVED_RETURNS, solved_return

__all__ = ["GymnasiumWrapper", "SOLVED_RETURNS", "make_environment", "solved_return"]
