"""The launcher's control service, which nodes in other processes call: `lp.stop()`, and where nodes serve."""

import os
import sys
import threading
from typing import Callable, Dict, List, Mapping, Optional

import cloudpickle
from absl import logging

from launch import _context, _controller, _courier, _output, _program


class LauncherControl:
    """Served by the launcher to its nodes (token-checked): `stop()` ends the program; under launch types whose
    nodes choose their own addresses (ray), each node instance `publish()`es where it serves and clients
    `lookup()` a node's current address."""

    def __init__(self, program: _program.Program, log_dir: Optional[str] = None):
        self.controller = None  # Set once the controller exists; nodes cannot call before it starts them.
        self._served = {served.name: served for node in program.get_all_nodes() for served in node.serving_nodes()}
        self._lock = threading.Lock()
        self._instances: Dict[str, tuple] = {}  # Node name -> (instance id, pid) of its newest instance.
        self._log_dir = log_dir

    def stop(self) -> None:
        self.controller.stop()

    def publish(self, node_name: str, instance: str, pid: int, addresses: Mapping[str, str]) -> None:
        """A node instance (a new one after each restart) serves its nodes at `addresses` {node name: host:port}."""
        with self._lock:
            self._instances[node_name] = (instance, pid)
            for name, address in addresses.items():
                self._served[name].address = address  # The launcher's copy: handles dereference there too.

    def lookup(self, node_name: str) -> Optional[str]:
        """Where node `node_name` serves now; None until its first instance has published."""
        return self._served[node_name].address

    def instance(self, node_name: str) -> Optional[tuple]:
        """(instance id, pid) of the newest instance of node `node_name`; None until it has published."""
        with self._lock:
            return self._instances.get(node_name)

    def output(self, node_name: str, stream: int, lines: List[bytes]) -> None:
        """Output lines of a node in another process (stream 1: stdout, 2: stderr), where the launcher shows them
        and keeps them in `<log_dir>/<label>_<index>.log`, as under local_mp."""
        log_path = os.path.join(self._log_dir, f"{node_name.replace('/', '_')}.log")
        with open(log_path, "ab", buffering=0) as log:  # O_APPEND: lines never interleave.
            _output.write_lines(lines, sys.stdout if stream == 1 else sys.stderr, log, f"[{node_name}] ".encode())


def methods(control: LauncherControl) -> Dict[str, object]:
    return {"stop": control.stop, "publish": control.publish, "lookup": control.lookup, "output": control.output}


def request_stop(control_address: str, token: str, runtime: _context.Runtime) -> None:
    """Asks the launcher to stop the program (a node's `lp.stop()`)."""
    client = _courier.CourierClient(control_address, label="launcher", token=token, connect_timeout=5)
    try:
        client.stop()
    # What a call that does not reach the launcher raises (ConnectionError, TimeoutError and
    # PermissionError are OSErrors): the launcher is gone, so at least stop this node.
    except (OSError, _courier.RemoteError):
        logging.exception("Could not reach the launcher to stop the program.")
        runtime.notify_stop()
    finally:
        client.close()


def pickle_program(program: _program.Program, launch_type: str) -> bytes:
    """The program as node processes receive it; an argument that cannot be sent is named with its node."""
    try:
        return cloudpickle.dumps(program)
    except Exception as error:  # Pickling raises whatever the offending object's reduction raises.
        for node in program.get_all_nodes():
            try:
                cloudpickle.dumps(node)
            except Exception as node_error:  # The same, for the node that holds it.
                raise ValueError(
                    f"Node {node.name}: its arguments cannot be sent to its process under {launch_type} "
                    f"({type(node_error).__name__}: {node_error}). Pass picklable values and create locks, open "
                    "files, sockets and clients inside the node (or use a threads launch type)."
                ) from None
        raise ValueError(f"Program {program.name!r} cannot be sent to its node processes: {error}") from None


def supervise(
    program: _program.Program,
    workers: List[_controller.Worker],
    control: LauncherControl,
    token: str,
    termination_notice_secs: float,
    on_end: Callable[[], None],
    description: str,
    lookup_address: Optional[Callable[[str], Optional[str]]] = None,
) -> _controller.Controller:
    """Starts `workers` under a controller that `control` serves to the nodes, waits for the program at exit and
    stops it on Ctrl-C; `description` says where the nodes run."""
    # The launching process is a client of its program too: handle.dereference() works there.
    runtime = _context.Runtime(token, request_stop=lambda: controller.stop(), lookup_address=lookup_address)
    _context.set_process_runtime(runtime)
    controller = _controller.Controller(
        program.name, workers, termination_notice_secs, on_stop=runtime.notify_stop, on_end=on_end
    )
    control.controller = controller
    print(f"[launch] Program {program.name!r}: {description}", file=sys.stderr, flush=True)
    controller.start()
    controller.handle_signals_and_exit()
    return controller
