"""The adder interface and the TrajectoryWriter plumbing shared by Reverb adders."""

import replay._quiet_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
import abc
import threading
from typing import Any, Callable, Dict, Mapping, Optional

import dm_env
import numpy as np
import reverb
import tensorflow as tf
import tree

from replay import specs
from replay.adders._columns import Column, ColumnHistory, ColumnWriter
from replay._server_info import check_tables, server_info

DEFAULT_PRIORITY_TABLE = "priority_table"
# How long a write waits before checking that the Reverb server is still there.
DEFAULT_TIMEOUT_MS = 10_000

PriorityFn = Callable[[Any], float]
PriorityFnMapping = Mapping[str, Optional[PriorityFn]]

_NO_EXTRAS = ()


class AdderClosedError(RuntimeError):
    """A write to an adder after its `close()`."""


class Adder(abc.ABC):
    """Feeds an episode's timesteps, one at a time, into replay."""

    @abc.abstractmethod
    def add_first(self, timestep: dm_env.TimeStep) -> None:
        """Records the first timestep of an episode."""

    @abc.abstractmethod
    def add(self, action: Any, next_timestep: dm_env.TimeStep, extras: Any = _NO_EXTRAS) -> None:
        """Records the action taken and the timestep it led to."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Ends the current episode."""


class ReverbAdder(Adder):
    """Writes rows {observation, start_of_episode, action, reward, discount[, extras]} through Reverb's
    trajectory writer; subclasses decide which slices of history become items.

    Row t holds o_t and the action taken there, with the reward and discount that followed it. The
    newest row is open (only its observation is known) between `add` calls.
    """

    def __init__(
        self,
        client: reverb.Client,
        max_sequence_length: int,
        max_in_flight_items: int,
        priority_fns: Optional[PriorityFnMapping] = None,
        validate_items: bool = True,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
    ):
        if max_in_flight_items < 1:
            raise ValueError(f"max_in_flight_items must be >= 1 (got {max_in_flight_items}).")
        if timeout_ms < 1:
            raise ValueError(f"timeout_ms must be >= 1 (got {timeout_ms}).")
        self._client = client
        self._timeout_ms = timeout_ms
        self._priority_fns: Dict[str, Optional[PriorityFn]] = (
            dict(priority_fns) if priority_fns else {DEFAULT_PRIORITY_TABLE: None}
        )
        self._numpy_for_priorities = any(fn is not None for fn in self._priority_fns.values())
        self._max_sequence_length = max_sequence_length
        self._max_in_flight_items = max_in_flight_items
        self._validate_items = validate_items
        self._writer_instance: Optional[ColumnWriter] = None
        # close() may come from another thread at any moment, even while the writer is being created.
        self._writer_lock = threading.Lock()
        self._closed = False
        self._row_specs: Optional[Dict[str, Any]] = None
        self._episode_open = False
        self._check_next_step = True
        self._last_discount = None

    @property
    def _writer(self) -> ColumnWriter:
        if self._writer_instance is None:
            self._raise_if_closed()
            row_specs = self._fetch_row_specs()
            with self._writer_lock:
                self._raise_if_closed()
                self._row_specs = row_specs
                self._writer_instance = ColumnWriter(self._client, self._max_sequence_length, self._validate_items)
        return self._writer_instance

    def _raise_if_closed(self) -> None:
        if self._closed:
            raise AdderClosedError(f"{type(self).__name__} was closed: create a new adder to write again.")

    def add_first(self, timestep: dm_env.TimeStep) -> None:
        if not timestep.first():
            raise ValueError(
                f"add_first needs a FIRST timestep (from env.reset()), got step_type {timestep.step_type}."
            )
        if self._episode_open:
            raise ValueError(
                "add_first called twice in one episode: call reset() first (add() does it "
                "automatically when it receives a LAST timestep)."
            )
        self._raise_if_closed()
        writer = self._writer
        self._check("observation", timestep.observation)
        writer.append(self._observation_row(timestep.observation, first=True), partial_step=True)
        self._episode_open = True
        self._check_next_step = True

    def add(self, action: Any, next_timestep: dm_env.TimeStep, extras: Any = _NO_EXTRAS) -> None:
        if not self._episode_open:
            raise ValueError("add_first must be called before add (once per episode).")
        self._raise_if_closed()
        discount = next_timestep.discount
        last = next_timestep.last()
        if last and self._last_discount is not None and not tree.is_nested(discount):
            # A terminal scalar discount takes the structure, shape and dtype of the episode's discounts.
            discount = tree.map_structure(
                lambda d: np.broadcast_to(np.asarray(next_timestep.discount, np.asarray(d).dtype), np.shape(d)),
                self._last_discount,
            )
        step = {"action": action, "reward": next_timestep.reward, "discount": discount}
        if extras is not _NO_EXTRAS and _has_extras(extras):
            step["extras"] = extras
        if self._check_next_step:
            for field, value in step.items():
                self._check(field, value)
            self._check("observation", next_timestep.observation)
            self._check_next_step = False
        row = self._complete_row(step)
        writer = self._writer_instance  # Created by add_first.
        writer.append(row)
        writer.append(self._observation_row(next_timestep.observation, next_timestep.first()), partial_step=True)
        self._last_discount = discount
        self._write()
        if last:
            writer.append(tree.map_structure(np.zeros_like, row))
            self._write_last()
            self.reset()

    def reset(self, timeout_ms: Optional[int] = None) -> None:
        if self._writer_instance is not None:
            self._end_episode(timeout_ms)
        self._episode_open = False
        self._last_discount = None

    def flush(self, timeout_ms: Optional[int] = None) -> None:
        """Blocks until every item created so far is in its table."""
        if self._writer_instance is not None:
            self._writer_instance.flush(0, timeout_ms=timeout_ms)

    def close(self) -> None:
        """Stops writing for good, for shutdown, at any moment and from any thread: items not yet sent are
        dropped, an `add` blocked on the table's rate limiter raises, and so does every later call. Call
        `flush` first to keep pending items."""
        with self._writer_lock:
            self._closed = True
            writer = self._writer_instance
        if writer is not None:
            writer.close()

    def __del__(self):
        if getattr(self, "_writer_instance", None) is not None:
            try:
                self._writer_instance.flush(0, timeout_ms=10_000)
            except (RuntimeError, reverb.errors.ReverbError):  # Closed, or the server is gone: nothing to save.
                pass

    def _end_episode(self, timeout_ms: Optional[int]) -> None:
        self._wait_for_items(0)
        self._writer.end_episode(clear_buffers=True, timeout_ms=timeout_ms)

    def _wait_for_items(self, max_in_flight: int) -> None:
        """Waits until at most `max_in_flight` items are unconfirmed, checking every `timeout_ms` that the server
        still answers: a gone server raises ConnectionError naming its address, a rate limiter holding the
        items back (the server answers) is waited for."""
        while True:
            try:
                self._writer.flush(max_in_flight, timeout_ms=self._timeout_ms)
                return
            except reverb.errors.DeadlineExceededError:
                server_info(self._client, self._timeout_ms / 1000)

    def _observation_row(self, observation: Any, first: bool) -> Dict[str, Any]:
        """The data that opens a row."""
        return {"observation": observation, "start_of_episode": first}

    def _complete_row(self, step: Dict[str, Any]) -> Dict[str, Any]:
        """The data that closes the open row, from {action, reward, discount[, extras]}."""
        return step

    def _insert(self, trajectory: Any) -> None:
        """Creates one item per table from `trajectory` (a nest of history columns)."""
        values = map_columns(lambda c: c.numpy(), trajectory) if self._numpy_for_priorities else None
        for table, priority_fn in self._priority_fns.items():
            priority = 1.0 if priority_fn is None else float(priority_fn(values))
            self._writer.create_item(table, priority, trajectory)
        self._wait_for_items(self._max_in_flight_items)

    @abc.abstractmethod
    def _write(self) -> None:
        """Called after each step; the newest row is open, holding only the next observation."""

    @abc.abstractmethod
    def _write_last(self) -> None:
        """Called at the end of an episode; the final row is closed with zeros."""

    @staticmethod
    @abc.abstractmethod
    def _row_specs_from_signature(signature: Any) -> Dict[str, Any]:
        """Per-row specs {field: nest of TensorSpec} implied by a table signature."""

    def _fetch_row_specs(self) -> Optional[Dict[str, Any]]:
        info = server_info(self._client)
        check_tables(
            info,
            self._priority_fns,
            self._client.server_address,
            fix="pass priority_fns={table_name: None, ...} naming the tables to write to",
        )
        for table in self._priority_fns:
            if info[table].signature is not None:
                return self._row_specs_from_signature(info[table].signature)
        return None

    def _check(self, field: str, value: Any) -> None:
        """Raises a ValueError naming `field` if `value` does not match the table signature."""
        if self._row_specs is None or field not in self._row_specs:
            return
        spec = self._row_specs[field]
        try:
            tree.assert_same_structure(value, spec, check_types=False)
        except (ValueError, TypeError):
            raise ValueError(
                f"{field} has structure {_describe(value)} but the table signature expects {_describe(spec)}."
            ) from None
        problems = []
        for path, leaf_spec in tree.flatten_with_path(spec):
            leaf = np.asarray(_at_path(value, path))
            dtype = leaf_spec.dtype.as_numpy_dtype
            if leaf.dtype != dtype or not leaf_spec.shape.is_compatible_with(leaf.shape):
                name = field + "".join(f"[{p!r}]" for p in path)
                problems.append(
                    f"{name}: expected {np.dtype(dtype).name}{list(leaf_spec.shape)}, "
                    f"got {leaf.dtype.name}{list(leaf.shape)}"
                )
        if problems:
            raise ValueError(
                "step does not match the table signature: "
                + "; ".join(problems)
                + ". Cast the data to the spec's dtype/shape, or build the table signature from the "
                "environment that produces it (Adder.signature(make_environment_spec(env)))."
            )


class StepsAdder(ReverbAdder, abc.ABC):
    """A ReverbAdder whose items are Steps with a leading time axis (sequences, episodes)."""

    @staticmethod
    def signature(
        environment_spec: specs.EnvironmentSpec, extras_spec: Any = (), sequence_length: Optional[int] = None
    ) -> specs.Step:
        """The table signature: a Step of tf.TensorSpec with a leading time axis (None: any length)."""
        return step_signature(environment_spec, extras_spec, sequence_length)

    @staticmethod
    def _row_specs_from_signature(signature: Any) -> Dict[str, Any]:
        return step_row_specs(signature)


def step_signature(environment_spec: specs.EnvironmentSpec, extras_spec: Any, length: Optional[int]) -> specs.Step:
    step = specs.Step(
        environment_spec.observations,
        environment_spec.actions,
        environment_spec.rewards,
        environment_spec.discounts,
        specs.scalar_bool_spec(),
        extras_spec,
    )
    return specs.with_time_axis(specs.to_tensor_specs(step), length)


def step_row_specs(signature: Any) -> Dict[str, Any]:
    """Per-row specs of a Step signature with a time axis."""
    strip = lambda s: tf.TensorSpec(s.shape[1:], s.dtype, s.name)  # noqa: E731
    return {
        field: tree.map_structure(strip, getattr(signature, field))
        for field in ("observation", "action", "reward", "discount", "extras")
    }


def map_columns(fn: Callable[[Any], Any], columns: Any) -> Any:
    """tree.map_structure over history columns, short-cut for the common unnested column."""
    if isinstance(columns, (ColumnHistory, Column)):
        return fn(columns)
    return tree.map_structure(fn, columns)


def _has_extras(extras: Any) -> bool:
    if extras is None:
        return False
    try:
        return len(extras) > 0
    except TypeError:
        return True


def _at_path(nest: Any, path) -> Any:
    for key in path:
        nest = nest[key]
    return nest


def _describe(nest: Any) -> str:
    return repr(tree.map_structure(lambda _: "*", nest))
