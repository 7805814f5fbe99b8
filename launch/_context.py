"""Per-program runtime state reachable from node code: stop requests and stop notices."""

import functools
import threading
import time
from typing import Callable, List, Optional

from absl import logging


class Runtime:
    """What a node's code can reach while its program runs: token, stop event, stop request."""

    def __init__(
        self,
        token: str,
        request_stop: Callable[[], None],
        lookup_address: Optional[Callable[[str], Optional[str]]] = None,
    ):
        """`lookup_address(node name)`: where a node serves now, for launch types whose nodes choose their
        addresses as they start (ray; None until the node has started); without it, node addresses are fixed at
        launch."""
        self.token = token
        self._lookup_address = lookup_address
        self.stop_event = threading.Event()
        self._request_stop = request_stop
        self._handlers: List[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._running_clients = 0  # Node threads of this process other than replay servers.
        self._clients_changed = threading.Condition(self._lock)

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

    def address_source(self, node_name: str) -> Optional[Callable[[], Optional[str]]]:
        """What clients of `node_name` ask for its current address; None where addresses are fixed at launch."""
        if self._lookup_address is None:
            return None
        return functools.partial(self._lookup_address, node_name)

    def wait_for_address(self, node_name: str, timeout: float) -> str:
        """Where `node_name` serves, once it has started (ConnectionError naming it after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            address = self._lookup_address(node_name)
            if address is not None:
                return address
            if time.monotonic() > deadline:
                raise ConnectionError(f"Node {node_name!r} did not start serving within {timeout:g}s; check its log.")
            time.sleep(0.1)

    def client_started(self) -> None:
        with self._lock:
            self._running_clients += 1

    def client_ended(self) -> None:
        with self._lock:
            self._running_clients -= 1
            self._clients_changed.notify_all()

    def wait_for_clients(self, timeout: float) -> bool:
        """Waits until the other node threads of this process have ended; False at the timeout.

        A Reverb server serves its own process's samplers without gRPC, and such a sampler waiting on a table
        never returns once the server has stopped (even with a rate-limiter timeout): replay nodes outlive their
        in-process clients for that reason.
        """
        with self._lock:
            return self._clients_changed.wait_for(lambda: self._running_clients == 0, timeout)

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
        logging.exception("Stop handler %r raised.", handler)


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
    runtime = getattr(_local, "runtime", None) or _process_runtime
    if runtime is None:
        raise RuntimeError(
            "No launched program in this process: stop(), wait_for_stop(), stop_event() and "
            "register_stop_handler() work only inside nodes of a program started with launch()."
        )
    return runtime


def current_or_none() -> Optional[Runtime]:
    return getattr(_local, "runtime", None) or _process_runtime
