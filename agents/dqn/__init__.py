"""Ape-X DQN: double DQN on prioritized n-step replay, one learner (or several sharing a parameter server) and many
actors.

Names are imported on first use, so nodes that only act or evaluate (numpy)
never import TensorFlow.
"""

from agents._lazy import lazy_exports

_EXPORTS = {
    "DQNActor": "acting",
    "actor_epsilon": "acting",
    "apex_epsilons": "acting",
    "linear_epsilon": "acting",
    "numpy_q_values": "acting",
    "DQNBuilder": "builder",
    "DQNConfig": "config",
    "DQNLearner": "learning",
    "DoubleQGradients": "learning",
    "ParallelDQNLearner": "learning",
    "double_q_targets": "learning",
    "importance_weights": "learning",
    "QNetwork": "networks",
    "make_q_network": "networks",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports("agents.dqn", _EXPORTS)
