"""Per-program runtime state reachable from node code: stop requests and stop notices."""

import threading
from typing import Callable, List, Optional

from absl import logging


class Runtime:
    """What a node's code can reach while its program runs: token, stop event, stop request."""

    def __init__(self, token: str, request_stop: Callable[[], None]):
        self.token = token
        self.stop_event = threading.Event()
        self._request_stop = request_stop
        self._handlers: List[Callable[[], None]] = []
        self._lock = threading.Lock()

    def request_stop(self) -> None:
        """Asks the launcher to stop the whole program."""
        self._request_stop()

    def notify_stop(self) -> None:
        """Marks the program as stopping and runs the registered stop handlers once."""
        with self._lock:
            if self.stop_event.is_set():
                return
            self.stop_event.set()
            handlers, self._handlers = self._handlers, []
        for handler in handlers:
            _run_handler(handler)

    def add_stop_handler(self, handler: Callable[[], None]) -> None:
        with self._lock:
            if not self.stop_event.is_set():
                self._handlers.append(handler)
                return
        _run_handler(handler)


def _run_handler(handler: Callable[[], None]) -> None:
    try:
        handler()
    except Exception:  # A faulty handler must not prevent the others from running.
        logging.exception('Stop handler %r raised.', handler)


_local = threading.local()
_process_runtime: Optional[Runtime] = None


def set_thread_runtime(runtime: Optional[Runtime]) -> None:
    """Binds `runtime` to the calling thread (threads launch types)."""
    _local.runtime = runtime


def set_process_runtime(runtime: Optional[Runtime]) -> None:
    """Makes `runtime` the fallback for threads that have none bound (e.g. user threads)."""
    global _process_runtime
    _process_runtime = runtime


def current() -> Runtime:
    """The runtime of the program the calling code belongs to."""
    runtime = getattr(_local, 'runtime', None) or _process_runtime
    if runtime is None:
        raise RuntimeError(
            'No launched program in this process: stop(), wait_for_stop(), stop_event() and '
            'register_stop_handler() work only inside nodes of a program started with launch().')
    return runtime


def current_or_none() -> Optional[Runtime]:
    return getattr(_local, 'runtime', None) or _process_runtime
