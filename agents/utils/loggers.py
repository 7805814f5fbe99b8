"""Loggers: write rows of scalars to the terminal, CSV files and TensorBoard."""

import abc
import csv
import math
import numbers
import os
import socket
import time
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

import numpy as np

LoggingData = Mapping[str, Any]


def _to_scalar(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _format(value: Any) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.3f}" if abs(value) < 1e5 else f"{value:.3g}"
    if isinstance(value, float):
        return str(int(value))
    return str(value)


class Logger(abc.ABC):
    """Receives rows of named values."""

    @abc.abstractmethod
    def write(self, data: LoggingData) -> None:
        """Writes one row."""

    def wants_row(self) -> bool:
        """Whether a row written now would be kept (a filter may drop it): lets a writer skip computing it."""
        return True

    def close(self) -> None:
        """Releases any resources."""


class NoOpLogger(Logger):
    """Drops everything."""

    def write(self, data: LoggingData) -> None:
        pass


class InMemoryLogger(Logger):
    """Keeps every row in `self.data`."""

    def __init__(self):
        self.data = []

    def write(self, data: LoggingData) -> None:
        self.data.append({k: _to_scalar(v) for k, v in data.items()})


class TerminalLogger(Logger):
    """Prints each row as `[Label] key = value | key = value`."""

    def __init__(self, label: str = "", print_fn: Callable[[str], None] = print):
        self._prefix = f"[{label.replace('_', ' ').title()}] " if label else ""
        self._print_fn = print_fn

    def write(self, data: LoggingData) -> None:
        fields = " | ".join(
            f"{k.replace('_', ' ').title()} = {_format(_to_scalar(v))}" for k, v in sorted(data.items())
        )
        self._print_fn(self._prefix + fields)


class CSVLogger(Logger):
    """Appends rows to `directory/label.csv`; columns are fixed by the first row."""

    def __init__(self, directory: str, label: str):
        os.makedirs(directory, exist_ok=True)
        self.file_path = os.path.join(directory, f"{label}.csv")
        self._file = open(self.file_path, "a", newline="", encoding="utf-8")
        self._writer: Optional[csv.DictWriter] = None

    def write(self, data: LoggingData) -> None:
        row = {k: _to_scalar(v) for k, v in data.items()}
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=list(row), extrasaction="ignore")
            if self._file.tell() == 0:
                self._writer.writeheader()
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class TensorBoardLogger(Logger):
    """Writes the numeric values of each row as TensorBoard scalars `label/key` under `directory/label`.

    The step is the row's `steps_key` value when present, else the row index. Bookkeeping fields (the
    timestamp, ids) are not learning signals and stay out. Written in TensorBoard's event-file format without
    TensorFlow: no TensorFlow import in numpy nodes, and microseconds rather than milliseconds per row.
    """

    def __init__(self, directory: str, label: str, steps_key: Optional[str] = None):
        # TensorBoard's record format and protos only: its EventFileWriter would import TensorFlow (for
        # tf.io.gfile) and start a writer thread.
        from tensorboard.compat.proto import event_pb2, summary_pb2  # pylint: disable=import-outside-toplevel
        from tensorboard.summary.writer.record_writer import RecordWriter  # pylint: disable=import-outside-toplevel

        self._event, self._summary = event_pb2.Event, summary_pb2.Summary
        log_dir = os.path.join(directory, label)
        os.makedirs(log_dir, exist_ok=True)
        # TensorBoard reads every file whose name contains "tfevents"; the pid keeps restarted nodes' files apart.
        file_name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}"
        self._writer = RecordWriter(open(os.path.join(log_dir, file_name), "wb"))
        self._writer.write(self._event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
        self._label = label
        self._steps_key = steps_key
        self._row = 0

    def write(self, data: LoggingData) -> None:
        step = int(_to_scalar(data.get(self._steps_key, self._row))) if self._steps_key else self._row
        values = [
            self._summary.Value(tag=f"{self._label}/{key}", simple_value=float(value))
            for key, value in ((key, _to_scalar(value)) for key, value in data.items())
            if key != self._steps_key and not _is_bookkeeping(key) and isinstance(value, numbers.Real)
        ]
        if values:
            event = self._event(wall_time=time.time(), step=step, summary=self._summary(value=values))
            self._writer.write(event.SerializeToString())
            self._writer.flush()
        self._row += 1

    def close(self) -> None:
        self._writer.close()


def _is_bookkeeping(key: str) -> bool:
    return key == "timestamp" or key.endswith("_id")


class Dispatcher(Logger):
    """Writes each row to several loggers."""

    def __init__(self, loggers: Sequence[Logger]):
        self._loggers = list(loggers)

    def write(self, data: LoggingData) -> None:
        for logger in self._loggers:
            logger.write(data)

    def close(self) -> None:
        for logger in self._loggers:
            logger.close()


class TimeFilter(Logger):
    """Passes on at most one row every `time_delta` seconds."""

    def __init__(self, logger: Logger, time_delta: float):
        self._logger = logger
        self._time_delta = time_delta
        self._last = -math.inf

    def wants_row(self) -> bool:
        return time.monotonic() - self._last >= self._time_delta

    def write(self, data: LoggingData) -> None:
        now = time.monotonic()
        if now - self._last >= self._time_delta:
            self._last = now
            self._logger.write(data)

    def close(self) -> None:
        self._logger.close()


class TimestampLogger(Logger):
    """Adds the wall-clock `timestamp` (seconds since the epoch) to every row."""

    def __init__(self, logger: Logger):
        self._logger = logger

    def write(self, data: LoggingData) -> None:
        row: Dict[str, Any] = {"timestamp": time.time()}
        row.update(data)
        self._logger.write(row)

    def close(self) -> None:
        self._logger.close()


def make_logger(
    label: str,
    run_dir: Optional[str] = None,
    *,
    terminal: bool = True,
    tensorboard: bool = True,
    time_delta: float = 0.0,
    steps_key: Optional[str] = None,
    print_fn: Callable[[str], None] = print,
) -> Logger:
    """The default logger: terminal, plus CSV (run_dir/logs) and TensorBoard (run_dir/tb).

    Every row gets a `timestamp` (in the CSV, not TensorBoard). Rows closer than `time_delta` seconds to the
    previous one are dropped.
    """
    loggers = []
    if terminal:
        loggers.append(TerminalLogger(label, print_fn=print_fn))
    if run_dir is not None:
        loggers.append(CSVLogger(os.path.join(run_dir, "logs"), label))
        if tensorboard:
            loggers.append(TensorBoardLogger(os.path.join(run_dir, "tb"), label, steps_key))
    logger: Logger = TimestampLogger(Dispatcher(loggers))
    if time_delta > 0:
        logger = TimeFilter(logger, time_delta)
    return logger
