"""Ports for serving nodes, chosen before the nodes start."""

import socket
from typing import List, Mapping, Optional, Sequence

from launch import _nodes, _program


def assign_addresses(program: _program.Program, host: str = "127.0.0.1") -> None:
    """Gives every serving node of `program` a distinct free port on `host`."""
    assign_ports([served for node in program.get_all_nodes() for served in node.serving_nodes()], host)


def assign_ports(nodes: Sequence[_nodes.Node], host: str, previous: Optional[Mapping[str, str]] = None) -> None:
    """Gives each of `nodes` a distinct free port on `host`: the port of its `previous` address when that is on
    `host` and still free (a node restarted on the same machine keeps its address, so clients that do not look
    addresses up again, such as Reverb's, keep working)."""
    previous = previous or {}
    sockets: List[socket.socket] = []
    try:
        for node in nodes:
            # Sockets stay open until all ports are chosen, so no two nodes get the same one.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            old_host, _, old_port = (previous.get(node.name) or "").rpartition(":")
            try:
                sock.bind((host, int(old_port) if old_host == host else 0))
            except OSError:  # Taken meanwhile.
                sock.bind((host, 0))
            node.address = f"{host}:{sock.getsockname()[1]}"
    finally:
        for sock in sockets:
            sock.close()
