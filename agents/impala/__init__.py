"""IMPALA: actors write sequences of their own policy into a FIFO queue; one learner corrects for their lag with
V-trace.

Names are imported on first use, so nodes that only act or evaluate (numpy) never import TensorFlow.
"""

import importlib

_EXPORTS = {
    "IMPALAActor": "acting",
    "extras_spec": "acting",
    "numpy_policy_and_value": "acting",
    "IMPALABuilder": "builder",
    "IMPALAConfig": "config",
    "IMPALALearner": "learning",
    "VTraceReturns": "learning",
    "vtrace": "learning",
    "ActorCriticNetwork": "networks",
    "make_actor_critic_network": "networks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'agents.impala' has no attribute {name!r}")
    return getattr(importlib.import_module(f"agents.impala.{_EXPORTS[name]}"), name)


def __dir__():
    return __all__
