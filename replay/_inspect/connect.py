"""Checking an ADDRESS argument and reading the tables of the Reverb server behind it."""

import replay._quiet_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
import os
from typing import Any, Dict, Tuple

import reverb

from replay._server_info import UnknownTableError, check_tables, server_info


class InspectError(Exception):
    """A problem the user can fix; the CLI prints it as one line and exits non-zero."""


def is_address(target: str) -> bool:
    """Whether `target` has the form host:port."""
    host, _, port = target.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def parse_address(target: str) -> str:
    """Returns `target` if it is `host:port`, else raises InspectError saying what to pass instead."""
    if os.path.isdir(target):
        raise InspectError(
            f"{target} is a directory, and `python -m replay.inspect` takes host:port only: to "
            "inspect a run directory, use `encore-inspect` or `python -m agents.inspect`"
        )
    if not is_address(target):
        raise InspectError(f"{target!r} is not host:port (e.g. localhost:8000)")
    return target


def fetch_server_info(client: Any, timeout: float) -> Dict[str, Any]:
    """`client.server_info()` with one clear error when the server does not answer within `timeout` seconds."""
    try:
        return server_info(client, timeout)
    except ConnectionError as e:
        raise InspectError(str(e)) from None


def connect(target: str, timeout: float) -> Tuple[str, Any, Dict[str, Any]]:
    """Returns (address, reverb.Client, server_info()) for an ADDRESS argument."""
    address = parse_address(target)
    client = reverb.Client(address)
    return address, client, fetch_server_info(client, timeout)


def table_info(infos: Dict[str, Any], table: str, address: str) -> Any:
    """The TableInfo of `table`, or an error listing the tables that do exist."""
    try:
        check_tables(infos, [table], address)
    except UnknownTableError as e:
        raise InspectError(str(e)) from None
    return infos[table]
