"""Parameter publication: a versioned variable server and a non-blocking client."""

import logging
import threading
from typing import Any, List, Optional, Sequence

from agents import core
from agents.core import Versioned


class VariableServer(core.VariableSource):
    """Holds the latest published parameters (numpy nests) with a version number.

    The learner calls `publish(params)`; actors call `get(known_version)`, which
    returns `(version, params)` when something newer than `known_version` exists
    and None otherwise, so polling costs no transfer when nothing changed.
    Public methods are meant to be served as RPCs (e.g. by a CourierNode).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._version = -1
        self._params: Any = None

    def publish(self, params: Any, version: Optional[int] = None) -> int:
        """Publishes `params`; returns their version (one more than the last unless given)."""
        with self._lock:
            new_version = self._version + 1 if version is None else int(version)
            if new_version <= self._version:
                raise ValueError(
                    f"Version {new_version} is not newer than the published version "
                    f"{self._version}; publish increasing versions or omit `version`."
                )
            self._version, self._params = new_version, params
            return new_version

    def get(self, known_version: int = -1) -> Optional[Versioned]:
        """Returns `(version, params)` if newer than `known_version`, else None."""
        with self._lock:
            if self._version <= known_version:
                return None
            return self._version, self._params

    def version(self) -> int:
        """The latest published version; -1 before the first publication."""
        with self._lock:
            return self._version

    def get_variables(self, names: Sequence[str] = ()) -> List[Any]:
        """Returns `[params]` (names are ignored: one parameter set is served)."""
        with self._lock:
            if self._version < 0:
                raise RuntimeError("No parameters published yet; call publish(params) first.")
            return [self._params]


class VariableClient:
    """Keeps a local copy of a VariableServer's parameters fresh.

    Every `update_period` calls to `update()` a fetch is requested from a
    background thread; `update()` itself only swaps in the result of a finished
    fetch, so an actor step never waits on the network. `update(wait=True)`
    fetches synchronously. `source` is a VariableServer or a client of one.

    `synchronous`: every `update_period`-th `update()` fetches in the caller's thread instead, so which
    parameters an actor uses at each step does not depend on thread timing (repeatable runs).
    `closes_source`: `close()` also closes `source` (a remote client this one owns), which ends a fetch in flight
    at once instead of when its call times out (a variable server that stopped first never answers it).
    """

    def __init__(
        self,
        source: core.ParameterSource,
        update_period: int = 1,
        synchronous: bool = False,
        closes_source: bool = False,
    ):
        if update_period < 1:
            raise ValueError(f"update_period must be >= 1, got {update_period}.")
        self._source = source
        self._update_period = update_period
        self._calls = 0
        self._version = -1
        self._params: Any = None
        self._lock = threading.Lock()
        self._fetched: Optional[Versioned] = None
        self._requested = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._closed = False
        self.num_fetches = 0
        self._failing = False
        self._synchronous = synchronous
        self._closes_source = closes_source
        self._thread: Optional[threading.Thread] = None
        if not synchronous:
            self._thread = threading.Thread(target=self._fetch_loop, name="variable-client", daemon=True)
            self._thread.start()

    @property
    def params(self) -> Any:
        """The newest parameters received (None before the first)."""
        return self._params

    @property
    def version(self) -> int:
        """The version of `params` (-1 before the first)."""
        return self._version

    def update(self, wait: bool = False) -> None:
        """Adopts finished fetches and requests a new one every `update_period` calls."""
        if wait:
            self._adopt(self._source.get(self._version))
            return
        if self._synchronous:
            self._calls += 1
            if self._calls >= self._update_period:
                self._calls = 0
                self._adopt(self._source.get(self._version))
            return
        with self._lock:
            fetched, self._fetched = self._fetched, None
        if fetched is not None:
            self._adopt(fetched)
        self._calls += 1
        if self._calls >= self._update_period and self._idle.is_set():
            self._calls = 0
            self._idle.clear()
            self._requested.set()

    def close(self) -> None:
        """Stops the background thread (and closes the source if it `closes_source`)."""
        self._closed = True
        self._requested.set()
        if self._closes_source:
            self._source.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _adopt(self, fetched: Optional[Versioned]) -> None:
        if fetched is not None and fetched[0] > self._version:
            self._version, self._params = fetched

    def _fetch_loop(self) -> None:
        while True:
            self._requested.wait()
            self._requested.clear()
            if self._closed:
                return
            try:
                fetched = self._source.get(self._version)
                self.num_fetches += 1
                if self._failing:
                    self._failing = False
                    logging.warning("Fetching parameters works again.")
            except Exception as error:  # pylint: disable=broad-except
                if self._closed:  # The fetch was ended by close(): nothing to report.
                    return
                # A remote source may be briefly unreachable (e.g. restarting): say so once, retry next period.
                if not self._failing:
                    self._failing = True
                    logging.warning(
                        "Fetching parameters failed (retrying every %d updates): %s", self._update_period, error
                    )
                fetched = None
            if fetched is not None:
                with self._lock:
                    self._fetched = fetched
            self._idle.set()
