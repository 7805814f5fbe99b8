"""A parameter server for agents that share gradients instead of trajectories (A3C, A2C, parallel learners).

Workers keep a local copy of the parameters, compute gradients on their own experience and push them here with
the version they were computed from; the server applies them with its optimizer (one optimizer state for all
workers) and serves the result through the same `get(known_version)` a utils.VariableClient polls.

Update schemes, by `group_size` and `num_groups`:

- asynchronous (`group_size=1`, A3C): each push is applied as it arrives, one at a time;
- synchronous (`group_size=K`, A2C): a barrier per round: K pushes, then one update with their mean; every push
  returns after its round's update. A round whose members have not all pushed within `barrier_timeout` seconds of
  its first push is applied with the gradients it has (a short round), so a dead member never hangs the others;
- `num_groups=G` groups of `group_size`: synchronous inside a group, asynchronous between groups (a push names its
  group).

Staleness of a push is the number of updates between the version its gradients were computed from and the
version they are applied to; with `max_staleness`, pushes staler than that are dropped (and counted).
"""

import bisect
import collections
import threading
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import tree

import launch as lp
from agents import core
from agents.core import Versioned

# What the server's state is reported as, besides the counts: the staleness quantiles (updates).
_STALENESS_QUANTILES = (0.5, 0.9, 0.99)


class _Round:
    """The pushes of one group waiting for their common update."""

    def __init__(self):
        self.gradients: List[List[np.ndarray]] = []
        self.based_on: List[int] = []
        self.started = time.monotonic()
        self.applied = False


class ParameterServer(core.VariableSource):
    """Holds parameters (a nest of float arrays) and the optimizer that applies pushed gradients to them.

    `make_parameters()` returns the initial parameters (version 0); `make_optimizer()` a tf.keras optimizer, built
    on the parameters' variables. Both are called here, so that a launch node can make the server in its own
    process: TensorFlow is imported when a server is made, not when this module is.
    Public methods are meant to be served as RPCs (a launch.CourierNode); `counter` (e.g. a remote counter) gets
    the updates as `learner_steps`, and `logger` a row of `stats()` every `report_seconds`, while `run()` runs.
    """

    def __init__(
        self,
        make_parameters: Callable[[], Any],
        make_optimizer: Callable[[], Any],
        *,
        group_size: int = 1,
        num_groups: int = 1,
        max_staleness: Optional[int] = None,
        barrier_timeout: float = 10.0,
        counter: Optional[core.Counting] = None,
        logger: Optional[Any] = None,
        report_seconds: float = 1.0,
    ):
        problems = []
        if group_size < 1:
            problems.append(f"group_size must be >= 1 (got {group_size})")
        if num_groups < 1:
            problems.append(f"num_groups must be >= 1 (got {num_groups})")
        if max_staleness is not None and max_staleness < 0:
            problems.append(f"max_staleness must be >= 0 or None for no limit (got {max_staleness})")
        if not barrier_timeout > 0:
            problems.append(f"barrier_timeout must be > 0 seconds (got {barrier_timeout})")
        if problems:
            raise ValueError("ParameterServer: " + "; ".join(problems) + ".")
        import replay  # pylint: disable=import-outside-toplevel

        replay.import_tensorflow()  # Without its CPU-only plugin noise.
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        parameters = make_parameters()
        self._structure = parameters
        self._paths = [path for path, _ in tree.flatten_with_path(parameters)]
        leaves = [np.asarray(leaf) for leaf in tree.flatten(parameters)]
        self._shapes = [leaf.shape for leaf in leaves]
        self._dtypes = [leaf.dtype for leaf in leaves]
        self._variables = [tf.Variable(leaf, name=f"parameter_{i}") for i, leaf in enumerate(leaves)]
        self._optimizer = make_optimizer()
        self._optimizer.build(self._variables)
        signature = [tf.TensorSpec(shape, tf.as_dtype(dtype)) for shape, dtype in zip(self._shapes, self._dtypes)]
        self._apply_fn = tf.function(self._apply_and_read, input_signature=[signature], autograph=False)
        self.group_size = group_size
        self.num_groups = num_groups
        self._max_staleness = max_staleness
        self._barrier_timeout = barrier_timeout
        self._counter = counter
        self._logger = logger
        self._report_seconds = report_seconds

        self._condition = threading.Condition()
        self._rounds = [_Round() for _ in range(num_groups)]
        self._version = 0
        self._published: Versioned = (0, parameters)
        self._pushes = 0
        self._dropped_stale = 0
        self._short_rounds = 0
        self._staleness: Dict[int, int] = collections.Counter()
        self._first_push: Optional[float] = None
        self._closed = False

    # ------------------------------------------------------------------------------------------------- workers

    def push_gradients(self, gradients: Any, based_on_version: int, group: int = 0) -> Optional[Versioned]:
        """Applies `gradients` (computed from the parameters of version `based_on_version`) as the update scheme
        says; returns the newest `(version, parameters)` once they are applied (for a synchronous group: after the
        round's update), or None if nothing is newer than `based_on_version`.

        Raises ValueError naming the first leaf whose path, shape or dtype differs from the parameters'.
        """
        leaves = self._checked_leaves(gradients)
        if not 0 <= group < self.num_groups:
            raise ValueError(f"push_gradients: group must be in [0, {self.num_groups}) (got {group}).")
        with self._condition:
            if self._first_push is None:
                self._first_push = time.monotonic()
            self._pushes += 1
            if self._max_staleness is not None and self._version - based_on_version > self._max_staleness:
                self._dropped_stale += 1  # Computed on parameters too old: the newest ones go back instead.
            elif self.group_size == 1:
                self._apply([leaves], [based_on_version])
            else:
                self._join_round(group, leaves, based_on_version)
        return self.get(based_on_version)

    def _join_round(self, group: int, leaves: List[np.ndarray], based_on_version: int) -> None:
        """Adds a push to its group's round and waits (holding no lock) until the round is applied."""
        current = self._rounds[group]
        current.gradients.append(leaves)
        current.based_on.append(based_on_version)
        if len(current.gradients) == self.group_size:
            self._close_round(group)
            return
        deadline = current.started + self._barrier_timeout
        while not current.applied:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closed:
                self._close_round(group)  # Proceeds with the gradients it has.
                self._short_rounds += 1
                return
            self._condition.wait(remaining)

    def _close_round(self, group: int) -> None:
        current = self._rounds[group]
        self._rounds[group] = _Round()
        self._apply(current.gradients, current.based_on)
        current.applied = True
        self._condition.notify_all()

    def _apply(self, pushes: List[List[np.ndarray]], based_on: List[int]) -> None:
        """One optimizer update with the mean of `pushes`; called holding the condition (updates are serial)."""
        for version in based_on:
            self._staleness[self._version - version] += 1
        if len(pushes) == 1:
            gradients = pushes[0]
        else:
            gradients = [np.mean(leaves, axis=0, dtype=leaves[0].dtype) for leaves in zip(*pushes)]
        updated = self._apply_fn(gradients)
        self._version += 1
        self._published = (self._version, tree.unflatten_as(self._structure, [value.numpy() for value in updated]))

    def _apply_and_read(self, gradients: List[Any]) -> List[Any]:
        """The optimizer's update, then the updated values (one compiled call instead of a read per variable)."""
        self._optimizer.apply_gradients(zip(gradients, self._variables))
        return [variable.read_value() for variable in self._variables]

    def _checked_leaves(self, gradients: Any) -> List[np.ndarray]:
        paths = [path for path, _ in tree.flatten_with_path(gradients)]
        if paths != self._paths:
            missing = [path for path in self._paths if path not in paths]
            extra = [path for path in paths if path not in self._paths]
            what = (
                f"no gradient for the parameter at {_path_name(missing[0])}"
                if missing
                else f"a gradient at {_path_name(extra[0])}, where there is no parameter"
                if extra
                else "the parameters' leaves in another order"
            )
            raise ValueError(
                f"push_gradients: the gradients have {what}; push one gradient per parameter, in the structure "
                "get() returns the parameters in."
            )
        leaves = [np.asarray(leaf) for leaf in tree.flatten(gradients)]
        for path, leaf, shape, dtype in zip(self._paths, leaves, self._shapes, self._dtypes):
            if leaf.shape != shape or leaf.dtype != dtype:
                raise ValueError(
                    f"push_gradients: the gradient at {_path_name(path)} is {leaf.dtype}{list(leaf.shape)}, but the "
                    f"parameter there is {dtype}{list(shape)}; push gradients shaped and typed like the parameters."
                )
        return leaves

    # ------------------------------------------------------------------------------------------------- readers

    def get(self, known_version: int = -1) -> Optional[Versioned]:
        """Returns `(version, parameters)` if newer than `known_version`, else None."""
        published = self._published
        return published if published[0] > known_version else None

    def version(self) -> int:
        """The number of updates applied so far (0: the initial parameters)."""
        return self._published[0]

    def get_variables(self, names=()) -> List[Any]:
        """Returns `[parameters]` (names are ignored: one parameter set is served)."""
        return [self._published[1]]

    def stats(self) -> Dict[str, Any]:
        """Counts of pushes, updates, dropped stale pushes, short rounds and pushes waiting in open rounds; pushes
        and updates per second since
        the first push; the staleness distribution (`staleness_histogram`: updates behind -> pushes, and its
        median, p90, p99 and max)."""
        with self._condition:
            histogram = dict(sorted(self._staleness.items()))
            pushes, updates, version = self._pushes, self._version, self._version
            seconds = 0.0 if self._first_push is None else time.monotonic() - self._first_push
            stats = {
                "group_size": self.group_size,
                "num_groups": self.num_groups,
                "pushes": pushes,
                "updates": updates,
                "version": version,
                "dropped_stale": self._dropped_stale,
                "short_rounds": self._short_rounds,
                "waiting": sum(len(round_.gradients) for round_ in self._rounds),  # In rounds not applied yet.
                "pushes_per_second": pushes / seconds if seconds > 0 else None,
                "updates_per_second": updates / seconds if seconds > 0 else None,
                "staleness_histogram": {str(k): v for k, v in histogram.items()},
            }
        stats.update(_quantiles(histogram))
        return stats

    def status(self) -> Dict[str, Any]:
        """What an experiment's evaluator asks a learner (agents.experiments.EvaluatorNode): updates as learner
        steps, no replay, and `parameter_server`: `stats()`."""
        stats = self.stats()
        return {"learner_steps": stats["updates"], "replay_size": None, "parameter_server": stats}

    # ------------------------------------------------------------------------------------------------ node

    def run(self) -> None:
        """As a launch node: reports to the counter and logger until the program stops, then releases pushes
        still waiting at a barrier."""
        stop = lp.stop_event()
        reported = 0
        try:
            while not stop.wait(self._report_seconds):
                reported = self._report(reported)
            self._report(reported)
        finally:
            self.close()

    def _report(self, reported: int) -> int:
        stats = self.stats()
        if self._counter is not None and stats["updates"] > reported:
            try:
                self._counter.increment(learner_steps=stats["updates"] - reported)
                reported = stats["updates"]
            except (ConnectionError, TimeoutError, lp.RemoteError):
                pass  # The counter is restarting or stopping: these updates are counted with the next report.
        if self._logger is not None:
            self._logger.write(
                {
                    "learner_steps": stats["updates"],
                    **{k: v for k, v in stats.items() if k != "staleness_histogram" and v is not None},
                }
            )
        return reported

    def close(self) -> None:
        """Releases pushes waiting at a barrier (their rounds are applied short) and closes the logger."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        if self._logger is not None:
            self._logger.close()


def _path_name(path: tuple) -> str:
    return "parameters" + "".join(f"[{key!r}]" for key in path)


def _quantiles(histogram: Dict[int, int]) -> Dict[str, Optional[float]]:
    """Staleness median, p90, p99 and max from a histogram (None before any push is applied)."""
    values = sorted(histogram)
    cumulative = list(np.cumsum([histogram[v] for v in values]))
    total = cumulative[-1] if cumulative else 0
    names = {0.5: "staleness_median", 0.9: "staleness_p90", 0.99: "staleness_p99"}
    result: Dict[str, Optional[float]] = {}
    for q in _STALENESS_QUANTILES:
        index = bisect.bisect_left(cumulative, q * total) if total else None
        result[names[q]] = None if index is None else float(values[index])
    result["staleness_max"] = float(values[-1]) if values else None
    return result
