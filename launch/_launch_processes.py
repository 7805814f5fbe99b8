"""local_mp: one OS process per node, supervised by the launching process."""

import os
import secrets
import signal
import sys
import tempfile
import threading
from typing import List, Optional

from launch import _control, _controller, _courier, _flags, _nodes, _output, _ports, _program


class _NodeProcess:
    """A node's OS process, with its stdout and stderr as pipes and `job` on its stdin.

    The job goes through a pipe rather than a file so that nothing is left on disk when the launcher is
    killed (a file in a temporary directory would outlive a SIGKILL).

    What `subprocess.Popen(..., process_group=0)` gives on Python 3.11, on 3.9 and 3.10 too: a
    process group of its own, so Ctrl-C in the terminal reaches only the launcher, which stops the
    nodes in order. It is spawned with os.posix_spawn (clone and exec, no fork): Python 3.9's Popen
    forks, and gRPC's fork handlers then abort the child while the launcher's gRPC threads are busy.
    """

    def __init__(self, command: List[str], env: dict, job: bytes):
        job_read, job_write = os.pipe()
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        try:
            self.pid = os.posix_spawn(
                command[0],
                command,
                env,
                setpgroup=0,
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),  # As Popen(restore_signals=True).
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, job_read, 0),
                    (os.POSIX_SPAWN_DUP2, out_write, 1),
                    (os.POSIX_SPAWN_DUP2, err_write, 2),
                ],
            )
        except BaseException:
            for fd in (job_write, out_read, err_read):
                os.close(fd)
            raise
        finally:
            for fd in (job_read, out_write, err_write):
                os.close(fd)
        # Written from a thread: a job larger than the pipe's buffer blocks until the node reads it.
        threading.Thread(target=_send, args=(job_write, job), name=f"job:{self.pid}", daemon=True).start()
        self.stdout = open(out_read, "rb")
        self.stderr = open(err_read, "rb")
        self.returncode: Optional[int] = None  # As Popen's: -N when killed by signal N.

    def poll(self) -> Optional[int]:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:  # A reaped pid may belong to another process by now.
            os.kill(self.pid, signum)


def _send(fd: int, data: bytes) -> None:
    with open(fd, "wb") as pipe:
        try:
            pipe.write(data)
        except BrokenPipeError:
            pass  # The node died before reading its job; poll() reports how.


class _ProcessWorker(_controller.Worker):
    def __init__(self, node: _nodes.Node, job: bytes, log_dir: str, env: dict):
        super().__init__(node)
        slug = node.name.replace("/", "_")
        self._job = job
        # Next to the node's log, not in a temporary directory: nothing is left behind when the launcher is killed.
        self._error_file = os.path.join(log_dir, f"{slug}.error")
        self._log_path = os.path.join(log_dir, f"{slug}.log")
        self._env = env
        self._process: Optional[_NodeProcess] = None
        self._readers: List[threading.Thread] = []

    def start(self) -> None:
        if os.path.exists(self._error_file):
            os.remove(self._error_file)
        command = [sys.executable, "-m", "launch._process_entry", self.node.name, self._error_file]
        # Nodes die with the launcher, even when it is killed: see launch._process_entry.
        self._process = _NodeProcess(command, self._env, self._job)
        self._readers = [
            threading.Thread(
                target=_output.copy_lines,
                daemon=True,
                name=f"{self.node.name}:{kind}",
                args=(pipe, target, self._log_path, f"[{self.node.name}] ".encode()),
            )
            for kind, pipe, target in (
                ("out", self._process.stdout, sys.stdout),
                ("err", self._process.stderr, sys.stderr),
            )
        ]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self) -> Optional[int]:
        return None if self._process is None else self._process.pid

    def poll(self) -> Optional[str]:
        code = self._process.poll()
        if code is None:
            return None
        for reader in self._readers:
            reader.join(2.0)  # Output the process wrote before exiting is shown first.
        if code == 0:
            return ""
        if os.path.exists(self._error_file):
            with open(self._error_file) as f:
                return f.read()
        if code < 0:
            return f"Its process was killed by signal {signal.Signals(-code).name}."
        return f"Its process exited with status {code}; see {self._log_path}."

    def notify_stop(self) -> None:
        _signal(self._process, signal.SIGTERM)

    def kill(self) -> bool:
        _signal(self._process, signal.SIGKILL)
        self._process.wait()
        return True


def _signal(process: _NodeProcess, signum: int) -> None:
    try:
        process.send_signal(signum)
    except ProcessLookupError:
        pass


def launch(program: _program.Program, termination_notice_secs: float, log_dir: Optional[str]) -> _controller.Controller:
    """Starts one process per node of `program` and returns its controller."""
    _ports.assign_addresses(program)
    job = _control.pickle_program(program, "local_mp")
    token = secrets.token_hex(16)
    log_dir = log_dir or tempfile.mkdtemp(prefix=f"encore-logs-{program.name}-")
    os.makedirs(log_dir, exist_ok=True)

    control = _control.LauncherControl(program)
    control_server = _courier.CourierServer(_control.methods(control), port=0, token=token)
    control_server.start()
    env = _child_env(token, control_server.address)
    workers = [_ProcessWorker(node, job, log_dir, env) for node in program.get_all_nodes()]

    def on_end() -> None:
        control_server.stop(grace=0)

    description = f"{len(workers)} node processes, logs in {log_dir}"
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
