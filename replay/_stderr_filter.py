"""Drops known, harmless lines from stderr around the calls that print them.

TensorFlow's import and Reverb's C++ server print routine lines to stderr (file descriptor 2, below Python's
logging) with no level to filter on. Around such a call, stderr goes through a filter that drops lines holding
one of the given fragments and passes everything else on as it arrives, so an error, or the stack dump of a
hung call, is never held back.
"""

import contextlib
import os
import sys
import threading
from typing import Iterator, Sequence

_LOCK = threading.RLock()  # One filter at a time (a nested one filters into the outer one): each swaps fd 2.


@contextlib.contextmanager
def lines_hidden(fragments: Sequence[bytes]) -> Iterator[None]:
    """Within the block, stderr lines that contain one of `fragments` are dropped; other lines pass through."""
    with _LOCK:
        sys.stderr.flush()
        terminal = os.dup(2)
        read_end, write_end = os.pipe()
        forwarder = threading.Thread(
            target=_forward, args=(read_end, terminal, tuple(fragments)), name="encore-stderr-filter"
        )
        forwarder.start()
        os.dup2(write_end, 2)
        os.close(write_end)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(terminal, 2)  # Closes the pipe's last write end: the forwarder reads to its end and returns.
            forwarder.join()
            os.close(terminal)


def _forward(read_end: int, terminal: int, fragments: Sequence[bytes]) -> None:
    with os.fdopen(read_end, "rb") as lines:
        for line in lines:
            if not any(fragment in line for fragment in fragments):
                os.write(terminal, line)
