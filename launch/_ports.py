"""Loopback ports for serving nodes, chosen before any node starts."""

import socket
from typing import List

from launch import _program


def assign_addresses(program: _program.Program, host: str = "127.0.0.1") -> None:
    """Gives every serving node of `program` a distinct free port on `host`."""
    serving = [served for node in program.get_all_nodes() for served in node.serving_nodes()]
    sockets: List[socket.socket] = []
    try:
        for node in serving:
            # Sockets stay open until all ports are chosen, so no two nodes get the same one.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
            node.address = f"{host}:{sock.getsockname()[1]}"
    finally:
        for sock in sockets:
            sock.close()
