"""Ape-X DQN: double DQN on prioritized n-step replay, one learner and many actors.

Names are imported on first use, so nodes that only act or evaluate (numpy)
never import TensorFlow.
"""

import importlib

_EXPORTS = {
    "DQNActor": "acting",
    "apex_epsilons": "acting",
    "linear_epsilon": "acting",
    "numpy_q_values": "acting",
    "DQNBuilder": "builder",
    "DQNConfig": "config",
    "DQNLearner": "learning",
    "double_q_targets": "learning",
    "importance_weights": "learning",
    "QNetwork": "networks",
    "make_q_network": "networks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'agents.dqn' has no attribute {name!r}")
    return getattr(importlib.import_module(f"agents.dqn.{_EXPORTS[name]}"), name)


def __dir__():
    return __all__
