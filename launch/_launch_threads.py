"""test_mt and local_mt: every node is a thread of the launching process."""

import ctypes
import secrets
import threading
import traceback
from typing import Optional

from launch import _context, _controller, _nodes, _ports, _program


class _ThreadWorker(_controller.Worker):
    def __init__(self, node: _nodes.Node, runtime: _context.Runtime):
        super().__init__(node)
        self._runtime = runtime
        self._thread: Optional[threading.Thread] = None
        self._error = ""

    def start(self) -> None:
        self._error = ""
        self._thread = threading.Thread(target=self._main, name=self.node.name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        _context.set_thread_runtime(self._runtime)
        client = not isinstance(self.node, _nodes.ReverbNode)
        if client:
            self._runtime.client_started()
        try:
            self.node.run()
        except BaseException:  # Reported by the controller, which stops the program.
            self._error = traceback.format_exc()
        finally:
            if client:
                self._runtime.client_ended()

    def poll(self) -> Optional[str]:
        return None if self._thread.is_alive() else self._error

    def notify_stop(self) -> None:
        pass  # The runtime's stop event, shared by all node threads, is already set.

    def kill(self) -> bool:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread.ident), ctypes.py_object(SystemExit))
        self._thread.join(1.0)
        return not self._thread.is_alive()


def launch(program: _program.Program, termination_notice_secs: float, serve_forever: bool) -> _controller.Controller:
    """Starts every node of `program` as a thread; `serve_forever`: local_mt behaviour."""
    _ports.assign_addresses(program)
    controller: Optional[_controller.Controller] = None
    runtime = _context.Runtime(secrets.token_hex(16), request_stop=lambda: controller.stop())
    _context.set_process_runtime(runtime)
    workers = [_ThreadWorker(node, runtime) for node in program.get_all_nodes()]
    controller = _controller.Controller(program.name, workers, termination_notice_secs, on_stop=runtime.notify_stop)
    controller.start()
    if serve_forever:
        controller.handle_signals_and_exit()
    return controller
