"""local_mp's preloading: which nodes need TensorFlow, and the launcher's end of the processes nodes are forked
from (launch._fork_server): one with TensorFlow imported for the nodes that need it, a light one for the others."""

import functools
import itertools
import json
import os
import pickletools
import signal
import socket
import sys
import threading
import time
import types
from typing import Dict, List, Optional

import tree

from launch import _fork_server, _handles, _node_process, _nodes, _program

# Set to 0 (or false, no) to spawn every local_mp node instead, when launch() is not given `preload`.
PRELOAD_ENV = "ENCORE_PRELOAD"


def preload_default() -> bool:
    return os.environ.get(PRELOAD_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _is_tensorflow_module(name: str) -> bool:
    """Modules whose import imports TensorFlow (every `replay` module but its numpy-only specs)."""
    top = name.split(".", 1)[0]
    return top in ("tensorflow", "reverb") or (top == "replay" and name not in ("replay", "replay.specs"))


def tensorflow_nodes(program: _program.Program, job: bytes) -> List[_nodes.Node]:
    """The nodes of `program` that will import TensorFlow, judged from their definitions: forked from the
    `tensorflow` preloading process (the others from the `light` one).

    Every node process unpickles the whole program (`job`), so if it refers to a TensorFlow module (e.g. a node
    function in a script that imports TensorFlow, or in a module that imported it at its top), every node imports
    it: all are. Otherwise the nodes that serve replay (ReverbNode), receive a replay handle (which becomes a
    reverb.Client) or were added with `imports_tensorflow=True` are. A node that imports TensorFlow only inside a
    function of an importable module without saying so is forked from the light process and imports it itself.
    """
    nodes = program.get_all_nodes()
    if refers_to_tensorflow(job):
        return nodes
    return [node for node in nodes if node.imports_tensorflow or _uses_replay(node)]


def _uses_replay(node: _nodes.Node) -> bool:
    parts = [node, *getattr(node, "nodes", ())]
    if any(isinstance(part, _nodes.ReverbNode) for part in parts):
        return True
    return any(isinstance(value, _handles.ReverbHandle) for part in parts for value in tree.flatten(vars(part)))


def refers_to_tensorflow(pickled: bytes) -> bool:
    """Whether unpickling imports TensorFlow: the pickle names a TensorFlow module, or a module (already imported
    here) that imported one at its top."""
    for name in _referenced_names(pickled):
        if _is_tensorflow_module(name):
            return True
        module = sys.modules.get(name)
        if module is not None and any(
            isinstance(value, types.ModuleType)
            and _is_tensorflow_module(value.__name__)
            and not value.__name__.startswith(name + ".")  # A package's submodule, imported later by someone.
            for value in vars(module).values()
        ):
            return True
    return False


def program_modules(job: bytes) -> List[str]:
    """The modules (imported here) that the pickled program refers to by name: what each node process imports
    when it unpickles it, so what the preloading process imports once for all."""
    names = sorted(n for n in _referenced_names(job) if n != "__main__" and getattr(sys.modules.get(n), "__file__", 0))
    while len(json.dumps(names)) > _fork_server.MAX_MESSAGE_BYTES // 2:  # Far more than a program refers to.
        names.pop()
    return names


def _referenced_names(pickled: bytes) -> set:
    """The strings of a pickle: among them the module names of everything it refers to."""
    names = set()
    for opcode, argument, _ in pickletools.genops(pickled):
        if isinstance(argument, str) and "UNICODE" in opcode.name or opcode.name == "GLOBAL":
            names.update(argument.split(" ") if opcode.name == "GLOBAL" else (argument,))
    return names


class ForkedProcess:
    """A node's process forked by the preloading process, with its stdout and stderr as pipes and its job on
    its stdin; the same surface as a spawned node's process. `pid` is None until it is forked (the preloading
    process forks once its imports are done)."""

    def __init__(self, server: "ForkServer", request: dict, job: bytes):
        self._server = server
        self.request = request  # What the preloading process is asked (without the file descriptors).
        self.request_id: int = request["fork"]
        self.pid: Optional[int] = None
        self.returncode: Optional[int] = None  # As Popen's: -N when killed by signal N.
        # Why the preloading process could not fork it or report on it, if so.
        self.lost: Optional[str] = None
        self._ended = threading.Event()
        job_read, job_write = os.pipe()
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        self.child_fds: List[int] = [job_read, out_write, err_write]  # Sent to the preloading process, then closed.
        self.stdout = open(out_read, "rb")
        self.stderr = open(err_read, "rb")
        threading.Thread(
            target=_node_process.send_job, args=(job_write, job), name=f"job:{request['argv'][0]}", daemon=True
        ).start()

    def close_child_fds(self) -> None:
        for fd in self.child_fds:
            os.close(fd)
        self.child_fds = []

    def end(self, returncode: int, lost: Optional[str] = None) -> None:
        self.close_child_fds()  # A node never forked: its output readers see the end, its job writer stops.
        self.lost = lost
        self.returncode = returncode
        self._ended.set()

    def poll(self) -> Optional[int]:
        return self.returncode

    def wait(self) -> int:
        self._ended.wait()
        return self.returncode

    def send_signal(self, signum: int) -> None:
        self._server.signal(self, signum)


class ForkServer:
    """The launcher's end of a preloading process: a fork of the launcher (`fork_launcher`, before launch() starts
    any thread) or, if the launcher cannot be forked safely, a process spawned on the first `fork()` (from the
    controller's thread: the parent-death signal of a process fires when the thread that started it ends).
    `begin(env)` once the launcher's control server runs."""

    def __init__(self, kind: str, log_dir: str, modules: List[str]):
        """`kind`: one of launch._fork_server.KINDS; `modules`: what it imports (after TensorFlow, Reverb and
        `replay` for `tensorflow`; see program_modules)."""
        self.kind = kind
        self._env: dict = {}
        self._modules = modules
        self._log_path = os.path.join(log_dir, "preload.log" if kind == "tensorflow" else f"preload_{kind}.log")
        self._lock = threading.Lock()
        self._socket: Optional[socket.socket] = None
        self._process = None
        self._threads: List[threading.Thread] = []
        self._ready = False
        self._started = 0.0  # time.monotonic() when its process was started.
        self._forked_from_launcher = False
        self._ended = False
        self.failure: Optional[str] = None  # Why it cannot fork (any more); nodes are spawned then.
        self.failure_shown = False
        self._waiting: List[ForkedProcess] = []  # Asked for before the imports were done.
        self._running: Dict[int, ForkedProcess] = {}  # Request id -> process, until it exits.
        self._ids = itertools.count()

    def fork_launcher(self, other_servers: List["ForkServer"]) -> None:
        """Forks this (launching) process into the preloading process; only while launch._fork_server's
        can_fork_launcher(). `other_servers`: those forked before, whose sockets and pipes the copy closes."""
        launcher_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        launcher_fds = [launcher_end.fileno(), *(fd for server in other_servers for fd in server._launcher_fds())]
        self._started = time.monotonic()
        try:
            self._process = _node_process.fork_copy(
                functools.partial(
                    _fork_server.serve_as_launcher_copy, server_end.fileno(), os.getpid(), self.kind, launcher_fds
                )
            )
        finally:
            server_end.close()
        self._socket = launcher_end
        self._forked_from_launcher = True

    def _launcher_fds(self) -> List[int]:
        return [self._socket.fileno(), self._process.stdout.fileno(), self._process.stderr.fileno()]

    def begin(self, env: dict) -> None:
        """`env`: the environment of the launcher's children. A process forked from the launcher gets what it
        lacks, then imports; a spawned one is started with it on the first fork()."""
        with self._lock:
            self._env = env
            if self._forked_from_launcher:
                missing = {name: value for name, value in env.items() if os.environ.get(name) != value}
                if not self._send({"preload": self._modules, "environ": missing}):  # E.g. a huge environment.
                    self.failure = "The preloading process could not be told what to import; nodes are spawned."
                self._start_threads()

    def fork(self, node_name: str, error_file: str, job: bytes) -> ForkedProcess:
        with self._lock:
            if self._process is None:
                self._start()
            # The title is the command line of a spawned node: `ps` and `pgrep -f` find nodes the same way.
            title = f"{sys.executable} -m launch._process_entry {node_name} {error_file}"
            request = {"fork": next(self._ids), "argv": [node_name, error_file], "title": title}
            process = ForkedProcess(self, request, job)
            if self._ready:
                self._send_fork(process)
            else:
                self._waiting.append(process)
            return process

    def signal(self, process: ForkedProcess, signum: int) -> None:
        with self._lock:
            if process.returncode is not None:
                return
            if process in self._waiting:  # Not forked yet: it never will be.
                self._waiting.remove(process)
                process.end(-signum)
            else:
                self._send({"signal": process.request_id, "signum": signum})

    def close(self) -> None:
        """Ends the preloading process (it runs no node code: nothing to let finish) once every node has ended."""
        with self._lock:
            self._ended = True
            process = self._process
        if process is None:
            return
        process.send_signal(signal.SIGKILL)
        process.wait()
        for thread in self._threads:  # Their pipe and socket ended with the process.
            thread.join()
        self._socket.close()

    def _start(self) -> None:
        launcher_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        command = [sys.executable, "-m", "launch._fork_server", str(os.getpid()), self.kind]
        self._started = time.monotonic()
        try:
            self._process = _node_process.NodeProcess(
                command, self._env, b"", inherit={_fork_server.SOCKET_FD: server_end.fileno()}
            )
        finally:
            server_end.close()
        self._socket = launcher_end
        self._send({"preload": self._modules, "environ": {}})
        self._start_threads()

    def _start_threads(self) -> None:
        name = f"preload:{self.kind}"
        self._threads = _node_process.read_output(self._process, name, self._log_path, all_to_stderr=True)
        self._threads.append(threading.Thread(target=self._receive, name=f"{name}:messages", daemon=True))
        self._threads[-1].start()

    def _send(self, message: dict, fds: List[int] = ()) -> bool:
        try:
            _fork_server.send(self._socket, message, fds)
            return True
        except OSError:  # It has ended; _receive reports on every node it had.
            return False

    def _send_fork(self, process: ForkedProcess) -> None:
        if self._send(process.request, process.child_fds):
            self._running[process.request_id] = process
            process.close_child_fds()  # The node holds them now.
        else:
            self.failure = (
                self.failure or f"The preloading process ended; see {self._log_path}. Nodes are spawned instead."
            )
            process.end(1, lost=self.failure)

    def _receive(self) -> None:
        while True:
            try:
                data = self._socket.recv(_fork_server.MAX_MESSAGE_BYTES)
            except OSError:
                data = b""
            if not data:
                break
            message = json.loads(data)
            with self._lock:
                if "ready" in message:
                    self._ready = True
                    heavy = "TensorFlow, Reverb, replay and " if self.kind == "tensorflow" else ""
                    with open(self._log_path, "a") as log:  # Here, not on the terminal: where start-up time goes.
                        log.write(
                            f"Imported {heavy}{len(self._modules)} modules the program refers to in "
                            f"{message['ready']:.2f}s (ready {time.monotonic() - self._started:.2f}s after its process "
                            f"was {'forked from the launcher' if self._forked_from_launcher else 'started'}).\n"
                        )
                    for process in self._waiting:
                        self._send_fork(process)
                    self._waiting = []
                elif "failed" in message:
                    self.failure = f"Preloading failed; nodes are spawned instead.\n{message['failed']}"
                elif "forked" in message:
                    self._running[message["forked"]].pid = message["pid"]
                elif "exited" in message:
                    self._running.pop(message["exited"]).end(message["code"])
        with self._lock:
            if self.failure is None:
                self.failure = f"The preloading process ended unexpectedly; see {self._log_path}."
            for process in self._waiting + list(self._running.values()):
                process.end(-9, lost=None if self._ended else self.failure)  # Its parent-death signal.
            self._waiting, self._running = [], {}
