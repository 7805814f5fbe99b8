"""Reverb's C++ trajectory writer behind the part of `reverb.TrajectoryWriter`'s interface adders use.

`reverb.TrajectoryWriter.append` flattens the whole step with paths and maps every path to its column on each
call, and `history` unflattens every column into the full structure on each read: per step that costs about as
much Python time as the C++ writer spends on the data. An adder appends rows of a few known fields
({observation, action, ...}), so here each field keeps its column indices from its first append: an unnested
field is one column with no flattening at all, and `history` is built once per new field, not per read.
Columns, items, chunking, flushing and episodes are the C++ writer's, exactly as `reverb.TrajectoryWriter`
drives it (Reverb 0.14's trajectory_writer.py).
"""

import replay._quiet_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
import collections
import datetime
import re
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import reverb
import tree
from reverb import pybind


class ColumnWriter:
    """Appends rows {field: nest of arrays} and creates items from slices of their history.

    `history[field]` has the structure of the field's data with a `ColumnHistory` per leaf; indexing one gives a
    `Column` (int: one step, squeezed; slice or list: a time axis), and `create_item` takes any nest of Columns.
    """

    def __init__(self, client: reverb.Client, num_keep_alive_refs: int, validate_items: bool):
        options = pybind.AutoTunedChunkerOptions(num_keep_alive_refs, 1.0)
        # What client.trajectory_writer does before wrapping the C++ writer in reverb.TrajectoryWriter.
        self._writer = client._client.NewTrajectoryWriter(options, validate_items)
        self._num_keep_alive_refs = num_keep_alive_refs
        self._fields: Dict[str, Tuple[Any, List[int]]] = {}  # field -> (structure or None if unnested, columns)
        self._columns: List[ColumnHistory] = []
        self._history: Optional[Dict[str, Any]] = None
        self._step_open = False

    @property
    def history(self) -> Dict[str, Any]:
        if self._history is None:
            self._history = {
                field: self._columns[columns[0]]
                if structure is None
                else tree.unflatten_as(structure, [self._columns[c] for c in columns])
                for field, (structure, columns) in self._fields.items()
            }
        return self._history

    @property
    def episode_steps(self) -> int:
        """Rows closed since the episode began (an open row does not count)."""
        return self._writer.episode_steps

    def append(self, row: Dict[str, Any], partial_step: bool = False) -> None:
        """Adds `row`'s data to the newest row (opened by the previous call if that was partial), or to a new one.
        The row stays open for more fields while `partial_step` is set."""
        flat: List[Any] = [None] * len(self._columns)
        for field, value in row.items():
            layout = self._fields.get(field)
            if layout is None:
                layout = self._add_field(field, value)
                flat.extend([None] * (len(self._columns) - len(flat)))
            structure, columns = layout
            if structure is None:
                flat[columns[0]] = value
            else:
                try:
                    tree.assert_same_structure(value, structure, check_types=False)
                except (ValueError, TypeError):
                    raise ValueError(
                        f"{field} has structure {_describe(value)} but earlier steps had {_describe(structure)}: "
                        "every step of an episode must have the same structure."
                    ) from None
                for column, leaf in zip(columns, tree.flatten(value)):
                    flat[column] = leaf
        try:
            references = self._writer.AppendPartial(flat) if partial_step else self._writer.Append(flat)
        except ValueError as error:
            column = re.findall(r" for column (\d+)", str(error))
            if len(column) != 1:
                raise
            # The C++ writer names the column by index; the path says which field it is.
            path = self._columns[int(column[0])].path
            raise ValueError(str(error).replace(f"for column {column[0]}", f"for column {path}")) from error
        if self._step_open:
            for column, reference in zip(self._columns, references):
                if reference is not None:
                    column.set_last(reference)
        else:
            for column, reference in zip(self._columns, references):
                column.append(reference)
        self._step_open = partial_step

    def create_item(self, table: str, priority: float, trajectory: Any) -> None:
        """Queues an item referencing `trajectory` (a nest of Columns) for `table`; `flush` waits for it."""
        columns = tree.flatten(trajectory)
        self._writer.CreateItem(table, priority, [c.references for c in columns], [c.squeezed for c in columns])

    def flush(self, block_until_num_items: int = 0, timeout_ms: Optional[int] = None) -> None:
        """Blocks until at most `block_until_num_items` items are unconfirmed by the server."""
        try:
            self._writer.Flush(block_until_num_items, -1 if timeout_ms is None else timeout_ms)
        except RuntimeError as error:
            _raise_deadline_exceeded(error, "flush", timeout_ms)
            raise

    def end_episode(self, clear_buffers: bool = True, timeout_ms: Optional[int] = None) -> None:
        """Flushes every item and starts a new episode; with `clear_buffers` the history starts empty."""
        try:
            self._writer.EndEpisode(clear_buffers, timeout_ms)
        except RuntimeError as error:
            _raise_deadline_exceeded(error, "end_episode", timeout_ms)
            raise
        if clear_buffers:
            for column in self._columns:
                column.clear()
            self._step_open = False  # A row left open (an episode cut short by reset()) is dropped with the rest.

    def close(self) -> None:
        self._writer.Close()

    def __del__(self):
        if getattr(self, "_writer", None) is not None:
            self._writer.Close()

    def _add_field(self, field: str, value: Any) -> Tuple[Any, List[int]]:
        """New columns for `field`, padded with missing steps so that every column indexes the same rows."""
        rows = len(self._columns[0]) if self._columns else 0
        if tree.is_nested(value):
            structure = tree.map_structure(lambda _: None, value)
            paths = [(field, *path) for path, _ in tree.flatten_with_path(value)]
        else:
            structure, paths = None, [(field,)]
        columns = []
        for path in paths:
            columns.append(len(self._columns))
            self._columns.append(ColumnHistory(path, self._num_keep_alive_refs, rows))
        self._fields[field] = (structure, columns)
        self._history = None
        return self._fields[field]


class ColumnHistory:
    """References to the newest `num_keep_alive_refs` steps of one column, indexed as if none had expired."""

    def __init__(self, path: Tuple[Any, ...], num_keep_alive_refs: int, rows: int):
        self.path = path
        self._references = collections.deque([None] * min(rows, num_keep_alive_refs), maxlen=num_keep_alive_refs)
        self._length = rows

    def append(self, reference: Optional[pybind.WeakCellRef]) -> None:
        self._references.append(reference)
        self._length += 1

    def set_last(self, reference: pybind.WeakCellRef) -> None:
        self._references[-1] = reference

    def clear(self) -> None:
        self._references.clear()
        self._length = 0

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index) -> "Column":
        if isinstance(index, int):
            return Column([self._reference(index)], squeezed=True)
        if isinstance(index, slice):
            return Column([self._reference(i) for i in range(self._length)[index]])
        if isinstance(index, list):
            return Column([self._reference(i) for i in index])
        raise TypeError(f"column indices must be integers, slices or lists, not {type(index).__name__}")

    def _reference(self, index: int) -> pybind.WeakCellRef:
        if index >= 0:
            index -= self._length
        if not -self._length <= index < 0:
            raise IndexError(f"step {index} of column {self.path} is out of range ({self._length} steps)")
        reference = self._references[index] if -index <= len(self._references) else None
        if reference is None:
            raise ValueError(
                f"step {index} of column {self.path} was never written or fell out of the writer's keep-alive "
                "window (num_keep_alive_refs)."
            )
        return reference


class Column:
    """Data references for one leaf of an item: one step (squeezed) or a time axis."""

    __slots__ = ("references", "squeezed")

    def __init__(self, references: List[pybind.WeakCellRef], *, squeezed: bool = False):
        self.references = references
        self.squeezed = squeezed

    @property
    def shape(self) -> Tuple[Optional[int], ...]:
        step = tuple(self.references[0].shape)
        return step if self.squeezed else (len(self.references), *step)

    @property
    def dtype(self) -> np.dtype:
        return self.references[0].dtype

    def numpy(self) -> np.ndarray:
        if any(reference.expired for reference in self.references):
            raise RuntimeError("cannot read a column whose data references have expired.")
        if self.squeezed:
            return self.references[0].numpy()
        return np.stack([reference.numpy() for reference in self.references])


def _raise_deadline_exceeded(error: RuntimeError, call: str, timeout_ms: Optional[int]) -> None:
    """Raises Reverb's DeadlineExceededError if `error` is the C++ writer's timeout, as reverb.TrajectoryWriter
    does."""
    if "Timeout exceeded" in str(error) and timeout_ms is not None:
        raise reverb.errors.DeadlineExceededError(
            f"{call} did not complete within {datetime.timedelta(milliseconds=timeout_ms)}"
        ) from error


def _describe(nest: Any) -> str:
    return repr(tree.map_structure(lambda _: "*", nest))
