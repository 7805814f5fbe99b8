"""Fixed-length (possibly overlapping) sequences of Steps, as Acme's SequenceAdder."""

import replay._quiet_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
import enum
from typing import Optional

import numpy as np
import reverb
import tree

from replay import specs
from replay.adders import base


class EndBehavior(enum.Enum):
    """What happens to the last sequence of an episode (sequence_length=3, period=2, 6 steps):

    WRITE     writes the final sequence_length steps:          4 5 6
    CONTINUE  runs into the next episode's first step:         5 6 F
    ZERO_PAD  pads with zero steps up to the next write point: 5 6 0
    TRUNCATE  writes the shorter sequence up to the end:       5 6
    """

    WRITE = "write_buffer"
    CONTINUE = "continue_to_next_episode"
    ZERO_PAD = "zero_pad_til_next_write"
    TRUNCATE = "write_truncated_buffer"


class SequenceAdder(base.StepsAdder):
    """Writes a `sequence_length`-step sequence every `period` steps."""

    def __init__(
        self,
        client: reverb.Client,
        sequence_length: int,
        period: int,
        *,
        end_of_episode_behavior: Optional[EndBehavior] = None,
        pad_end_of_episode: Optional[bool] = None,
        break_end_of_episode: Optional[bool] = None,
        priority_fns: Optional[base.PriorityFnMapping] = None,
        max_in_flight_items: int = 4,
        validate_items: bool = True,
        timeout_ms: int = base.DEFAULT_TIMEOUT_MS,
    ):
        for name, value in (("sequence_length", sequence_length), ("period", period)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1 (got {value!r}).")
        super().__init__(
            client,
            max_sequence_length=sequence_length + 1,
            max_in_flight_items=max_in_flight_items,
            priority_fns=priority_fns,
            validate_items=validate_items,
            timeout_ms=timeout_ms,
        )
        self._sequence_length = int(sequence_length)
        self._period = int(period)
        self._end_behavior = _end_behavior(end_of_episode_behavior, pad_end_of_episode, break_end_of_episode)

    def _end_episode(self, timeout_ms: Optional[int]) -> None:
        if self._end_behavior is EndBehavior.CONTINUE:
            return  # Sequences run on into the next episode.
        super()._end_episode(timeout_ms)

    def _write(self) -> None:
        self._maybe_insert(self._sequence_length)

    def _write_last(self) -> None:
        steps = self._writer.episode_steps
        until_next_write = self._sequence_length - steps
        if until_next_write < 0:
            until_next_write %= self._period
        behavior = self._end_behavior
        if behavior is EndBehavior.CONTINUE:
            self._maybe_insert(self._sequence_length, end_of_episode=True)
        elif behavior is EndBehavior.WRITE:
            if steps >= self._sequence_length:  # Shorter episodes are dropped.
                self._maybe_insert(self._sequence_length, end_of_episode=True, force=True)
        elif behavior is EndBehavior.TRUNCATE:
            self._maybe_insert(self._sequence_length - until_next_write, end_of_episode=True, force=True)
        else:  # ZERO_PAD
            zeros = tree.map_structure(lambda column: np.zeros_like(column[-2].numpy()), self._writer.history)
            for _ in range(until_next_write):
                self._writer.append(zeros)
            self._maybe_insert(self._sequence_length, end_of_episode=True, force=True)

    def _maybe_insert(self, length: int, *, end_of_episode: bool = False, force: bool = False) -> None:
        steps = self._writer.episode_steps
        first_write = steps == length
        period_reached = steps > self._sequence_length and (steps - self._sequence_length) % self._period == 0
        if not (first_write or period_reached or force):
            return
        # Mid-episode the newest row is still open, so the sequence ends one row before it.
        window = slice(-length, None) if end_of_episode else slice(-length - 1, -1)
        self._insert(specs.Step(**tree.map_structure(lambda column: column[window], self._writer.history)))


def _end_behavior(behavior: Optional[EndBehavior], pad: Optional[bool], break_: Optional[bool]) -> EndBehavior:
    """Resolves the end behaviour, accepting Acme's deprecated pad/break flags."""
    if behavior is not None:
        if pad is not None or break_ is not None:
            raise ValueError(
                "pass either end_of_episode_behavior or the deprecated pad_end_of_episode/"
                "break_end_of_episode, not both."
            )
        if not isinstance(behavior, EndBehavior):
            raise ValueError(f"end_of_episode_behavior must be an EndBehavior, got {behavior!r}.")
        return behavior
    pad = True if pad is None else pad
    break_ = True if break_ is None else break_
    if not break_:
        if pad:
            raise ValueError(
                "pad_end_of_episode=True and break_end_of_episode=False are incompatible: a sequence "
                "that runs into the next episode has nothing to pad. Use EndBehavior.CONTINUE."
            )
        return EndBehavior.CONTINUE
    return EndBehavior.ZERO_PAD if pad else EndBehavior.TRUNCATE
