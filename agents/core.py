"""Core interfaces of an agent (Acme's roles) and the environment loop."""

import abc
import time
from typing import Any, Callable, Generic, List, Mapping, Optional, Sequence, TypeVar

import dm_env
import numpy as np

T = TypeVar("T")


class Actor(abc.ABC):
    """Interacts with an environment: picks actions and records what it observes."""

    @abc.abstractmethod
    def select_action(self, observation: Any) -> Any:
        """Returns an action for the given observation."""

    @abc.abstractmethod
    def observe_first(self, timestep: dm_env.TimeStep) -> None:
        """Records the first timestep of an episode."""

    @abc.abstractmethod
    def observe(self, action: Any, next_timestep: dm_env.TimeStep) -> None:
        """Records the action taken and the timestep it led to."""

    @abc.abstractmethod
    def update(self, wait: bool = False) -> None:
        """Refreshes the actor's parameters from its variable source."""


class VariableSource(abc.ABC):
    """Something that serves parameters by name."""

    @abc.abstractmethod
    def get_variables(self, names: Sequence[str]) -> List[Any]:
        """Returns one nest of arrays per requested name."""


class Worker(abc.ABC):
    """A unit of work that runs until done or stopped."""

    @abc.abstractmethod
    def run(self) -> None:
        """Runs the worker."""


class Saveable(abc.ABC, Generic[T]):
    """An object whose state can be captured and restored."""

    @abc.abstractmethod
    def save(self) -> T:
        """Returns the object's state."""

    @abc.abstractmethod
    def restore(self, state: T) -> None:
        """Restores the object's state."""


class Learner(VariableSource, Worker, Saveable):
    """Consumes replayed data and updates parameters."""

    @abc.abstractmethod
    def step(self) -> None:
        """Performs one update."""

    def run(self, num_steps: Optional[int] = None) -> None:
        """Steps `num_steps` times, or forever when None."""
        remaining = float("inf") if num_steps is None else num_steps
        while remaining > 0:
            self.step()
            remaining -= 1

    def save(self):
        raise NotImplementedError(f"{type(self).__name__} does not implement save().")

    def restore(self, state) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement restore().")


class EnvironmentLoop(Worker):
    """Runs an actor in an environment and logs one row per episode.

    Each row has `episode_return`, `episode_length`, `steps_per_second` and, when a
    counter is given, its counts (the loop counts `steps` and `episodes`).
    """

    def __init__(self,
                 environment: dm_env.Environment,
                 actor: Actor,
                 counter: Optional[Any] = None,
                 logger: Optional[Any] = None,
                 should_update: bool = True):
        self._environment = environment
        self._actor = actor
        self._counter = counter
        self._logger = logger
        self._should_update = should_update

    def run_episode(self) -> Mapping[str, Any]:
        """Runs one episode and returns its statistics."""
        start = time.monotonic()
        timestep = self._environment.reset()
        self._actor.observe_first(timestep)
        episode_return = 0.0
        episode_length = 0
        while not timestep.last():
            action = self._actor.select_action(timestep.observation)
            timestep = self._environment.step(action)
            self._actor.observe(action, next_timestep=timestep)
            if self._should_update:
                self._actor.update()
            episode_return += float(np.sum(timestep.reward))
            episode_length += 1
        result = {}
        if self._counter is not None:
            result.update(self._counter.increment(episodes=1, steps=episode_length))
        result.update(episode_return=episode_return,
                      episode_length=episode_length,
                      steps_per_second=episode_length / max(time.monotonic() - start, 1e-9))
        return result

    def run(self,
            num_episodes: Optional[int] = None,
            num_steps: Optional[int] = None,
            should_stop: Optional[Callable[[], bool]] = None) -> int:
        """Runs episodes until a budget is spent or `should_stop()`; returns steps run.

        Budgets are checked between episodes, so `num_steps` may be exceeded by
        at most one episode.
        """
        if num_episodes is not None and num_steps is not None:
            raise ValueError("Pass num_episodes or num_steps, not both.")
        episodes = steps = 0
        while not ((num_episodes is not None and episodes >= num_episodes) or
                   (num_steps is not None and steps >= num_steps) or
                   (should_stop is not None and should_stop())):
            result = self.run_episode()
            episodes += 1
            steps += result["episode_length"]
            if self._logger is not None:
                self._logger.write(result)
        return steps
