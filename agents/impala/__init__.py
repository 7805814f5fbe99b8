"""IMPALA: actors write sequences of their own policy into a FIFO queue; one learner corrects for their lag with
V-trace.

Names are imported on first use, so nodes that only act or evaluate (numpy) never import TensorFlow.
"""

from agents._lazy import lazy_exports

_EXPORTS = {
    "IMPALAActor": "acting",
    "extras_spec": "acting",
    "numpy_forward": "acting",
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
__getattr__, __dir__ = lazy_exports("agents.impala", _EXPORTS)
