"""batched_handler: groups concurrent calls of a method into one batched call."""

import datetime
import functools
import inspect
import threading
from typing import Any, Callable, List, Optional, Union

import numpy as np


def _stack(values: List[Any]) -> Any:
    first = values[0]
    if isinstance(first, dict):
        return type(first)((key, _stack([v[key] for v in values])) for key in first)
    if isinstance(first, tuple):
        parts = [_stack([v[i] for v in values]) for i in range(len(first))]
        return type(first)(*parts) if hasattr(first, "_fields") else tuple(parts)
    if isinstance(first, (np.ndarray, list, np.generic)):
        return np.stack([np.asarray(v) for v in values])
    return list(values)


def _unstack(batched: Any, size: int) -> List[Any]:
    if isinstance(batched, dict):
        columns = {key: _unstack(value, size) for key, value in batched.items()}
        return [type(batched)((key, columns[key][i]) for key in batched) for i in range(size)]
    if isinstance(batched, tuple):
        columns = [_unstack(value, size) for value in batched]
        rows = [[column[i] for column in columns] for i in range(size)]
        if hasattr(batched, "_fields"):
            return [type(batched)(*row) for row in rows]
        return [tuple(row) for row in rows]
    if len(batched) < size:
        raise ValueError(
            f"A batched handler returned {len(batched)} results for a batch of {size}; "
            "it must return one result per call (batch-major)."
        )
    return [batched[i] for i in range(size)]


class _Call:
    def __init__(self, args: tuple, kwargs: dict):
        self.args = args
        self.kwargs = kwargs
        self.done = threading.Event()
        self.result: Any = None
        self.error: Optional[BaseException] = None


class _Batcher:
    """Collects calls until `batch_size` arrive or `timeout` passes, then runs them as one."""

    def __init__(
        self, func: Callable[..., Any], batch_size: int, timeout_secs: float, max_parallelism: int, pad_batch: bool
    ):
        self._func = func
        self._batch_size = batch_size
        self._timeout_secs = timeout_secs
        self._pad_batch = pad_batch
        self._lock = threading.Lock()
        self._pending: List[_Call] = []
        self._generation = 0
        # Flushes a partial batch after the timeout; cancelled when the batch is taken.
        self._timer: Optional[threading.Timer] = None
        self._slots = threading.Semaphore(max_parallelism)

    def __call__(self, *args, **kwargs) -> Any:
        call = _Call(args, kwargs)
        with self._lock:
            self._pending.append(call)
            if len(self._pending) >= self._batch_size:
                batch = self._take()
            else:
                batch = None
                if len(self._pending) == 1:
                    self._timer = threading.Timer(self._timeout_secs, self._flush, (self._generation,))
                    self._timer.daemon = True
                    self._timer.start()
        if batch is not None:
            self._run(batch)
        call.done.wait()
        if call.error is not None:
            raise call.error
        return call.result

    def _take(self) -> List[_Call]:
        batch, self._pending = self._pending, []
        self._generation += 1
        if self._timer is not None:  # Its thread ends now instead of sleeping out the timeout.
            self._timer.cancel()
            self._timer = None
        return batch

    def _flush(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation or not self._pending:
                return
            batch = self._take()
        self._run(batch)

    def _run(self, batch: List[_Call]) -> None:
        calls = list(batch)
        if self._pad_batch:
            calls += [batch[-1]] * (self._batch_size - len(batch))
        with self._slots:
            try:
                first = calls[0]
                if any(len(c.args) != len(first.args) or c.kwargs.keys() != first.kwargs.keys() for c in calls):
                    raise TypeError("All calls of a batched handler must pass the same arguments.")
                args = [_stack([c.args[i] for c in calls]) for i in range(len(first.args))]
                kwargs = {key: _stack([c.kwargs[key] for c in calls]) for key in first.kwargs}
                results = _unstack(self._func(*args, **kwargs), len(calls))
            except Exception as e:
                for call in batch:
                    call.error = e
                    call.done.set()
                return
        for call, result in zip(batch, results):
            call.result = result
            call.done.set()


def batched_handler(
    batch_size: int,
    max_parallelism: int = 1,
    timeout: Union[datetime.timedelta, float] = datetime.timedelta(milliseconds=200),
    pad_batch: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Makes concurrent calls of a method run as batches of up to `batch_size`.

    Arrays and lists gain a leading batch dimension, dicts and tuples are batched per entry,
    other values become lists; the method returns batch-major results, one per call. Wrap
    bound methods in `__init__` (`self.f = lp.batched_handler(8)(self.f)`), as in Launchpad.
    A CourierNode sizes its serving threads so that a full batch can always gather.
    """
    if batch_size < 1 or max_parallelism < 1:
        raise ValueError(f"batch_size ({batch_size}) and max_parallelism ({max_parallelism}) must be >= 1.")
    timeout_secs = timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else timeout

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        params = list(inspect.signature(func).parameters)
        if params and params[0] == "self" and not hasattr(func, "__self__"):
            raise TypeError(
                "Do not decorate methods with batched_handler; wrap the bound method in "
                "__init__: self.f = batched_handler(...)(self.f)."
            )
        batcher = _Batcher(func, batch_size, timeout_secs, max_parallelism, pad_batch)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            return batcher(*args, **kwargs)

        wrapper._batch_size = batch_size
        wrapper._max_parallelism = max_parallelism
        return wrapper

    return decorate
