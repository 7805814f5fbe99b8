"""A learner input that outlives replay's rate-limiter timeouts and ends when its program stops."""

from typing import Any, Callable, Iterator


class StoppableIterator:
    """Iterates `make_iterator()`, starting it over whenever it ends because sampling stayed blocked for its
    timeout; once `should_stop()` holds, the next such end raises StopIteration instead.

    The timeout is what lets a learner that waits for data notice a stop within a second.
    """

    def __init__(self, make_iterator: Callable[[], Iterator[Any]], should_stop: Callable[[], bool]):
        import replay  # Only learners, which import TensorFlow anyway.

        replay.import_tensorflow()  # Before TensorFlow's first import: without its CPU-only plugin noise.
        import tensorflow as tf

        self._timeouts = (tf.errors.OutOfRangeError, tf.errors.DeadlineExceededError)
        self._make_iterator = make_iterator
        self._should_stop = should_stop
        self._iterator = make_iterator()

    def __iter__(self) -> "StoppableIterator":
        return self

    def __next__(self) -> Any:
        while True:
            try:
                return next(self._iterator)
            except (StopIteration, *self._timeouts):
                if self._should_stop():
                    raise StopIteration from None
                self._iterator = self._make_iterator()
