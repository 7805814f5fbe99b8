"""A node's OS process as the local_mp launcher sees it: spawned, with its output copied to a log file and the
terminal."""

import os
import signal
import sys
import threading
from typing import IO, Callable, List, Mapping, NoReturn, Optional, Protocol

from launch import _output


class NodeOutput(Protocol):
    stdout: IO[bytes]
    stderr: IO[bytes]


class ChildProcess:
    """A child process of the launcher with its stdout and stderr as pipes: what the launcher waits for and
    signals."""

    def __init__(self, pid: int, stdout_fd: int, stderr_fd: int):
        self.pid = pid
        self.stdout = open(stdout_fd, "rb")
        self.stderr = open(stderr_fd, "rb")
        self.returncode: Optional[int] = None  # As Popen's: -N when killed by signal N.
        self.lost: Optional[str] = None  # As a ForkedProcess's: its own parent always knows how it ended.

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


def fork_copy(child: Callable[[], NoReturn]) -> ChildProcess:
    """Forks this process; the copy calls `child` with its stdout and stderr as pipes to the returned process.
    Only safe while this process runs one thread (see launch._fork_server.can_fork_launcher)."""
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    sys.stdout.flush()  # What is buffered here is written once, not again by the copy.
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            for fd, target in ((out_write, 1), (err_write, 2)):
                os.dup2(fd, target)
            for fd in (out_read, out_write, err_read, err_write):
                os.close(fd)
            child()
        finally:
            os._exit(1)  # Not reached: `child` exits.
    os.close(out_write)
    os.close(err_write)
    return ChildProcess(pid, out_read, err_read)


class NodeProcess(ChildProcess):
    """A node's OS process, with its stdout and stderr as pipes and `job` on its stdin; `inherit` {fd in the
    process: fd here} passes more file descriptors.

    The job goes through a pipe rather than a file so that nothing is left on disk when the launcher is
    killed (a file in a temporary directory would outlive a SIGKILL).

    What `subprocess.Popen(..., process_group=0)` gives on Python 3.11, on 3.9 and 3.10 too: a
    process group of its own, so Ctrl-C in the terminal reaches only the launcher, which stops the
    nodes in order. It is spawned with os.posix_spawn (clone and exec, no fork): Python 3.9's Popen
    forks, and gRPC's fork handlers then abort the child while the launcher's gRPC threads are busy.
    """

    def __init__(self, command: List[str], env: dict, job: bytes, inherit: Optional[Mapping[int, int]] = None):
        job_read, job_write = os.pipe()
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        try:
            pid = os.posix_spawn(
                command[0],
                command,
                env,
                setpgroup=0,
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),  # As Popen(restore_signals=True).
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, job_read, 0),
                    (os.POSIX_SPAWN_DUP2, out_write, 1),
                    (os.POSIX_SPAWN_DUP2, err_write, 2),
                    *((os.POSIX_SPAWN_DUP2, fd, target) for target, fd in (inherit or {}).items()),
                ],
            )
        except BaseException:
            for fd in (job_write, out_read, err_read):
                os.close(fd)
            raise
        finally:
            for fd in (job_read, out_write, err_write):
                os.close(fd)
        super().__init__(pid, out_read, err_read)
        # Written from a thread: a job larger than the pipe's buffer blocks until the node reads it.
        threading.Thread(target=send_job, args=(job_write, job), name=f"job:{self.pid}", daemon=True).start()


def send_job(fd: int, data: bytes) -> None:
    with open(fd, "wb") as pipe:
        try:
            pipe.write(data)
        except BrokenPipeError:
            pass  # The node died before reading its job; poll() reports how.


def read_output(process: NodeOutput, name: str, log_path: str, all_to_stderr: bool = False) -> List[threading.Thread]:
    """Started threads that copy the process's output lines to `log_path` and, prefixed `[name] `, to sys.stdout
    (sys.stderr with `all_to_stderr`) and sys.stderr."""
    stdout = sys.stderr if all_to_stderr else sys.stdout
    readers = [
        threading.Thread(
            target=_output.copy_lines,
            daemon=True,
            name=f"{name}:{kind}",
            args=(pipe, target, log_path, f"[{name}] ".encode()),
        )
        for kind, pipe, target in (("out", process.stdout, stdout), ("err", process.stderr, sys.stderr))
    ]
    for reader in readers:
        reader.start()
    return readers
