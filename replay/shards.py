"""Replay split across servers (shards) with identical tables: one learner input over all of them, and priority
updates routed back to the shard that holds each item.

Reverb item keys are random 64-bit numbers chosen by each server, so a key does not say where it lives: the
interleaved input remembers which shard each recently sampled key came from, and the updater asks it.
"""

import collections
import concurrent.futures
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Protocol, Sequence

import numpy as np

from replay.priorities import DEFAULT_CLOSE_TIMEOUT_SECS

UNKNOWN_SHARD = -1
# Batches whose keys stay routable: a learner updates priorities right after the step that sampled them.
DEFAULT_REMEMBERED_BATCHES = 256


class InterleavedSamples:
    """Takes batches (`reverb.ReplaySample`s) from the shards' iterators in turn, and remembers which shard each
    key of the last `remembered_batches` batches came from (`shards_of`).

    Each shard keeps its own rate limiter, so the learner waits on a shard only when that shard has nothing to
    give; the iterators end (StopIteration) together when the program stops.
    """

    def __init__(self, iterators: Sequence[Iterator[Any]], remembered_batches: int = DEFAULT_REMEMBERED_BATCHES):
        if not iterators:
            raise ValueError("InterleavedSamples needs at least one shard's iterator.")
        if remembered_batches < 1:
            raise ValueError(f"remembered_batches must be >= 1 (got {remembered_batches}).")
        self._iterators = list(iterators)
        self._next_shard = 0
        self._remembered_batches = remembered_batches
        self._recent: Deque[List[int]] = collections.deque()  # Keys of the remembered batches, oldest first.
        self._owner: Dict[int, int] = {}  # key -> shard (UNKNOWN_SHARD if two shards sampled the same key).
        self._batches_holding: Dict[int, int] = {}  # key -> remembered batches that hold it.
        self.batches_per_shard = [0] * len(self._iterators)

    @property
    def num_shards(self) -> int:
        return len(self._iterators)

    def __iter__(self) -> "InterleavedSamples":
        return self

    def __next__(self) -> Any:
        shard = self._next_shard
        sample = next(self._iterators[shard])
        self._next_shard = (shard + 1) % len(self._iterators)
        self.batches_per_shard[shard] += 1
        keys = np.asarray(sample.info.key, np.uint64).ravel().tolist()
        for key in keys:
            # Two servers that drew the same random key: neither gets updates for it rather than the wrong one.
            self._owner[key] = shard if self._owner.get(key, shard) == shard else UNKNOWN_SHARD
            self._batches_holding[key] = self._batches_holding.get(key, 0) + 1
        self._recent.append(keys)
        if len(self._recent) > self._remembered_batches:
            for key in self._recent.popleft():
                held = self._batches_holding[key] - 1
                if held:
                    self._batches_holding[key] = held
                else:
                    del self._batches_holding[key], self._owner[key]
        return sample

    def shards_of(self, keys: Sequence[int]) -> np.ndarray:
        """The shard each key was sampled from; UNKNOWN_SHARD for keys not among the remembered batches."""
        return np.array(
            [self._owner.get(key, UNKNOWN_SHARD) for key in np.asarray(keys, np.uint64).ravel().tolist()], np.int64
        )


class PriorityUpdates(Protocol):
    """What a learner calls to send priorities (replay.PriorityUpdater)."""

    def update(self, keys: Sequence[int], priorities: Sequence[float]) -> None: ...

    def close(self, timeout: Optional[float] = ...) -> None: ...


class ShardedPriorityUpdater:
    """Sends each (key, priority) to the updater of the shard `shards_of` names for the key; keys of no known
    shard are dropped (counted in `dropped`): a priority never reaches a server that does not hold its item."""

    def __init__(self, updaters: Sequence[PriorityUpdates], shards_of: Callable[[Sequence[int]], np.ndarray]):
        self._updaters = list(updaters)
        self._shards_of = shards_of
        self.dropped = 0

    def update(self, keys: Sequence[int], priorities: Sequence[float]) -> None:
        keys = np.asarray(keys, np.uint64).ravel()
        priorities = np.asarray(priorities, np.float64).ravel()
        if keys.shape != priorities.shape:
            raise ValueError(f"keys and priorities differ in length: {keys.size} vs {priorities.size}.")
        shards = self._shards_of(keys)
        self.dropped += int(np.count_nonzero(shards == UNKNOWN_SHARD))
        for shard, updater in enumerate(self._updaters):
            mine = shards == shard
            if mine.any():
                updater.update(keys[mine], priorities[mine])

    def close(self, timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT_SECS) -> None:
        """Closes every shard's updater at once, all within `timeout`; raises the first failure after trying all."""
        # Together, not one after another: K shards whose servers stopped answering would otherwise hold the
        # learner's stop for K timeouts, past its termination notice.
        with concurrent.futures.ThreadPoolExecutor(len(self._updaters), "close_priority_updater") as pool:
            closing = [pool.submit(updater.close, timeout=timeout) for updater in self._updaters]
        errors = [future.exception() for future in closing if future.exception() is not None]
        if errors:
            raise errors[0]
