"""Epsilon-greedy DQN actors that act in numpy from published parameters (no TensorFlow)."""

from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import dm_env
import numpy as np

from agents import core

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


class DQNActor(core.Actor):
    """Epsilon-greedy over Q-values computed in numpy from the variable client's parameters.

    `epsilon` is a constant or a schedule of this actor's step count. Before the
    first parameters arrive the actor acts uniformly at random. Transitions go to
    `adder` when one is given (evaluators pass none).
    """

    def __init__(self,
                 num_actions: int,
                 dueling: bool,
                 variable_client: Any,
                 epsilon: Union[float, Schedule] = 0.0,
                 adder: Optional[Any] = None,
                 seed: Optional[int] = None):
        self._num_actions = num_actions
        self._dueling = dueling
        self._variable_client = variable_client
        self._epsilon = epsilon if callable(epsilon) else (lambda _, e=float(epsilon): e)
        self._adder = adder
        self._rng = np.random.default_rng(seed)
        self.num_steps = 0

    @property
    def epsilon(self) -> float:
        return self._epsilon(self.num_steps)

    @property
    def parameter_version(self) -> int:
        return self._variable_client.version

    def q_values(self, observation: np.ndarray) -> Optional[np.ndarray]:
        params = self._variable_client.params
        return None if params is None else numpy_q_values(params, observation, self._dueling)

    def select_action(self, observation: np.ndarray) -> np.int64:
        self.num_steps += 1
        params = self._variable_client.params
        if params is None or self._rng.random() < self._epsilon(self.num_steps):
            return np.int64(self._rng.integers(self._num_actions))
        return np.int64(np.argmax(numpy_q_values(params, observation, self._dueling)))

    def observe_first(self, timestep: dm_env.TimeStep) -> None:
        if self._adder is not None:
            self._adder.add_first(timestep)

    def observe(self, action: Any, next_timestep: dm_env.TimeStep) -> None:
        if self._adder is not None:
            self._adder.add(action, next_timestep)

    def update(self, wait: bool = False) -> None:
        self._variable_client.update(wait)


def evaluate(environment: dm_env.Environment, actor: core.Actor, num_episodes: int, *,
             target: Optional[float] = None, max_return: Optional[float] = None) -> float:
    """Mean undiscounted return of `actor` over `num_episodes` episodes.

    Given `target` and `max_return` (an upper bound on one episode's return), stops
    early, returning the mean so far, once the mean can no longer reach `target`.
    """
    returns: List[float] = []
    for episode in range(num_episodes):
        if (target is not None and max_return is not None and
                sum(returns) + (num_episodes - episode) * max_return < target * num_episodes):
            break
        timestep = environment.reset()
        total = 0.0
        while not timestep.last():
            timestep = environment.step(actor.select_action(timestep.observation))
            total += float(timestep.reward)
        returns.append(total)
    return float(np.mean(returns))


def screen_then_evaluate(environment: dm_env.Environment, actor: core.Actor, num_episodes: int,
                         target: Optional[float],
                         max_return: Optional[float] = None) -> Tuple[float, Optional[float], bool]:
    """One screening episode, then `num_episodes` more only if it reached `target`.

    Screening keeps evaluation cheap while the policy is far from solving; the
    solve criterion is still the mean over the full evaluation, which ends early
    once `max_return` per remaining episode could not lift the mean to `target`.
    Returns (screen return, mean evaluation return or None, solved).
    """
    screen_return = evaluate(environment, actor, 1)
    if target is not None and screen_return < target:
        return screen_return, None, False
    mean_return = evaluate(environment, actor, num_episodes, target=target, max_return=max_return)
    return screen_return, mean_return, target is not None and mean_return >= target
