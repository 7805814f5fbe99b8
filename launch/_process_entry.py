"""Entry point of one local_mp node process: `python -m launch._process_entry NODE ERROR_FILE`, the pickled
program on stdin. Nodes forked from a preloading process (launch._fork_server) enter through `run_node`."""

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """If the parent (the launcher, or the preloading process a node was forked from) dies, even by SIGKILL, the
    kernel kills this process."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # Not Linux: the watchdog thread below still ends this process.
    if os.getppid() != parent_pid:  # The parent died before prctl took effect.
        os._exit(1)


if __name__ == "__main__":
    die_with_parent(int(os.environ["ENCORE_LAUNCHER_PID"]))  # First thing.

import functools  # pylint: disable=g-import-not-at-top,wrong-import-position
import threading
import time
import traceback
from typing import List, NoReturn

import cloudpickle
from absl import app, command_name

from launch import _context, _control, _flags

_POLL_SECS = 0.05


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(1)


def _run_node(node_name: str, error_file: str, parent_pid: int) -> int:
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    token = os.environ.pop("ENCORE_LAUNCH_TOKEN")
    control_address = os.environ["ENCORE_LAUNCH_CONTROL"]
    runtime = _context.Runtime(token, request_stop=lambda: _control.request_stop(control_address, token, runtime))
    _context.set_process_runtime(runtime)

    stop_signalled = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: stop_signalled.append(signum))

    errors = []

    def main() -> None:
        try:
            program = cloudpickle.loads(sys.stdin.buffer.read())  # Our launcher writes it, then closes the pipe.
            node = next(n for n in program.get_all_nodes() if n.name == node_name)
            node.run()
        except BaseException:
            errors.append(traceback.format_exc())

    thread = threading.Thread(target=main, name=node_name, daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(_POLL_SECS)
        if stop_signalled and not runtime.stop_event.is_set():
            threading.Thread(target=runtime.notify_stop, daemon=True).start()
    if errors:
        sys.stderr.write(errors[0])
        with open(error_file, "w") as f:
            f.write(errors[0])
        return 1
    return 0


def _main(argv, parent_pid: int) -> None:
    node_name, error_file = argv[1:3]
    # What `top` and `ps -o comm` show (15 characters), in place of the script name app.run set.
    command_name.set_kernel_process_name(node_name)
    code = _run_node(node_name, error_file, parent_pid)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # Threads the node left behind must not keep the process alive.


def run_node(argv: List[str], parent_pid: int) -> NoReturn:
    """Runs node `argv[1]` (its error file `argv[2]`) and exits; `parent_pid` is the process this one dies with."""
    # Parses the launcher's absl flags (those known here) like Launchpad's process entry.
    app.run(
        functools.partial(_main, parent_pid=parent_pid),
        argv=argv[:3] + _flags.launcher_flags_from_env(),
        flags_parser=_flags.parse_known,
    )
    os._exit(1)  # Not reached: _main exits.


if __name__ == "__main__":
    run_node(sys.argv, int(os.environ["ENCORE_LAUNCHER_PID"]))
