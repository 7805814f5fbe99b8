"""Entry point of one local_mp node process: `python -m launch._process_entry NODE ERROR_FILE`, the pickled
program on stdin."""

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def _die_with_launcher(launcher_pid: int) -> None:
    # First thing: if the launcher dies (even by SIGKILL) the kernel kills this process.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # Not Linux: the watchdog thread below still ends this process.
    if os.getppid() != launcher_pid:  # The launcher died before prctl took effect.
        os._exit(1)


if __name__ == "__main__":
    _die_with_launcher(int(os.environ["ENCORE_LAUNCHER_PID"]))

import threading  # pylint: disable=g-import-not-at-top,wrong-import-position
import time
import traceback

import cloudpickle
from absl import app

from launch import _context, _control, _flags

_POLL_SECS = 0.05


def _watch_launcher(launcher_pid: int) -> None:
    while os.getppid() == launcher_pid:
        time.sleep(0.5)
    os._exit(1)


def _run_node(node_name: str, error_file: str) -> int:
    launcher_pid = int(os.environ["ENCORE_LAUNCHER_PID"])
    threading.Thread(target=_watch_launcher, args=(launcher_pid,), daemon=True).start()
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


def _main(argv) -> None:
    node_name, error_file = argv[1:3]
    code = _run_node(node_name, error_file)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # Threads the node left behind must not keep the process alive.


if __name__ == "__main__":
    # Parses the launcher's absl flags (those known here) like Launchpad's process entry.
    app.run(_main, argv=sys.argv[:3] + _flags.launcher_flags_from_env(), flags_parser=_flags.parse_known)
