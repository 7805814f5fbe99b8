"""D4PG: distributed distributional deterministic policy gradients (Barth-Maron et al. 2018) for continuous
control; many Gaussian-exploring actors write n-step transitions, one learner trains a deterministic policy against
a categorical critic.

Names are imported on first use, so nodes that only act or evaluate (numpy) never import TensorFlow.
"""

from agents._lazy import lazy_exports

_EXPORTS = {
    "D4PGActor": "acting",
    "numpy_policy": "acting",
    "sigma_ladder": "acting",
    "D4PGBuilder": "builder",
    "D4PGConfig": "config",
    "D4PGLearner": "learning",
    "categorical_projection": "learning",
    "deterministic_policy_gradient_loss": "learning",
    "CriticNetwork": "networks",
    "D4PGNetworks": "networks",
    "PolicyNetwork": "networks",
    "make_networks": "networks",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports("agents.d4pg", _EXPORTS)
