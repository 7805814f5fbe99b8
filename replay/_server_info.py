"""Reading a Reverb server's table info: one clear error when nothing answers, one for an unknown table."""

import replay._quiet_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
from typing import Any, Dict, Iterable

import reverb

DEFAULT_TIMEOUT_SECS = 30


class UnknownTableError(ValueError):
    """A table name the Reverb server does not have."""


def server_info(client: reverb.Client, timeout_secs: float = DEFAULT_TIMEOUT_SECS) -> Dict[str, Any]:
    """`client.server_info()`, raising ConnectionError naming the address if no server answers in time.

    Reverb counts the timeout in whole seconds (0 would wait for ever), so it is rounded, to at least 1 s.
    """
    seconds = max(1, round(timeout_secs))
    try:
        return client.server_info(timeout=seconds)
    except reverb.errors.DeadlineExceededError as e:
        raise ConnectionError(
            f"no Reverb server answered at {client.server_address} within {seconds}s: check "
            "that the replay server is running and that host and port are right"
        ) from e
    except RuntimeError as e:
        raise ConnectionError(
            f"the Reverb server at {client.server_address} failed to answer: {str(e).splitlines()[0]}"
        ) from e


def check_tables(info: Dict[str, Any], tables: Iterable[str], address: str, fix: str = "") -> None:
    """Raises UnknownTableError naming `address`, the tables of `tables` missing from `info` (a server_info()
    result) and the tables the server has; `fix` replaces the generic advice at the end."""
    unknown = [table for table in tables if table not in info]
    if not unknown:
        return
    names = ", ".join(repr(table) for table in unknown)
    existing = f"whose tables are {sorted(info)}" if info else "which has no tables"
    fix = fix or "use one of those names, or give the server a table by that name"
    raise UnknownTableError(
        f"unknown table{'s' if len(unknown) > 1 else ''} {names} on the Reverb server at {address}, {existing}: {fix}."
    )
