"""Ape-X DQN: double DQN on prioritized n-step replay, one learner and many actors."""

from agents.dqn.acting import DQNActor, apex_epsilons, evaluate, linear_epsilon
from agents.dqn.builder import DQNBuilder
from agents.dqn.config import DQNConfig
from agents.dqn.learning import DQNLearner, double_q_targets, importance_weights
from agents.dqn.networks import QNetwork, make_q_network, numpy_q_values

__all__ = [
    "DQNActor", "DQNBuilder", "DQNConfig", "DQNLearner", "QNetwork", "apex_epsilons",
    "double_q_targets", "evaluate", "importance_weights", "linear_epsilon", "make_q_network",
    "numpy_q_values",
]
