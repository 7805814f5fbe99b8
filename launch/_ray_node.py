"""A node as a Ray actor: the plain class that the ray launch type wraps with `ray.remote(**options)`.

Ray runs `__init__` again, with the same arguments, in a new process each time it restarts the actor, so a
restarted node starts over there: new port (its old one if it is on the same machine and free), published anew.
"""

import os
import sys
import threading
import traceback
import uuid
from typing import Any, Dict, List

import cloudpickle

from launch import _context, _control, _courier, _flags, _ports

# Output lines Ray's worker writes to tell its log monitor which actor a log file belongs to; not node output.
_RAY_MARKERS = (b":actor_name:", b":task_name:", b":job_id:")


class NodeActor:
    """Runs one node of a launched program in a thread, from the first wait() until it ends."""

    def __init__(
        self, job: bytes, node_name: str, token: str, control_address: str, argv: List[str], setup: Dict[str, Any]
    ):
        """`setup`: "paths", the launcher's import paths (used where they exist), and "environ", variables that
        must be set before the node's code imports anything."""
        import ray  # Only in the actor's process: `import launch` does not need Ray.

        self._name = node_name
        os.environ.update(setup["environ"])
        sys.path[:0] = [path for path in setup["paths"] if path not in sys.path and os.path.isdir(path)]
        control = _courier.CourierClient(control_address, label="launcher", token=token, connect_timeout=10)
        self._output = _OutputForwarder(node_name, control)
        _flags.parse_known_and_log(argv)  # The launcher's absl flags, those known here, as under local_mp.
        runtime = _context.Runtime(
            token,
            request_stop=lambda: _control.request_stop(control_address, token, runtime),
            lookup_address=control.lookup,
        )
        self._runtime = runtime
        _context.set_process_runtime(runtime)
        program = cloudpickle.loads(job)
        node = next(n for n in program.get_all_nodes() if n.name == node_name)
        served = node.serving_nodes()
        # Peers reach the node at the IP of the machine Ray placed it on.
        _ports.assign_ports(served, ray.util.get_node_ip_address(), {n.name: control.lookup(n.name) for n in served})
        control.publish(node_name, uuid.uuid4().hex, os.getpid(), {n.name: n.address for n in served})
        self._error = ""
        # Started by the first wait(): Ray labels the process's output with this actor's repr only once
        # construction is over, and output before that would not carry the node's name.
        self._thread = threading.Thread(target=self._run, args=(node,), name=node_name, daemon=True)
        self._start_lock = threading.Lock()

    def __repr__(self) -> str:
        return self._name  # How Ray names the actor in its logs and errors.

    def _run(self, node) -> None:
        try:
            node.run()
        except BaseException:  # Returned by wait(): the launcher reports it, restarts or stops the program.
            self._error = traceback.format_exc()
            sys.stderr.write(self._error)

    def wait(self) -> str:
        """Runs the node (unless it runs already) and returns once it has ended: '' if it returned, its
        traceback if it raised."""
        with self._start_lock:
            if self._thread.ident is None:
                _undo_worker_niceness()
                self._thread.start()
        self._thread.join()
        self._output.flush(_FLUSH_TIMEOUT_SECS)  # The node's last lines are shown before its program ends.
        return self._error

    def notify_stop(self) -> None:
        # The stop handlers may take a while; this call returns at once.
        threading.Thread(target=self._runtime.notify_stop, daemon=True).start()


class _OutputForwarder:
    """Sends the lines this process writes to stdout/stderr to the launcher, which shows them prefixed with the
    node's name and keeps the node's log file, as under local_mp. They still reach Ray's own worker log, too.

    Ray's own forwarding to the driver is not used: it is asynchronous, so the output of a node that ends just
    before its program could be lost, and it labels lines only after the actor is constructed.
    """

    def __init__(self, node_name: str, control: _courier.CourierClient):
        self._node_name = node_name
        self._control = control
        self._flushed = {stream: threading.Event() for stream in (1, 2)}
        sys.stdout.flush()
        sys.stderr.flush()
        for stream in (1, 2):
            read, write = os.pipe()
            original = os.dup(stream)  # Where Ray keeps the worker's output.
            os.dup2(write, stream)
            os.close(write)
            threading.Thread(
                target=self._forward, args=(stream, read, original), daemon=True, name=f"output:{stream}"
            ).start()
        sys.stdout.reconfigure(line_buffering=True)

    def _forward(self, stream: int, read: int, original: int) -> None:
        pending = b""
        while True:
            chunk = os.read(read, 1 << 16)
            if not chunk:
                return
            *lines, pending = (pending + chunk).split(b"\n")
            flushed = _FLUSH_MARK in lines
            lines = [line + b"\n" for line in lines if line != _FLUSH_MARK]
            _write_all(original, b"".join(lines))
            node_lines = [line for line in lines if not line.startswith(_RAY_MARKERS)]
            if node_lines:
                try:
                    self._control.output(self._node_name, stream, node_lines)
                except (OSError, _courier.RemoteError):  # The launcher is gone: Ray's log still has them.
                    pass
            if flushed:
                self._flushed[stream].set()

    def flush(self, timeout: float) -> None:
        """Returns once everything written so far has reached the launcher (or after `timeout` seconds)."""
        sys.stdout.flush()
        sys.stderr.flush()
        for stream, event in self._flushed.items():
            event.clear()
            _write_all(stream, _FLUSH_MARK + b"\n")
        for event in self._flushed.values():
            event.wait(timeout)


# A line written through the pipes to learn when the lines before it have been forwarded.
_FLUSH_MARK = b"\x00encore-output-flushed"
_FLUSH_TIMEOUT_SECS = 10.0


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _undo_worker_niceness() -> None:
    """Ray runs its workers at niceness 15 (RAY_worker_niceness), so on a busy machine a node would get a fraction
    of the CPU it gets under local_mp; nodes run at the default niceness 0 instead. Only root may lower a
    niceness: elsewhere, set RAY_worker_niceness=0 where the cluster's nodes are started."""
    for thread_id in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else [0]:
        try:
            os.setpriority(os.PRIO_PROCESS, int(thread_id), 0)  # Linux: per thread; new threads inherit it.
        except OSError:
            return
