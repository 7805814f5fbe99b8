"""Priority updates sent in batches from a background thread, off the learner's step."""

import replay._quiet_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
import threading
from typing import Dict, Optional, Sequence

import numpy as np
import reverb

from replay._server_info import check_tables, server_info


DEFAULT_CLOSE_TIMEOUT_SECS = 30.0


class PriorityUpdater:
    """Collects (key, priority) updates and sends them to `table` with `mutate_priorities`.

    `update` only records the newest priority per key and returns; a background thread sends whatever has
    gathered every `interval_secs` (sooner once `batch_size` keys are pending). `flush` waits until all is
    sent; `close` flushes and stops the thread. A failure to send is raised by the next call.
    """

    def __init__(self, client: reverb.Client, table: str, *, batch_size: int = 1024, interval_secs: float = 0.05):
        check_tables(server_info(client), [table], client.server_address)
        self._client = client
        self._table = table
        self._batch_size = batch_size
        self._interval_secs = interval_secs
        self._pending: Dict[int, float] = {}
        self._in_flight = 0
        self._error: Optional[BaseException] = None
        self._closed = False
        self._lock = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"priority-updater-{table}", daemon=True)
        self._thread.start()

    def update(self, keys: Sequence[int], priorities: Sequence[float]) -> None:
        """Schedules `priorities[i]` for item `keys[i]`; returns at once."""
        keys = np.asarray(keys, np.uint64).ravel()
        priorities = np.asarray(priorities, np.float64).ravel()
        if keys.shape != priorities.shape:
            raise ValueError(f"keys and priorities differ in length: {keys.size} vs {priorities.size}.")
        with self._lock:
            self._raise_error()
            if self._closed:
                raise RuntimeError("PriorityUpdater is closed.")
            self._pending.update(zip(keys.tolist(), priorities.tolist()))
            if len(self._pending) >= self._batch_size:
                self._lock.notify_all()

    def flush(self, timeout: Optional[float] = None) -> None:
        """Blocks until every update so far has reached the server."""
        with self._lock:
            self._lock.notify_all()
            if not self._lock.wait_for(lambda: not (self._pending or self._in_flight) or self._error, timeout):
                raise TimeoutError(f"priority updates for table {self._table!r} not sent within {timeout}s.")
            self._raise_error()

    def close(self, timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT_SECS) -> None:
        """Sends what is pending, then stops the background thread; raises TimeoutError if that takes longer
        than `timeout` seconds (Reverb's mutate_priorities has no deadline of its own, and a server that stopped
        answering can hold it), leaving the thread to end on its own."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._lock.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(
                f"priority updates for table {self._table!r} at {self._client.server_address} not sent within "
                f"{timeout}s of close(): the server did not answer; they are dropped."
            )
        self._raise_error()

    def __enter__(self) -> "PriorityUpdater":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._closed or len(self._pending) >= self._batch_size, self._interval_secs)
                batch, self._pending = self._pending, {}
                self._in_flight = len(batch)
                closing = self._closed
            if batch:
                try:
                    self._client.mutate_priorities(self._table, updates=batch)
                except Exception as e:  # Kept for the caller: updates must not vanish silently.
                    with self._lock:
                        self._error = e
            with self._lock:
                self._in_flight = 0
                self._lock.notify_all()
                if closing and not self._pending:
                    return

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"sending priority updates to table {self._table!r} failed: {error}") from error
