"""A2C: A3C's workers (agents.a3c) with the parameter server in synchronous rounds; one worker implementation, two
configurations."""

from agents.a3c.builder import A2CBuilder
from agents.a3c.config import A2CConfig

__all__ = ["A2CBuilder", "A2CConfig"]
