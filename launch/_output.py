"""Node output: each line to the node's log file and, prefixed with the node's name, to the launcher's terminal."""

import threading
from typing import IO, Iterable

_print_lock = threading.Lock()


def write_lines(lines: Iterable[bytes], target: IO[str], log: IO[bytes], prefix: bytes) -> None:
    for line in lines:
        log.write(line)
        with _print_lock:
            target.write((prefix + line).decode(errors="replace"))
            target.flush()


def copy_lines(pipe: IO[bytes], target: IO[str], log_path: str, prefix: bytes) -> None:
    """Copies a node's output lines to its log file and, after `prefix`, to `target`."""
    with pipe, open(log_path, "ab", buffering=0) as log:  # O_APPEND: lines never interleave.
        write_lines(pipe, target, log, prefix)
