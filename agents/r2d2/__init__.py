"""R2D2: recurrent replay distributed DQN (Kapturowski et al. 2019). Actors run an LSTM Q-network and write
overlapping sequences, with their recurrent state, into prioritized replay; the learner replays them with a
burn-in that refreshes the stored state.

Names are imported on first use, so nodes that only act or evaluate (numpy) never import TensorFlow.
"""

from agents._lazy import lazy_exports

_EXPORTS = {
    "R2D2Actor": "acting",
    "extras_spec": "acting",
    "numpy_q_step": "acting",
    "R2D2Builder": "builder",
    "R2D2Config": "config",
    "R2D2Learner": "learning",
    "inverse_value_rescaling": "learning",
    "sequence_priorities": "learning",
    "transformed_n_step_targets": "learning",
    "value_rescaling": "learning",
    "RecurrentQNetwork": "networks",
    "make_recurrent_q_network": "networks",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports("agents.r2d2", _EXPORTS)
