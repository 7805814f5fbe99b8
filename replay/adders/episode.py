"""Whole episodes as one item each, as Acme's EpisodeAdder."""

import replay._quiet_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
from typing import Any, Callable, Optional

import numpy as np
import reverb
import tree

from replay import specs
from replay.adders import base

PaddingFn = Callable[[tuple, np.dtype], np.ndarray]


class EpisodeAdder(base.StepsAdder):
    """Writes each episode (T steps + the final observation) when it ends.

    With `padding_fn(shape, dtype)`, episodes are padded to `max_sequence_length` rows.
    """

    def __init__(
        self,
        client: reverb.Client,
        max_sequence_length: int,
        *,
        padding_fn: Optional[PaddingFn] = None,
        priority_fns: Optional[base.PriorityFnMapping] = None,
        max_in_flight_items: int = 1,
        validate_items: bool = True,
        timeout_ms: int = base.DEFAULT_TIMEOUT_MS,
    ):
        if not isinstance(max_sequence_length, (int, np.integer)) or max_sequence_length < 2:
            raise ValueError(
                f"max_sequence_length must be an integer >= 2 (got {max_sequence_length!r}): "
                "an episode of T steps needs T + 1 rows."
            )
        super().__init__(
            client,
            max_sequence_length=max_sequence_length,
            max_in_flight_items=max_in_flight_items,
            priority_fns=priority_fns,
            validate_items=validate_items,
            timeout_ms=timeout_ms,
        )
        self._padding_fn = padding_fn

    def add(self, action: Any, next_timestep, extras: Any = ()) -> None:
        if self._episode_open and self._writer.episode_steps >= self._max_sequence_length - 1:
            raise ValueError(
                f"episode longer than max_sequence_length - 1 = {self._max_sequence_length - 1} "
                "steps: raise max_sequence_length to the longest episode + 1."
            )
        super().add(action, next_timestep, extras)

    def _write(self) -> None:
        pass  # Episodes are written whole, at their end.

    def _write_last(self) -> None:
        history = self._writer.history
        if self._padding_fn is not None and self._writer.episode_steps < self._max_sequence_length:
            padding = tree.map_structure(lambda column: self._padding_fn(column[-1].shape, column[-1].dtype), history)
            padding["start_of_episode"] = np.zeros((), bool)
            while self._writer.episode_steps < self._max_sequence_length:
                self._writer.append(padding)
            history = self._writer.history
        self._insert(specs.Step(**tree.map_structure(lambda column: column[:], history)))
