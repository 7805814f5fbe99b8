"""Controller: supervises a launched program's workers (restarts, stop notice, kill)."""

import atexit
import concurrent.futures.thread  # noqa: F401  # See _register_exit_wait.
import os
import signal
import sys
import threading
import time
import traceback
from typing import Callable, Dict, List, Optional, Sequence

from launch import _nodes

_POLL_SECS = 0.05


def _register_exit_wait(wait: Callable[[], None]) -> None:
    """Runs `wait` at interpreter exit while the launcher can still serve its nodes, as Launchpad's launchers do.

    An `atexit` function runs too late: by then concurrent.futures refuses new work ("cannot schedule new futures
    after interpreter shutdown"), so every gRPC server of the launching process (its control server, and under
    local_mt every CourierNode) rejects calls, and a node's lp.stop() never reaches the launcher. Exit functions
    registered with threading run before that, newest first; concurrent.futures.thread registers its own when it
    is imported (lazily, by the first ThreadPoolExecutor), which is why this module imports it first.
    """
    register = getattr(threading, "_register_atexit", None)  # Python 3.9+; private but stable since.
    if register is None:
        atexit.register(wait)
    else:
        register(wait)


class LaunchError(ValueError):
    """The program cannot be launched as asked (e.g. no Ray node has what a group requests); nothing was started."""


class NodeError(RuntimeError):
    """A node of the program failed (raised, or its process exited abnormally)."""

    def __init__(self, node_name: str, detail: str):
        super().__init__(f"Node {node_name!r} failed; the program was stopped.\n{detail}".rstrip())
        self.node_name = node_name
        self.detail = detail


class Worker:
    """One running node: a thread or a process. Subclasses implement the hooks."""

    def __init__(self, node: _nodes.Node):
        self.node = node
        self.restarts = 0

    def start(self) -> None:
        raise NotImplementedError

    @property
    def pid(self) -> Optional[int]:
        """The OS process running the node now (a new one after a restart); None before it starts."""
        return os.getpid()  # Threads launch types: the launching process.

    def poll(self) -> Optional[str]:
        """None while running; '' once ended cleanly; the failure detail once failed."""
        raise NotImplementedError

    def notify_stop(self) -> None:
        raise NotImplementedError

    def kill(self) -> bool:
        """Ends the worker now; False if it can only be abandoned (a thread)."""
        raise NotImplementedError


class Controller:
    """Returned by launch(): `wait()` until the program ends, `stop()` to end it."""

    def __init__(
        self,
        name: str,
        workers: Sequence[Worker],
        termination_notice_secs: float,
        on_stop: Callable[[], None],
        on_end: Callable[[], None] = lambda: None,
    ):
        self.name = name
        self._workers = list(workers)
        self._notice_secs = termination_notice_secs
        self._on_stop = on_stop
        self._on_end = on_end
        # Plain flags, not locks: stop() and kill() are called from signal handlers too.
        self._stop_requested = False
        self._kill_requested = False
        self._failure: Optional[NodeError] = None
        self._failure_raised = False
        self._done = threading.Event()
        self._started = threading.Event()
        self._start_error: Optional[BaseException] = None
        self._previous_handlers = {}
        # Processes are spawned from this long-lived thread: a child's parent-death signal fires
        # when the thread that spawned it ends.
        self._thread = threading.Thread(target=self._supervise, name=f"launch:{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            self._done.wait()
            raise self._start_error

    def stop(self) -> None:
        """Asks every node to stop; they get the termination notice, then are killed."""
        self._stop_requested = True

    def kill(self) -> None:
        """Kills every node now."""
        self._stop_requested = self._kill_requested = True

    def stop_and_wait(self) -> None:
        """Stops the program and waits for it; a node failure still raises NodeError."""
        self.stop()
        self.wait()

    def done(self) -> bool:
        return self._done.is_set()

    def node_pids(self) -> Dict[str, Optional[int]]:
        """{node name: pid of the process running it now}; a restarted node has a new pid (local_mp), so callers
        can find and signal one node."""
        return {worker.node.name: worker.pid for worker in self._workers}

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Blocks until the program ends: True then, False if `timeout` passed first.

        Raises NodeError if a node failed (after the rest of the program stopped).
        """
        ended = self._done.wait(timeout)
        if ended:
            self._restore_signal_handlers()
            if self._failure is not None:
                self._failure_raised = True
                raise self._failure
        return ended

    def handle_signals_and_exit(self) -> None:
        """Ctrl-C / SIGTERM stop the program (twice: kill it); waits for it at interpreter exit."""
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous_handlers[signum] = signal.signal(signum, self._on_signal)
        _register_exit_wait(self._wait_at_exit)

    def _on_signal(self, signum, frame) -> None:
        if self.done():
            previous = self._previous_handlers.get(signum)
            if callable(previous):
                previous(signum, frame)
            return
        if self._stop_requested:
            print(f"[launch] Killing program {self.name!r}.", file=sys.stderr, flush=True)
            self.kill()
        else:
            print(
                f"[launch] Stopping program {self.name!r} (nodes get {self._notice_secs:g}s; "
                "press Ctrl-C again to kill them now).",
                file=sys.stderr,
                flush=True,
            )
            self.stop()

    def _restore_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous_handlers = {}

    def _wait_at_exit(self) -> None:
        if self._failure_raised:
            return  # The launching code saw the failure and decided what to do.
        try:
            self.wait()
        except NodeError:  # Already printed when it happened.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)

    def _supervise(self) -> None:
        active: List[Worker] = []
        try:
            for worker in self._workers:
                worker.start()
                active.append(worker)
        except BaseException as e:
            self._start_error = e
            self._stop_requested = self._kill_requested = True
        self._started.set()
        try:
            self._watch(active)
        except BaseException:  # A launcher bug must neither leave nodes running nor hang wait().
            self._failure = NodeError("launcher", traceback.format_exc())
            print(f"[launch] {self._failure}", file=sys.stderr, flush=True)
            for worker in active:
                try:
                    worker.kill()
                except OSError:  # Signalling or reaping a process; the others are still killed.
                    pass
        finally:
            self._on_end()
            self._done.set()

    def _watch(self, active: List[Worker]) -> None:
        stopping_since: Optional[float] = None
        killed = False
        while active:
            time.sleep(_POLL_SECS)
            if self._stop_requested and stopping_since is None:
                stopping_since = time.monotonic()
                self._notify_stop(active)
            still_active = []
            for worker in active:
                outcome = worker.poll()
                if outcome is None:
                    still_active.append(worker)
                elif outcome and stopping_since is None:
                    if self._restart(worker, outcome):
                        still_active.append(worker)
                    else:
                        self._failure = NodeError(worker.node.name, outcome)
                        print(f"[launch] {self._failure}", file=sys.stderr, flush=True)
                        self._stop_requested = True
            active[:] = still_active
            if (
                active
                and stopping_since is not None
                and not killed
                and (self._kill_requested or time.monotonic() - stopping_since >= self._notice_secs)
            ):
                killed = True
                if not self._kill_requested:
                    print(
                        f"[launch] Nodes that did not stop within {self._notice_secs:g}s: "
                        f"{[w.node.name for w in active]}; killing them.",
                        file=sys.stderr,
                        flush=True,
                    )
                active[:] = [w for w in active if not w.kill()]
                if active:
                    print(
                        f"[launch] Threads that cannot be killed were abandoned: {[w.node.name for w in active]}",
                        file=sys.stderr,
                        flush=True,
                    )
                    active[:] = []
        if stopping_since is None:
            self._on_stop()

    def _restart(self, worker: Worker, outcome: str) -> bool:
        """Starts a failed worker again if its restart budget allows; True if it runs again."""
        if worker.restarts >= worker.node.max_restarts:
            return False
        worker.restarts += 1
        print(
            f"[launch] Node {worker.node.name!r} failed; restarting it "
            f"({worker.restarts}/{worker.node.max_restarts}).\n{outcome}",
            file=sys.stderr,
            flush=True,
        )
        worker.start()
        return True

    def _notify_stop(self, workers: Sequence[Worker]) -> None:
        self._on_stop()
        for worker in workers:
            worker.notify_stop()
