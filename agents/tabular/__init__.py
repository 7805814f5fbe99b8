"""Tabular Q-learning (single, partitioned, averaged) with an exact oracle: numpy only, no TensorFlow."""

from agents.tabular.builder import TabularBuilder
from agents.tabular.config import MODES, TabularConfig
from agents.tabular.learning import Coordinator, QLearningWorker
from agents.tabular.model import (
    Solution,
    TabularModel,
    greedy_policy,
    is_optimal,
    make_model,
    model_of,
    policy_returns,
    start_return,
    value_iteration,
)
from agents.tabular.partition import PARTITIONS, Partition, make_partition, taxi_row_block

__all__ = [
    "MODES",
    "PARTITIONS",
    "Coordinator",
    "Partition",
    "QLearningWorker",
    "Solution",
    "TabularBuilder",
    "TabularConfig",
    "TabularModel",
    "greedy_policy",
    "is_optimal",
    "make_model",
    "make_partition",
    "model_of",
    "policy_returns",
    "start_return",
    "taxi_row_block",
    "value_iteration",
]
