"""A Reverb server with an optional checkpoint directory that it restores from on start."""

import replay._quiet_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
import errno
import os
import shutil
import socket
import tempfile
import uuid
from typing import Optional, Sequence

import reverb

from replay._stderr_filter import lines_hidden

# What Reverb's C++ server prints at every start, checkpoint and stop, and the INFO line portpicker logs when a
# server that was given its port gives it back: routine, not news, for the terminal of every run.
_ROUTINE = (
    b"Initializing TFRecordCheckpointer",
    b"Loading latest checkpoint",
    b"Started replay server",
    b"Stored checkpoint",
    b"Shutting down replay server",
    b"Returning a port that wasn't given by portpicker",
)


class ReplayServer:
    """Serves Reverb tables on `port` (picked when None).

    With `checkpoint_dir`, `checkpoint()` writes there and a new server on the same directory starts from
    the latest checkpoint. Without it, checkpoints go to a private temporary directory removed on `stop()`; that
    directory only exists once a checkpoint is written, so a server killed before (e.g. by SIGKILL) leaves none.
    """

    def __init__(
        self, tables: Sequence[reverb.Table], port: Optional[int] = None, checkpoint_dir: Optional[str] = None
    ):
        names = [table.name for table in tables]
        if not names:
            raise ValueError("ReplayServer needs at least one table (see replay.tables).")
        if port is not None and not _port_is_free(port):
            raise ValueError(f"port {port} is in use: pass another port, or none to have a free one picked.")
        # A path only: Reverb creates the directory when it writes the first checkpoint.
        self._owned_dir = (
            None if checkpoint_dir else os.path.join(tempfile.gettempdir(), f"encore-replay-{uuid.uuid4().hex}")
        )
        checkpointer = reverb.checkpointers.DefaultCheckpointer(checkpoint_dir or self._owned_dir)
        try:
            with lines_hidden(_ROUTINE):
                self._server = reverb.Server(list(tables), port=port, checkpointer=checkpointer)
        except Exception:
            self._remove_owned_dir()
            raise
        self._port: int = self._server.port
        self._table_names = names
        self._stopped = False

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> str:
        return f"localhost:{self.port}"

    @property
    def table_names(self) -> Sequence[str]:
        return tuple(self._table_names)

    def client(self) -> reverb.Client:
        return reverb.Client(self.address)

    def checkpoint(self) -> str:
        """Writes a checkpoint of every table and returns its path."""
        with lines_hidden(_ROUTINE):
            return self.client().checkpoint()

    def wait(self) -> None:
        """Blocks until the server is stopped."""
        server = self._server
        if server is not None:
            server.wait()

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            with lines_hidden(_ROUTINE):
                self._server.stop()
                # Reverb's Server gives its port back to portpicker when collected, with an INFO line: here.
                self._server = None
            self._remove_owned_dir()

    def _remove_owned_dir(self) -> None:
        if self._owned_dir:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None

    def __enter__(self) -> "ReplayServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self):
        if hasattr(self, "_stopped"):
            self.stop()


def _port_is_free(port: int) -> bool:
    """Whether a server can listen on `port` on every interface (as Reverb's does).

    SO_REUSEADDR, as gRPC sets it: connections of a killed server that linger in TIME_WAIT do not make the port
    busy for its restart on the same address, while a server still listening there does.
    """
    family, host = (socket.AF_INET6, "::") if socket.has_ipv6 else (socket.AF_INET, "0.0.0.0")
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        return error.errno != errno.EADDRINUSE  # Another failure (e.g. no IPv6 here) is Reverb's to report.
    return True
