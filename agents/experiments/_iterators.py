"""A learner input that outlives replay's rate-limiter timeouts and restarts, and ends when its program stops."""

import time
from typing import Any, Callable, Iterator, Optional

# Between attempts to reach a replay server that does not answer.
_RETRY_SECONDS = 0.5


class StoppableIterator:
    """Iterates `make_iterator()`, starting it over whenever it ends because sampling stayed blocked for its
    timeout; once `should_stop()` holds, the next such end raises StopIteration instead.

    The timeout is what lets a learner that waits for data notice a stop within a second. A replay server that
    does not answer (killed, and restarting on the same address) is retried for up to `reconnect_seconds`, then
    the error is raised; the first iterator is made at the first `next()` (or `element_spec`), and a replay that
    does not answer then leaves it for later, so a learner can start while replay restarts.
    """

    def __init__(
        self,
        make_iterator: Callable[[], Iterator[Any]],
        should_stop: Callable[[], bool],
        reconnect_seconds: float = 60.0,
    ):
        import replay  # Only learners, which import TensorFlow anyway.

        replay.import_tensorflow()  # Before TensorFlow's first import: without its CPU-only plugin noise.
        import tensorflow as tf

        self._timeouts = (tf.errors.OutOfRangeError, tf.errors.DeadlineExceededError)
        # make_dataset raises ConnectionError when no server answers; a dataset whose server went away mid-stream
        # raises UnavailableError.
        self._unavailable = (ConnectionError, tf.errors.UnavailableError)
        self._make_iterator = make_iterator
        self._should_stop = should_stop
        self._reconnect_seconds = reconnect_seconds
        self._iterator: Optional[Iterator[Any]] = None
        self._unavailable_since: Optional[float] = None

    def __iter__(self) -> "StoppableIterator":
        return self

    @property
    def element_spec(self) -> Any:
        """The spec of the items (a tf.data iterator's), making the iterator now if need be, so that a learner can
        trace its step before it publishes parameters and actors start writing; None if replay does not answer (the
        first `next()` keeps retrying) or the iterator states no spec."""
        if self._iterator is None:
            try:
                self._iterator = self._make_iterator()
            except self._unavailable:
                return None
        return getattr(self._iterator, "element_spec", None)

    def __next__(self) -> Any:
        while True:
            try:
                if self._iterator is None:
                    self._iterator = self._make_iterator()
                item = next(self._iterator)
                self._unavailable_since = None
                return item
            except (StopIteration, *self._timeouts):
                if self._should_stop():
                    raise StopIteration from None
                self._iterator = None
            except self._unavailable as error:
                now = time.monotonic()
                if self._unavailable_since is None:
                    self._unavailable_since = now
                if now - self._unavailable_since >= self._reconnect_seconds:
                    raise ConnectionError(
                        f"replay did not answer for {self._reconnect_seconds:g}s; the learner gives up: {error}"
                    ) from error
                if self._should_stop():
                    raise StopIteration from None
                self._iterator = None
                time.sleep(_RETRY_SECONDS)
