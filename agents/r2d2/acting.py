"""R2D2 actors: epsilon-greedy over an LSTM Q-network run in numpy (no TensorFlow), storing their recurrent state.

Actors use the numpy twin because it is the faster of the two here: one step of the default network (torso 64,
LSTM 64, dueling) measured 91 us in numpy against 587 us through a compiled tf.function, whose per-call overhead
dwarfs the arithmetic (benchmarks/r2d2_cartpole_novel.py measures both; 2 cores at load ~5).
"""

from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence, Tuple, Union

import dm_env
import numpy as np

from agents import core
from agents.dqn.acting import Schedule

if TYPE_CHECKING:
    from replay import Adder

State = Tuple[np.ndarray, np.ndarray]  # (hidden, cell), float32 [lstm_size] (or [B, lstm_size]).


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # Stable for any x, unlike 1 / (1 + exp(-x)).


def numpy_q_step(
    params: Sequence[np.ndarray], observation: np.ndarray, state: State, dueling: bool
) -> Tuple[np.ndarray, State]:
    """One step of RecurrentQNetwork in numpy: (Q-values, next state) for one observation (or a batch)."""
    num_heads = 2 if dueling else 1
    num_torso = (len(params) - 3 - 2 * num_heads) // 2
    hidden = np.asarray(observation, np.float32)
    for i in range(num_torso):
        hidden = np.maximum(hidden @ params[2 * i] + params[2 * i + 1], 0.0)
    input_w, recurrent_w, lstm_b = params[2 * num_torso : 2 * num_torso + 3]
    h, c = state
    i, f, g, o = np.split(hidden @ input_w + h @ recurrent_w + lstm_b, 4, axis=-1)
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    h = _sigmoid(o) * np.tanh(c)
    heads = [h @ params[j] + params[j + 1] for j in range(2 * num_torso + 3, len(params), 2)]
    if dueling:
        value, advantage = heads
        q_values = value + advantage - advantage.mean(axis=-1, keepdims=True)
    else:
        q_values = heads[0]
    return q_values, (h.astype(np.float32), c.astype(np.float32))


def initial_state(lstm_size: int) -> State:
    zeros = np.zeros(lstm_size, np.float32)
    return zeros, zeros


def extras_spec(lstm_size: int) -> Dict[str, Any]:
    """What an actor stores with each step: the recurrent state it had before that step's observation (the learner
    reads the one at a sequence's first row), and `valid` (True on every step the actor writes; the rows the adder
    adds at an episode's end, its closing row and the zero padding, hold False)."""
    from dm_env import specs  # pylint: disable=import-outside-toplevel

    return {
        "core_state": {
            "cell": specs.Array((lstm_size,), np.float32, name="cell"),
            "hidden": specs.Array((lstm_size,), np.float32, name="hidden"),
        },
        "valid": specs.Array((), np.bool_, name="valid"),
    }


class R2D2Actor(core.GenericActor):
    """Epsilon-greedy over Q-values of the variable client's parameters, computed in numpy with the LSTM state
    carried from step to step and reset at every episode's start.

    `epsilon` is a constant or a schedule of this actor's step count. Before the first parameters arrive the actor
    acts uniformly at random (its state stays at zero). Each step goes to `adder` (evaluators pass none) with the
    state the actor had before the step's observation.
    """

    def __init__(
        self,
        num_actions: int,
        lstm_size: int,
        dueling: bool,
        variable_client: core.VariableClientLike,
        epsilon: Union[float, Schedule] = 0.0,
        adder: Optional["Adder"] = None,
        seed: Optional[int] = None,
    ):
        super().__init__(variable_client, adder)
        self._num_actions = num_actions
        self._lstm_size = lstm_size
        self._dueling = dueling
        self._epsilon = epsilon if callable(epsilon) else (lambda _, e=float(epsilon): e)
        self._rng = np.random.default_rng(seed)
        self._state = initial_state(lstm_size)
        self._state_before_step = self._state
        self.num_steps = 0

    @property
    def state(self) -> State:
        """The recurrent state the next observation will be processed from."""
        return self._state

    def observe_first(self, timestep: dm_env.TimeStep) -> None:
        self._state = initial_state(self._lstm_size)
        super().observe_first(timestep)

    def select_action(self, observation: np.ndarray) -> np.int64:
        self.num_steps += 1
        self._state_before_step = self._state
        params = self._variable_client.params
        q_values = None
        if params is not None:
            q_values, self._state = numpy_q_step(params, observation, self._state, self._dueling)
        if q_values is None or self._rng.random() < self._epsilon(self.num_steps):
            return np.int64(self._rng.integers(self._num_actions))
        return np.int64(np.argmax(q_values))

    def observe(self, action: Any, next_timestep: dm_env.TimeStep) -> None:
        if self._adder is not None:
            hidden, cell = self._state_before_step
            extras = {"core_state": {"cell": cell, "hidden": hidden}, "valid": np.bool_(True)}
            self._adder.add(action, next_timestep, extras=extras)
