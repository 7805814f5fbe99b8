"""A hierarchical step counter."""

import logging
import threading
import time
from typing import Dict, Mapping, Optional, Union

from agents import core

Number = Union[int, float]


class Counter(core.Saveable):
    """Counts named quantities, optionally forwarding them to a parent counter.

    A child with prefix "actor" reports `steps` to its parent as `actor_steps`.
    Pushes to the parent happen at most every `time_delta` seconds; the parent
    may be a local Counter or a remote client of one. A push that does not reach a
    remote parent (stopped, or restarting) keeps its counts for the next push.
    """

    def __init__(
        self,
        parent: Optional["Counter"] = None,
        prefix: str = "",
        time_delta: float = 1.0,
        return_only_prefixed: bool = False,
    ):
        self._parent = parent
        self._prefix = prefix
        self._time_delta = time_delta
        self._return_only_prefixed = return_only_prefixed
        self._counts: Dict[str, Number] = {}
        self._unpushed: Dict[str, Number] = {}
        self._cache: Dict[str, Number] = {}
        self._last_push = -float("inf")
        self._failed_pushes = 0  # In a row.
        self._lock = threading.Lock()

    def increment(self, **counts: Number) -> Dict[str, Number]:
        """Adds to the named counts and returns all counts."""
        with self._lock:
            for key, value in counts.items():
                self._counts[key] = self._counts.get(key, 0) + value
                self._unpushed[key] = self._unpushed.get(key, 0) + value
        return self.get_counts()

    def get_counts(self) -> Dict[str, Number]:
        """Returns this counter's prefixed counts, overridden by the parent's totals."""
        now = time.monotonic()
        if self._parent is not None and now - self._last_push >= self._time_delta:
            with self._lock:
                unpushed, self._unpushed = self._unpushed, {}
            prefixed = {self._prefixed(k): v for k, v in unpushed.items()}
            self._last_push = now
            try:
                self._cache = dict(self._parent.increment(**prefixed))
            except (ConnectionError, TimeoutError) as error:  # What a call to a remote parent that is down raises.
                with self._lock:
                    for key, value in unpushed.items():
                        self._unpushed[key] = self._unpushed.get(key, 0) + value
                self._failed_pushes += 1
                # One failed push is usually the program stopping (the counter node goes first): only a second
                # in a row is worth a warning.
                if self._failed_pushes == 2:
                    logging.warning("Counts not pushed to the parent counter (kept for the next push): %s", error)
            else:
                if self._failed_pushes >= 2:
                    logging.warning("Counts reach the parent counter again.")
                self._failed_pushes = 0
        with self._lock:
            counts = {self._prefixed(k): v for k, v in self._counts.items()}
        counts.update(self._cache)  # The parent's totals include ours.
        if self._return_only_prefixed and self._prefix:
            counts = {k: v for k, v in counts.items() if k.startswith(self._prefix + "_")}
        return counts

    def save(self) -> Mapping[str, Mapping[str, Number]]:
        with self._lock:
            return {"counts": dict(self._counts), "unpushed": dict(self._unpushed)}

    def restore(self, state: Mapping[str, Mapping[str, Number]]) -> None:
        with self._lock:
            self._counts = dict(state["counts"])
            self._unpushed = dict(state.get("unpushed", {}))

    def _prefixed(self, key: str) -> str:
        return f"{self._prefix}_{key}" if self._prefix else key
