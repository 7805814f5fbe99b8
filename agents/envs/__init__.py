"""Environments for agents: gymnasium environments through the dm_env interface."""

from agents.envs.gymnasium_wrapper import GymnasiumWrapper, make_environment

__all__ = ["GymnasiumWrapper", "make_environment"]
