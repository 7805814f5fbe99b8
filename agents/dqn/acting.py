"""Epsilon-greedy DQN actors that act in numpy from published parameters (no TensorFlow)."""

from typing import TYPE_CHECKING, Callable, List, Optional, Sequence, Union

import numpy as np

from agents import core

if TYPE_CHECKING:
    from replay import Adder

Schedule = Callable[[int], float]


def numpy_q_values(params: Sequence[np.ndarray], observation: np.ndarray, dueling: bool) -> np.ndarray:
    """QNetwork's forward pass in numpy, for one observation or a batch."""
    hidden = np.asarray(observation, np.float32)
    num_heads = 2 if dueling else 1
    num_torso = len(params) // 2 - num_heads
    for i in range(num_torso):
        hidden = np.maximum(hidden @ params[2 * i] + params[2 * i + 1], 0.0)
    heads = [hidden @ params[j] + params[j + 1] for j in range(2 * num_torso, len(params), 2)]
    if not dueling:
        return heads[0]
    value, advantage = heads
    return value + advantage - advantage.mean(axis=-1, keepdims=True)


def apex_epsilons(num_actors: int, base: float = 0.4, alpha: float = 7.0) -> List[float]:
    """Ape-X exploration ladder: epsilon_i = base^(1 + alpha * i / (N - 1)), i = 0..N-1."""
    if num_actors < 1:
        raise ValueError(f"num_actors must be >= 1 (got {num_actors}).")
    if num_actors == 1:
        return [base]
    return [base ** (1 + alpha * i / (num_actors - 1)) for i in range(num_actors)]


def linear_epsilon(start: float, end: float, decay_steps: int) -> Schedule:
    """Epsilon falling linearly from `start` to `end` over `decay_steps` actor steps."""

    def schedule(step: int) -> float:
        fraction = min(step / max(decay_steps, 1), 1.0)
        return start + fraction * (end - start)

    return schedule


def actor_epsilon(
    settings: core.ActorSettings,
    start: float,
    end: float,
    decay_steps: int,
    ladder_base: float = 0.4,
    ladder_alpha: float = 7.0,
) -> Union[float, Schedule]:
    """Epsilon of one acting actor: a linear decay in a single process; distributed actor i of N takes rung i of
    the Ape-X ladder `apex_epsilons(N, ladder_base, ladder_alpha)`."""
    if settings.single_process:
        return linear_epsilon(start, end, decay_steps)
    return apex_epsilons(settings.num_actors, ladder_base, ladder_alpha)[settings.actor_id]


class DQNActor(core.GenericActor):
    """Epsilon-greedy over Q-values computed in numpy from the variable client's parameters.

    `epsilon` is a constant or a schedule of this actor's step count. Before the
    first parameters arrive the actor acts uniformly at random. Transitions go to
    `adder` when one is given (evaluators pass none).
    """

    def __init__(
        self,
        num_actions: int,
        dueling: bool,
        variable_client: core.VariableClientLike,
        epsilon: Union[float, Schedule] = 0.0,
        adder: Optional["Adder"] = None,
        seed: Optional[int] = None,
    ):
        self._num_actions = num_actions
        self._dueling = dueling
        super().__init__(variable_client, adder)
        self._epsilon = epsilon if callable(epsilon) else (lambda _, e=float(epsilon): e)
        self._rng = np.random.default_rng(seed)
        self.num_steps = 0

    def select_action(self, observation: np.ndarray) -> np.int64:
        self.num_steps += 1
        params = self._variable_client.params
        if params is None or self._rng.random() < self._epsilon(self.num_steps):
            return np.int64(self._rng.integers(self._num_actions))
        return np.int64(np.argmax(numpy_q_values(params, observation, self._dueling)))
