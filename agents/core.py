"""Core interfaces of an agent (Acme's roles), the builder that makes one, and the environment loop.

This module stays light (numpy and dm_env only): node processes that only act or count import it without
paying for TensorFlow or Reverb, which appear here in type hints alone.
"""

import abc
import dataclasses
import time
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Generic,
    Iterator,
    List,
    Mapping,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    TypeVar,
)

import dm_env
import numpy as np

if TYPE_CHECKING:
    import reverb

    import launch
    import replay
    from agents.experiments.config import ExperimentConfig
    from agents.utils.loggers import Logger
    from agents.utils.parameter_server import ParameterServer

T = TypeVar("T")
Versioned = Tuple[int, Any]  # (version, parameters)


class Counting(Protocol):
    """Counts named quantities (a utils.Counter or a remote client of one)."""

    def increment(self, **counts: float) -> Mapping[str, float]: ...

    def get_counts(self) -> Mapping[str, float]: ...


class ParameterPublisher(Protocol):
    """Where a learner publishes its parameters (a utils.VariableServer or a client of one)."""

    def publish(self, params: Any, version: int) -> Any: ...


class ParameterSource(Protocol):
    """Where actors pull parameters from: `(version, params)` when newer than `known_version`, else None."""

    def get(self, known_version: int = -1) -> Optional[Versioned]: ...


class GradientSink(Protocol):
    """Where gradients go (a utils.ParameterServer or a client of one): `push_gradients` returns the newest
    `(version, parameters)` once the push is applied, or None when nothing is newer than `based_on_version` (a
    client of a stopping program's server gives up with None too)."""

    def push_gradients(self, gradients: Any, based_on_version: int, group: int = 0) -> Optional[Versioned]: ...

    def get(self, known_version: int = -1) -> Optional[Versioned]: ...


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


class GenericActor(Actor):
    """An actor that reads its parameters from a variable client and records to an adder when it has one
    (evaluators have none). Subclasses only choose actions."""

    def __init__(self, variable_client: "VariableClientLike", adder: Optional["replay.Adder"] = None):
        self._variable_client = variable_client
        self._adder = adder

    def observe_first(self, timestep: dm_env.TimeStep) -> None:
        if self._adder is not None:
            self._adder.add_first(timestep)

    def observe(self, action: Any, next_timestep: dm_env.TimeStep) -> None:
        if self._adder is not None:
            self._adder.add(action, next_timestep)

    def update(self, wait: bool = False) -> None:
        self._variable_client.update(wait)


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


class LearnerReports:
    """What a learner does after each step besides learning: publishes its parameters every `publish_period`
    steps (versioned by step), counts its updates on `counter`, and logs a row when the logger wants one (see
    Logger.wants_row: the experiment layer's learner loggers take at most one a second)."""

    def __init__(
        self,
        parameters_fn: Callable[[], Any],
        publisher: Optional[ParameterPublisher] = None,
        publish_period: int = 1,
        counter: Optional[Counting] = None,
        logger: Optional["Logger"] = None,
    ):
        if publish_period < 1:
            raise ValueError(f"publish_period must be >= 1 (got {publish_period}).")
        self._parameters_fn = parameters_fn
        self._publisher = publisher
        self._publish_period = publish_period
        self._counter = counter
        self._logger = logger
        self._published_version = -1

    def publish(self, steps: int) -> None:
        """Publishes the current parameters as version `steps`, unless that version is out already."""
        if self._publisher is not None and steps > self._published_version:
            self._publisher.publish(self._parameters_fn(), steps)
            self._published_version = steps

    def after_step(self, steps: int, updates: int, metrics_fn: Callable[[], Mapping[str, float]]) -> None:
        """After a step that brought the learner to `steps` with `updates` gradient updates; `metrics_fn` is only
        called for a row that is logged."""
        if steps // self._publish_period > self._published_version // self._publish_period:
            self.publish(steps)
        counts = self._counter.increment(steps=updates) if self._counter is not None else {}
        if self._logger is not None and self._logger.wants_row():
            self._logger.write({**counts, "learner_steps": steps, **metrics_fn()})


class Learner(VariableSource, Worker, Saveable):
    """Consumes replayed data and updates parameters."""

    @abc.abstractmethod
    def step(self) -> None:
        """Performs one update."""

    @property
    @abc.abstractmethod
    def num_steps(self) -> int:
        """Updates made so far (restored with the learner's state)."""

    @property
    def checkpoint_objects(self) -> Mapping[str, Any]:
        """What a utils.Checkpointer saves of this learner: tf trackables (parameters, optimizer state,
        step counts) or Saveables whose `save()` returns JSON-ready state. Defaults to the learner itself."""
        return {"learner": self}

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

    def __init__(
        self,
        environment: dm_env.Environment,
        actor: Actor,
        counter: Optional[Counting] = None,
        logger: Optional["Logger"] = None,
        should_update: bool = True,
    ):
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
        result.update(
            episode_return=episode_return,
            episode_length=episode_length,
            steps_per_second=episode_length / max(time.monotonic() - start, 1e-9),
        )
        return result

    def run(
        self,
        num_episodes: Optional[int] = None,
        num_steps: Optional[int] = None,
        should_stop: Optional[Callable[[], bool]] = None,
    ) -> int:
        """Runs episodes until a budget is spent or `should_stop()`; returns steps run.

        Budgets are checked between episodes, so `num_steps` may be exceeded by
        at most one episode.
        """
        if num_episodes is not None and num_steps is not None:
            raise ValueError("Pass num_episodes or num_steps, not both.")
        episodes = steps = 0
        while not (
            (num_episodes is not None and episodes >= num_episodes)
            or (num_steps is not None and steps >= num_steps)
            or (should_stop is not None and should_stop())
        ):
            result = self.run_episode()
            episodes += 1
            steps += result["episode_length"]
            if self._logger is not None:
                self._logger.write(result)
        return steps


class VariableClientLike(Protocol):
    """The local copy of published parameters that an actor reads (a utils.VariableClient)."""

    @property
    def params(self) -> Any: ...

    @property
    def version(self) -> int: ...

    def update(self, wait: bool = False) -> None: ...


@dataclasses.dataclass(frozen=True)
class ActorSettings:
    """Which actor the builder is making.

    `single_process`: the one actor of a run that interleaves acting and learning (e.g. DQN decays epsilon
    there, where distributed actors each take a rung of the Ape-X ladder).
    """

    actor_id: int = 0
    num_actors: int = 1
    seed: int = 0
    single_process: bool = False


class Builder(abc.ABC):
    """Makes every piece of one agent; the experiment layer (agents.experiments) assembles them into a
    single process or a distributed program.

    Subclasses set `config_class` (a dataclass of hyperparameters, the `--config` fields of agents.run)
    and `prioritized` (whether learners send priorities back, so the learner node makes a
    replay.PriorityUpdater for `priority_table`). `repeatable_sampling`: whether the learner's batches depend
    only on what actors wrote (a queue's order), not on Reverb's uniform or prioritized selectors, whose random
    generator cannot be seeded; only then can a single-process run repeat exactly (`--deterministic`).
    """

    name: str = "agent"
    config_class: type
    prioritized: bool = False
    priority_table: str = ""
    repeatable_sampling: bool = False

    def __init__(self, config: Any):
        self.config = config

    @abc.abstractmethod
    def make_replay_tables(
        self, environment_spec: "replay.EnvironmentSpec", rate_limited: bool = True
    ) -> List["reverb.Table"]:
        """The tables actors write to. Without `rate_limited` (one process interleaving acting and learning,
        which must never block) tables may only enforce their minimum size."""

    @abc.abstractmethod
    def make_adder(self, client: "reverb.Client") -> "replay.Adder":
        """How an actor writes its experience into the tables."""

    @abc.abstractmethod
    def make_dataset_iterator(self, server_address: str, rate_limiter_timeout_ms: int = -1) -> Iterator[Any]:
        """The learner's input, one item per learner step; it ends when sampling stays blocked for the timeout
        (-1: never), so that a learner waiting for data can notice a stop."""

    @abc.abstractmethod
    def make_networks(self, environment_spec: "replay.EnvironmentSpec", seed: int) -> Any:
        """The networks the learner trains (anything `make_learner` understands)."""

    @abc.abstractmethod
    def make_learner(
        self,
        networks: Any,
        iterator: Iterator[Any],
        *,
        publisher: Optional[ParameterPublisher] = None,
        priority_updater: Optional["replay.PriorityUpdater"] = None,
        counter: Optional[Counting] = None,
        logger: Optional["Logger"] = None,
    ) -> Learner:
        """The learner: consumes `iterator`, publishes parameters, sends priorities (when prioritized)."""

    def num_learners(self) -> int:
        """Learner nodes of a distributed run. One applies its own updates and publishes its parameters (make_learner);
        several each push gradients to one parameter server, which applies them and publishes the result
        (make_parameter_server, make_gradient_learner)."""
        return 1

    def make_parameter_server(
        self, environment_spec: "replay.EnvironmentSpec", seed: int, logger: Optional["Logger"] = None
    ) -> "ParameterServer":
        """With several learners: the server holding the parameters and optimizer they share."""
        raise NotImplementedError(f"{type(self).__name__} runs one learner; it has no parameter server.")

    def make_gradient_learner(
        self,
        networks: Any,
        iterator: Iterator[Any],
        parameter_server: GradientSink,
        *,
        priority_updater: Optional["replay.PriorityUpdater"] = None,
        counter: Optional[Counting] = None,
        logger: Optional["Logger"] = None,
    ) -> Learner:
        """With several learners: one of them, pushing gradients to `parameter_server` and adopting what it returns."""
        raise NotImplementedError(f"{type(self).__name__} runs one learner; it makes no gradient learner.")

    @abc.abstractmethod
    def make_actor(
        self,
        environment_spec: "replay.EnvironmentSpec",
        variable_client: VariableClientLike,
        adder: Optional["replay.Adder"],
        settings: ActorSettings,
    ) -> Actor:
        """An actor that explores, acting with the parameters `variable_client` holds."""

    @abc.abstractmethod
    def make_evaluation_actor(
        self, environment_spec: "replay.EnvironmentSpec", variable_client: VariableClientLike, seed: int
    ) -> Actor:
        """A greedy actor for evaluation; writes nothing."""

    def check_environment(self, environment_spec: "replay.EnvironmentSpec") -> None:
        """Raises a ValueError naming what this agent cannot handle in the environment (e.g. continuous actions
        for DQN), before any node starts."""

    def variable_update_period(self) -> int:
        """Actor steps between an actor's parameter polls."""
        return 1

    def learner_steps_per_actor_step(self) -> float:
        """How many learner steps one actor step pays for when acting and learning share one process."""
        return 1.0

    def actors_wait_for_parameters(self) -> bool:
        """Whether a distributed actor waits for the learner's first parameters before it acts: for agents whose
        learner takes each item once (a queue), where episodes of the actors' untrained network would fill the
        queue while the learner starts, and then hold the actors at a full queue."""
        return False

    def learner_steps_per_episode(self) -> float:
        """Learner steps an episode's end pays for on top of its actor steps' (one process): for an adder that
        writes rows of its own at an episode's end, which a learner consuming each item once must keep up with."""
        return 0.0

    def min_actor_steps_before_learning(self) -> int:
        """Actor steps a single process takes before its first learner step (the tables' minimum size)."""
        return 0


class ProgramBuilder(abc.ABC):
    """Makes an agent that assembles its own nodes instead of a Builder's replay, learner and actors (tabular
    Q-learning's workers and coordinator; an actor-learner agent's gradient pushes to a parameter server). The
    experiment layer runs its program or its single-process loop with the same run directory, budgets, flags and
    result.json as a Builder's.

    What the experiment layer expects of both: one node (or the loop) evaluates, logs rows with `actor_steps` and
    `eval_return` to run_dir/logs (the learning curve), prints the progress line, stops the program when solved or
    out of the experiment's budget, and writes run_dir/result.json with at least `solved`, `stopped_by` ("solved",
    "budget", or "user" when stopped from outside, e.g. by Ctrl-C), `wall_seconds`, `eval_return`, `actor_steps`
    and `learner_steps`.

    `uses_num_actors`: whether `make_program` takes its node count from `num_actors` (`--num_actors`), rather than
    from its config. `resumable`: whether a run can continue from its run directory (`--resume`). `repeatable`:
    whether a single-process run repeats exactly for a seed (`--deterministic`).
    """

    name: str = "agent"
    config_class: type
    uses_num_actors: bool = True
    resumable: bool = False
    repeatable: bool = False

    def __init__(self, config: Any):
        self.config = config

    def check_experiment(self, experiment: "ExperimentConfig") -> None:
        """Raises a ValueError naming what this agent cannot do with the experiment (e.g. an environment without
        a transition table), before any node starts."""

    @abc.abstractmethod
    def make_program(self, experiment: "ExperimentConfig", num_actors: int) -> "launch.Program":
        """The distributed program of one run of `experiment`."""

    @abc.abstractmethod
    def run_single_process(
        self, experiment: "ExperimentConfig", print_fn: Callable[[str], None] = print
    ) -> Mapping[str, Any]:
        """Runs `experiment` in this process; returns (and writes) result.json's contents."""
