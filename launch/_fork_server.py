"""A preloading process of local_mp: `python -m launch._fork_server LAUNCHER_PID KIND`, its launcher's socket on
fd 3, or a fork of the launcher itself (`serve_as_launcher_copy`) when forking it is safe. KIND is `tensorflow` or
`light`.

It imports the modules the program refers to once (a `tensorflow` one first imports TensorFlow, Reverb and
`replay`; a `light` one, for nodes that need no TensorFlow, nothing more), then forks one process per node its
launcher asks for, so a node starts with them imported instead of importing them again (3-6 s each on 2 cores
with TensorFlow, 0.5-1 s with numpy and gymnasium). It stays single-threaded and runs no node code: forking
copies only the calling thread, so a thread alive here would leave its locks held forever in every node
(TensorFlow creates its thread pools on its first op, which only nodes run).

Messages are JSON, one per SOCK_SEQPACKET datagram (nothing here is unpickled):
  launcher -> here: {"preload": [module names], "environ": {name: value}} first; then {"fork": id, "argv": [node
                    name, error file], "title": ...} with the node's stdin, stdout and stderr as SCM_RIGHTS;
                    {"signal": id, "signum": n}
  here -> launcher: {"ready": seconds spent importing} or {"failed": why}; {"forked": id, "pid": pid};
                    {"exited": id, "code": exit code as Popen's returncode}
"""

import os
import signal
import sys

from launch import _process_entry

if __name__ == "__main__":
    _process_entry.die_with_parent(int(sys.argv[1]))  # Before the imports, which take seconds.

import importlib  # pylint: disable=g-import-not-at-top,wrong-import-position
import json
import select
import socket
import threading
import time
import traceback
from typing import Dict, List, NoReturn, Sequence

import setproctitle

SOCKET_FD = 3
MAX_MESSAGE_BYTES = 1 << 16
# The kinds of preloading process: what a node needs imported besides the program's modules.
KINDS = ("tensorflow", "light")
# What nodes of a `tensorflow` one find imported. `replay.import_tensorflow` imports TensorFlow without its
# CPU-only plugin noise.
PRELOADED_MODULES = ("replay.server", "replay.tables", "replay.adders", "replay.datasets", "replay.priorities")
_WATCH_SECS = 0.5


def send(sock: socket.socket, message: dict, fds: Sequence[int] = ()) -> None:
    socket.send_fds(sock, [json.dumps(message).encode()], list(fds))


def _preload(kind: str, program_modules: Sequence[str]) -> None:
    """Imports TensorFlow, Reverb and `replay` if `kind` is `tensorflow`, then `program_modules`: what each node
    imports anyway when it unpickles the program."""
    if kind == "tensorflow":
        import replay  # pylint: disable=import-outside-toplevel

        replay.import_tensorflow()
        for name in PRELOADED_MODULES:
            importlib.import_module(name)
    for name in program_modules:
        try:
            importlib.import_module(name)
        except Exception:  # pylint: disable=broad-except  # Each node meets the same error and reports it.
            pass


def _threads_after_a_fork() -> int:
    """The threads this process runs once a fork has stopped numpy's OpenBLAS worker.

    OpenBLAS keeps a worker thread that it stops before every fork (pthread_atfork) and starts again only for its
    next matrix product: a first fork stops it, and any thread still alive after it would be alive in a fork too.
    """
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    task_dir = "/proc/self/task"
    threads = len(os.listdir(task_dir)) if os.path.isdir(task_dir) else threading.active_count()
    return max(threads, threading.active_count())


def can_fork_launcher() -> bool:
    """Whether the launching process may be forked into a preloading process now (`serve_as_launcher_copy`): on
    Linux, from its main thread, while that is the only thread it runs (no gRPC, TensorFlow or other threads have
    started: a fork would leave their locks held forever)."""
    if not os.path.isdir("/proc/self/task") or threading.active_count() > 1:
        return False
    return _threads_after_a_fork() == 1


def _check_single_threaded(kind: str) -> None:
    """Raises unless this process is down to its one thread when it forks: this process computes no matrix
    product after its imports, so numpy's OpenBLAS worker does not start again (see _threads_after_a_fork)."""
    threads = _threads_after_a_fork()
    if threads > 1:
        raise RuntimeError(
            f"{threads} threads run in the {kind} preloading process after it imported the modules the program refers "
            "to (one of which started a thread): forking it is not safe. Launch with preload=False (or "
            "ENCORE_PRELOAD=0) to spawn every node."
        )


def _become_node(request: dict, fds: List[int], inherited: Sequence[int], server_pid: int) -> NoReturn:
    """In a forked child: becomes the node process that `request` asks for; never returns to the serving loop."""
    code = 1
    try:
        os.setpgid(0, 0)  # Its own process group, as a spawned node: Ctrl-C reaches only the launcher.
        _process_entry.die_with_parent(server_pid)  # Which itself dies with the launcher.
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in inherited:
            os.close(fd)
        for target, fd in enumerate(fds):  # stdin (the job), stdout, stderr.
            os.dup2(fd, target)
            os.close(fd)
        setproctitle.setproctitle(request["title"])  # What `ps` shows, as for a spawned node.
        if "numpy" in sys.modules:  # Each node draws its own random numbers, as a spawned one would.
            sys.modules["numpy"].random.seed()
        argv = [_process_entry.__file__, *request["argv"]]
        sys.argv = argv
        _process_entry.run_node(argv, server_pid)
    except SystemExit as exit_:  # absl's app.run exits on a flag error.
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # pylint: disable=broad-except  # Shown in the node's log; the launcher sees status 1.
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _serve(sock: socket.socket, launcher_pid: int) -> None:
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # A handler, so that the wakeup fd hears of exits.
    signal.set_wakeup_fd(wake_write)
    pids: Dict[int, int] = {}  # Request id -> pid, until reaped: a reaped pid is never signalled.
    ids: Dict[int, int] = {}
    while True:
        readable, _, _ = select.select([sock, wake_read], [], [], _WATCH_SECS)
        if os.getppid() != launcher_pid:  # Not Linux, where the parent-death signal has ended this process.
            os._exit(1)
        if wake_read in readable:
            os.read(wake_read, 4096)
        _reap(sock, pids, ids)
        if sock not in readable:
            continue
        message, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE_BYTES, 3)
        if not message:
            return  # The launcher closed its end: the program has ended.
        request = json.loads(message)
        if "fork" in request:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _become_node(request, fds, (sock.fileno(), wake_read, wake_write), os.getppid())
            for fd in fds:
                os.close(fd)
            pids[request["fork"]], ids[pid] = pid, request["fork"]
            send(sock, {"forked": request["fork"], "pid": pid})
        elif "signal" in request and request["signal"] in pids:
            os.kill(pids[request["signal"]], request["signum"])


def _reap(sock: socket.socket, pids: Dict[int, int], ids: Dict[int, int]) -> None:
    while pids:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        request_id = ids.pop(pid)
        del pids[request_id]
        send(sock, {"exited": request_id, "code": os.waitstatus_to_exitcode(status)})


def _preload_and_serve(sock: socket.socket, launcher_pid: int, kind: str, title: str) -> None:
    started = time.monotonic()
    # {"preload": [module names], "environ": {name: value}}, sent before any fork request. `environ`: what the
    # launcher's children have in their environment besides what this process has (the launch token, the
    # launcher's control address, ...), for a process forked from the launcher before those existed.
    first = sock.recv(MAX_MESSAGE_BYTES)
    if not first:
        return  # The launcher has gone.
    message = json.loads(first)
    os.environ.update(message["environ"])
    try:
        _preload(kind, message["preload"])
        _check_single_threaded(kind)
    except Exception:  # pylint: disable=broad-except  # Whatever an import raises; the launcher shows it.
        send(sock, {"failed": traceback.format_exc()})
        return
    setproctitle.setproctitle(f"{title} (preloaded)")
    send(sock, {"ready": time.monotonic() - started})
    _serve(sock, launcher_pid)


def serve_as_launcher_copy(socket_fd: int, launcher_pid: int, kind: str, launcher_fds: Sequence[int]) -> NoReturn:
    """In a fork of the launching process (launch._node_process.fork_copy; see can_fork_launcher): becomes its
    preloading process of `kind`, with the modules the launcher imported already imported, and never returns.
    Saves the start of an interpreter and its imports (a third of a second without TensorFlow). `launcher_fds`:
    the launcher's ends of its preloading processes' sockets and pipes, closed here (a copy holding the launcher's
    end of a socket would keep its other end from seeing the launcher close it)."""
    code = 0
    try:
        for fd in launcher_fds:
            os.close(fd)
        _process_entry.die_with_parent(launcher_pid)
        os.setpgid(0, 0)  # Its own process group, as a spawned one: Ctrl-C reaches only the launcher.
        for signum in (signal.SIGINT, signal.SIGTERM):  # Not the launcher's handlers.
            signal.signal(signum, signal.SIG_DFL)
        with open(os.devnull, "rb") as devnull:
            os.dup2(devnull.fileno(), 0)
        title = f"{sys.executable} -m launch._fork_server {launcher_pid} {kind} (forked from the launcher)"
        setproctitle.setproctitle(title)
        _preload_and_serve(socket.socket(fileno=socket_fd), launcher_pid, kind, title)
    except BaseException:  # pylint: disable=broad-except  # In its log; the launcher spawns nodes instead.
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    launcher_pid, kind = int(sys.argv[1]), sys.argv[2]
    title = f"{sys.executable} -m launch._fork_server {launcher_pid} {kind}"
    _preload_and_serve(socket.socket(fileno=SOCKET_FD), launcher_pid, kind, title)


if __name__ == "__main__":
    main()
