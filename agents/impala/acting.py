"""IMPALA actors: they sample from the policy in numpy (no TensorFlow) and record its logits."""

import functools
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Sequence, Tuple

import dm_env
import numpy as np

from agents import core

if TYPE_CHECKING:
    from replay import Adder


NUMPY_ACTIVATIONS: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
}
# (numpy parameters, observation or batch) -> (logits, value): a network's forward pass in numpy.
PolicyAndValue = Callable[[Sequence[np.ndarray], np.ndarray], Tuple[np.ndarray, np.ndarray]]


def numpy_policy_and_value(
    params: Sequence[np.ndarray], observation: np.ndarray, activation: str = "relu", head_layers: int = 0
) -> Tuple[np.ndarray, np.ndarray]:
    """ActorCriticNetwork's forward pass in numpy, for one observation or a batch: (logits, value). `activation`
    is the network's, `head_layers` the number of hidden layers in each of its heads (len(head_hidden_sizes))."""
    num_torso = len(params) // 2 - 2 - 2 * head_layers
    hidden = _numpy_hidden_layers(np.asarray(observation, np.float32), params[: 2 * num_torso], activation)
    heads = params[2 * num_torso :]
    policy, value = heads[: len(heads) // 2], heads[len(heads) // 2 :]
    policy_hidden = _numpy_hidden_layers(hidden, policy[:-2], activation)
    value_hidden = _numpy_hidden_layers(hidden, value[:-2], activation)
    return policy_hidden @ policy[-2] + policy[-1], (value_hidden @ value[-2] + value[-1])[..., 0]


def numpy_forward(activation: str = "relu", head_hidden_sizes: Sequence[int] = ()) -> PolicyAndValue:
    """`numpy_policy_and_value` for a network with this activation and these hidden layers in each head."""
    return functools.partial(numpy_policy_and_value, activation=activation, head_layers=len(head_hidden_sizes))


def _numpy_hidden_layers(hidden: np.ndarray, params: Sequence[np.ndarray], activation: str) -> np.ndarray:
    for w, b in zip(params[::2], params[1::2]):
        hidden = NUMPY_ACTIVATIONS[activation](hidden @ w + b)
    return hidden


def extras_spec(num_actions: int) -> Dict[str, Any]:
    """What an actor stores with each step: the behaviour policy's logits, and `valid` (True on every step the
    actor writes; the rows the adder adds itself at an episode's end, its closing row and the zero padding, hold
    False, so the learner can tell them from real steps)."""
    from dm_env import specs  # pylint: disable=import-outside-toplevel

    return {
        "logits": specs.Array((num_actions,), np.float32, name="logits"),
        "valid": specs.Array((), np.bool_, name="valid"),
    }


class IMPALAActor(core.GenericActor):
    """Samples actions from softmax(logits) computed in numpy from the variable client's parameters (argmax when
    `greedy`), and hands the logits it sampled from to `adder` as extras.

    Before the first parameters arrive it acts uniformly at random, and records zero logits (that policy).
    `policy_and_value` is the network's forward pass in numpy (`numpy_forward(...)` for other than IMPALA's).
    """

    def __init__(
        self,
        num_actions: int,
        variable_client: core.VariableClientLike,
        adder: Optional["Adder"] = None,
        greedy: bool = False,
        seed: Optional[int] = None,
        policy_and_value: PolicyAndValue = numpy_policy_and_value,
    ):
        self._num_actions = num_actions
        self._policy_and_value = policy_and_value
        super().__init__(variable_client, adder)
        self._greedy = greedy
        self._rng = np.random.default_rng(seed)
        self._logits = np.zeros(num_actions, np.float32)
        self.num_steps = 0

    def select_action(self, observation: np.ndarray) -> np.int64:
        self.num_steps += 1
        params = self._variable_client.params
        if params is None:
            self._logits = np.zeros(self._num_actions, np.float32)
        else:
            self._logits = self._policy_and_value(params, observation)[0].astype(np.float32)
        if self._greedy:
            return np.int64(np.argmax(self._logits))
        # Gumbel-max: argmax(logits + Gumbel noise) is a sample of softmax(logits).
        return np.int64(np.argmax(self._logits - np.log(-np.log(self._rng.random(self._num_actions)))))

    def observe(self, action: Any, next_timestep: dm_env.TimeStep) -> None:
        if self._adder is not None:
            self._adder.add(action, next_timestep, extras={"logits": self._logits, "valid": np.bool_(True)})
