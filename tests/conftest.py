"""Shared test helpers, and the suite's guard against leaked threads and processes."""

import os
import sys
import threading
import time
import traceback
from typing import Callable, List

import psutil
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# How long a test's threads and child processes get to end after the test before they count as leaked.
_LEAK_GRACE_SECONDS = 15.0


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Polls `predicate` until it holds; fails naming `what` once `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.02)


def usage_error(capsys, argv) -> str:
    """The one `error:` line `python -m agents.run argv` refuses with (exit status 2, no traceback)."""
    from agents import run  # pylint: disable=import-outside-toplevel

    with pytest.raises(SystemExit) as exit_info:
        run.main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.fixture(scope="module")
def server():
    """A Reverb server with two queue tables, "priority_table" (the adders' default) and "other"."""
    import replay  # pylint: disable=import-outside-toplevel  # Here: tests that need no TensorFlow skip it.

    with replay.ReplayServer([replay.tables.queue("priority_table", 1000), replay.tables.queue("other", 1000)]) as s:
        yield s


@pytest.fixture
def client(server):
    """A client of `server`; both tables are emptied after the test."""
    c = server.client()
    yield c
    for table in ("priority_table", "other"):
        c.reset(table)


def _living_children() -> List[psutil.Process]:
    children = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                children.append(child)
        except psutil.NoSuchProcess:
            pass
    return children


@pytest.fixture(autouse=True)
def no_leaked_threads_or_processes(request):
    """Fails a test that leaves a thread or child process running after it ends."""
    threads_before = set(threading.enumerate())
    children_before = {p.pid for p in _living_children()}
    yield
    deadline = time.monotonic() + _LEAK_GRACE_SECONDS
    threads = [t for t in threading.enumerate() if t not in threads_before]
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    leaked = [t for t in threads if t.is_alive()]
    leaked_threads = [t.name for t in leaked]
    leaked_children = [p for p in _living_children() if p.pid not in children_before]
    _, alive = psutil.wait_procs(leaked_children, timeout=max(0.0, deadline - time.monotonic()))
    if leaked_threads or alive:
        for process in alive:
            process.kill()  # So one leak does not also fail every later test.
        pytest.fail(
            f"{request.node.nodeid} left running: threads {leaked_threads}, "
            f"processes {[(p.pid, _cmdline(p)) for p in alive]}\n{_stacks(leaked)}",
            pytrace=False,
        )


def _stacks(threads: List[threading.Thread]) -> str:
    """Where each thread is now, innermost call last."""
    frames = sys._current_frames()
    return "\n".join(
        f"--- {thread.name}\n" + "".join(traceback.format_stack(frames[thread.ident]))
        for thread in threads
        if thread.ident in frames
    )


def _cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())[:120]
    except psutil.Error:
        return "?"
