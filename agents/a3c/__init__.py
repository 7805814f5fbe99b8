"""A3C (asynchronous) and A2C (synchronous) advantage actor-critic: workers push gradients to a parameter
server."""

from agents.a3c.acting import Rollout, RolloutCollector, n_step_targets
from agents.a3c.builder import A2CBuilder, A3CBuilder
from agents.a3c.config import A2CConfig, A3CConfig

__all__ = ["A2CBuilder", "A2CConfig", "A3CBuilder", "A3CConfig", "Rollout", "RolloutCollector", "n_step_targets"]
