"""D4PG actors: the deterministic policy in numpy (no TensorFlow) plus clipped Gaussian exploration noise."""

from typing import TYPE_CHECKING, List, Optional, Sequence

import numpy as np

from agents import core

if TYPE_CHECKING:
    from replay import Adder

LAYER_NORM_EPSILON = 1e-5  # Of PolicyNetwork's layer norm too; defined here, where acting needs no TensorFlow.


def numpy_policy(
    params: Sequence[np.ndarray], observation: np.ndarray, minimum: np.ndarray, maximum: np.ndarray
) -> np.ndarray:
    """PolicyNetwork's forward pass in numpy for one observation: an action of the bounds' shape."""
    hidden = np.asarray(observation, np.float32).reshape(-1)
    w, b, scale, offset = params[:4]
    hidden = hidden @ w + b
    hidden = (hidden - hidden.mean()) / np.sqrt(hidden.var() + LAYER_NORM_EPSILON) * scale + offset
    hidden = np.tanh(hidden)
    for i in range(4, len(params) - 2, 2):
        pre = hidden @ params[i] + params[i + 1]
        hidden = np.where(pre > 0, pre, np.expm1(np.minimum(pre, 0.0)))  # ELU
    squashed = np.tanh(hidden @ params[-2] + params[-1]).reshape(np.shape(minimum))
    return (minimum + (squashed + 1.0) * 0.5 * (maximum - minimum)).astype(np.float32)


def sigma_ladder(num_actors: int, sigma_max: float, sigma_min: float) -> List[float]:
    """Exploration noise per actor: from sigma_max (actor 0) to sigma_min (the last), geometrically, so that some
    actors explore widely and some stay near the policy (Ape-X's spread, for Gaussian noise); linearly when
    sigma_min is 0; one actor gets sigma_max."""
    if num_actors < 1:
        raise ValueError(f"num_actors must be >= 1 (got {num_actors}).")
    if num_actors == 1:
        return [sigma_max]
    if sigma_min == 0:
        return [sigma_max * (1 - i / (num_actors - 1)) for i in range(num_actors)]
    return [sigma_max * (sigma_min / sigma_max) ** (i / (num_actors - 1)) for i in range(num_actors)]


class D4PGActor(core.GenericActor):
    """Acts with the policy computed in numpy from the variable client's parameters, plus Gaussian noise of
    standard deviation `sigma` times half the action range, clipped to the action bounds (sigma 0: the greedy
    evaluator). Before the first parameters arrive it acts uniformly at random within the bounds. Transitions go
    to `adder` when one is given (evaluators pass none)."""

    def __init__(
        self,
        action_minimum: np.ndarray,
        action_maximum: np.ndarray,
        variable_client: core.VariableClientLike,
        sigma: float = 0.0,
        adder: Optional["Adder"] = None,
        seed: Optional[int] = None,
    ):
        self._minimum = np.asarray(action_minimum, np.float32)
        self._maximum = np.asarray(action_maximum, np.float32)
        self._scale = np.float32(sigma) * 0.5 * (self._maximum - self._minimum)
        super().__init__(variable_client, adder)
        self._rng = np.random.default_rng(seed)
        self.sigma = float(sigma)

    def select_action(self, observation: np.ndarray) -> np.ndarray:
        params = self._variable_client.params
        if params is None:
            return self._rng.uniform(self._minimum, self._maximum).astype(np.float32)
        action = numpy_policy(params, observation, self._minimum, self._maximum)
        if self.sigma > 0:
            action = action + self._scale * self._rng.standard_normal(action.shape).astype(np.float32)
        return np.clip(action, self._minimum, self._maximum)
