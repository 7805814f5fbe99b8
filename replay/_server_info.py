"""Reading a Reverb server's table info, with one clear error when nothing answers."""

from typing import Any, Dict

import reverb

DEFAULT_TIMEOUT_SECS = 30


def server_info(client: reverb.Client, timeout_secs: int = DEFAULT_TIMEOUT_SECS) -> Dict[str, Any]:
    """`client.server_info()`, raising ConnectionError naming the address if no server answers in time."""
    try:
        return client.server_info(timeout=timeout_secs)
    except reverb.errors.DeadlineExceededError as e:
        raise ConnectionError(f"no Reverb server answered at {client.server_address} within {timeout_secs:g}s: "
                              "is it running, and is the address host:port right?") from e
