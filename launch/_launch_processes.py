"""local_mp: one OS process per node, supervised by the launching process."""

import os
import secrets
import signal
import sys
import tempfile
import threading
from typing import List, Optional, Union

from launch import _control, _controller, _courier, _flags, _fork_server, _nodes, _ports, _preloading, _program
from launch._node_process import NodeProcess, read_output


class _ProcessWorker(_controller.Worker):
    """A node's process: forked by `fork_server` (which has what the node needs imported) if given and able, else
    spawned."""

    def __init__(
        self,
        node: _nodes.Node,
        job: bytes,
        log_dir: str,
        env: dict,
        fork_server: Optional[_preloading.ForkServer] = None,
    ):
        super().__init__(node)
        slug = node.name.replace("/", "_")
        self._job = job
        # Next to the node's log, not in a temporary directory: nothing is left behind when the launcher is killed.
        self._error_file = os.path.join(log_dir, f"{slug}.error")
        self._log_path = os.path.join(log_dir, f"{slug}.log")
        self._env = env
        self._fork_server = fork_server
        self._process: Union[NodeProcess, _preloading.ForkedProcess, None] = None
        self._readers: List[threading.Thread] = []

    def start(self) -> None:
        if os.path.exists(self._error_file):
            os.remove(self._error_file)
        # Nodes die with the launcher, even when it is killed: see launch._process_entry and launch._fork_server.
        if self._fork_server is not None and self._fork_server.failure is None:
            self._process = self._fork_server.fork(self.node.name, self._error_file, self._job)
        else:
            command = [sys.executable, "-m", "launch._process_entry", self.node.name, self._error_file]
            self._process = NodeProcess(command, self._env, self._job)
        self._readers = read_output(self._process, self.node.name, self._log_path)

    @property
    def pid(self) -> Optional[int]:
        return None if self._process is None else self._process.pid

    def poll(self) -> Optional[str]:
        code = self._process.poll()
        if code is None:
            return None
        for reader in self._readers:
            reader.join(2.0)  # Output the process wrote before exiting is shown first.
        if self._process.lost is not None and self._process.pid is None:
            self._spawn_instead()
            return None
        if code == 0:
            return ""
        if self._process.lost is not None:
            return self._process.lost
        if os.path.exists(self._error_file):
            with open(self._error_file) as f:
                return f.read()
        if code < 0:
            return f"Its process was killed by signal {signal.Signals(-code).name}."
        return f"Its process exited with status {code}; see {self._log_path}."

    def _spawn_instead(self) -> None:
        """The preloading process failed before forking this node: spawns it (from the controller's thread)."""
        if not self._fork_server.failure_shown:
            self._fork_server.failure_shown = True
            print(f"[launch] {self._fork_server.failure}", file=sys.stderr, flush=True)
        self.start()

    def notify_stop(self) -> None:
        _signal(self._process, signal.SIGTERM)

    def kill(self) -> bool:
        _signal(self._process, signal.SIGKILL)
        self._process.wait()
        return True


def _signal(process: Union[NodeProcess, _preloading.ForkedProcess], signum: int) -> None:
    try:
        process.send_signal(signum)
    except ProcessLookupError:
        pass


def launch(
    program: _program.Program, termination_notice_secs: float, log_dir: Optional[str], preload: bool
) -> _controller.Controller:
    """Starts one process per node of `program` and returns its controller. With `preload`, nodes are forked from
    a process that imported what they need once (launch._fork_server): TensorFlow and the program's modules for
    the nodes that use TensorFlow, the program's modules alone for the others; without, each is spawned."""
    _ports.assign_addresses(program)
    job = _control.pickle_program(program, "local_mp")
    token = secrets.token_hex(16)
    log_dir = log_dir or tempfile.mkdtemp(prefix=f"encore-logs-{program.name}-")
    os.makedirs(log_dir, exist_ok=True)

    nodes = program.get_all_nodes()
    kinds = {}  # Node -> the kind of preloading process it is forked from.
    if preload:
        uses_tensorflow = _preloading.tensorflow_nodes(program, job)
        kinds = {node: "tensorflow" if node in uses_tensorflow else "light" for node in nodes}
    modules = _preloading.program_modules(job) if kinds else []
    # Only the kinds the nodes need: a program without TensorFlow nodes never imports it, nor starts that process.
    fork_servers = {kind: _preloading.ForkServer(kind, log_dir, modules) for kind in sorted(set(kinds.values()))}
    # Forked from this process while it runs no other thread, so before the control server: they start with what
    # it imported. Otherwise each is spawned on its first fork.
    if fork_servers and _fork_server.can_fork_launcher():
        forked: List[_preloading.ForkServer] = []
        for fork_server in fork_servers.values():
            fork_server.fork_launcher(forked)
            forked.append(fork_server)

    control = _control.LauncherControl(program)
    control_server = _courier.CourierServer(_control.methods(control), port=0, token=token)
    try:
        control_server.start()
    except BaseException:
        for fork_server in fork_servers.values():
            fork_server.close()
        raise
    env = _child_env(token, control_server.address)
    for fork_server in fork_servers.values():
        fork_server.begin(env)
    workers = [_ProcessWorker(node, job, log_dir, env, fork_servers.get(kinds.get(node))) for node in nodes]

    def on_end() -> None:
        control_server.stop(grace=0)
        for fork_server in fork_servers.values():
            fork_server.close()

    counts = [f"{list(kinds.values()).count(kind)} {kind}" for kind in fork_servers]
    forked = f" (forked from preloading processes: {', '.join(counts)})" if counts else ""
    description = f"{len(workers)} node processes{forked}, logs in {log_dir}"
    return _control.supervise(program, workers, control, token, termination_notice_secs, on_end, description)


def _child_env(token: str, control_address: str) -> dict:
    env = dict(os.environ)
    env.update(
        ENCORE_LAUNCH_TOKEN=token,
        ENCORE_LAUNCH_CONTROL=control_address,
        ENCORE_LAUNCHER_PID=str(os.getpid()),
        # Nodes import what the launcher can import (e.g. modules next to the launching script).
        PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env[_flags.LAUNCHER_FLAGS_ENV] = _flags.launcher_flags()
    return env
