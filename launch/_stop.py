"""Launchpad's stop API: stop, wait_for_stop, stop_event, register_stop_handler."""

import threading
from typing import Callable, Optional

from launch import _context


def stop() -> None:
    """Requests the whole program (every node) to stop."""
    _context.current().request_stop()


def wait_for_stop(timeout: Optional[float] = None) -> bool:
    """Blocks until the program is asked to stop or `timeout` seconds pass; True if stopping."""
    return _context.current().stop_event.wait(timeout)


def stop_event() -> threading.Event:
    """An event that is set when the program is asked to stop."""
    return _context.current().stop_event


def register_stop_handler(handler: Callable[[], None]) -> None:
    """Calls `handler()` once when the program is asked to stop (at once if it already is)."""
    _context.current().add_stop_handler(handler)
