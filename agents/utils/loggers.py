"""Loggers: write rows of scalars to the terminal, CSV files and TensorBoard."""

import abc
import csv
import math
import numbers
import os
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
    """Writes numeric values as tf.summary scalars under `directory/label`.

    The step is the row's `steps_key` value when present, else the row index.
    """

    def __init__(self, directory: str, label: str, steps_key: Optional[str] = None):
        import replay  # Here, so that other loggers stay TF-free.

        replay.import_tensorflow()  # Before TensorFlow's first import: without its CPU-only plugin noise.
        import tensorflow as tf

        self._tf = tf
        self._writer = tf.summary.create_file_writer(os.path.join(directory, label))
        self._label = label
        self._steps_key = steps_key
        self._row = 0

    def write(self, data: LoggingData) -> None:
        step = int(_to_scalar(data.get(self._steps_key, self._row))) if self._steps_key else self._row
        with self._writer.as_default():
            for key, value in data.items():
                value = _to_scalar(value)
                if key != self._steps_key and isinstance(value, numbers.Real):
                    self._tf.summary.scalar(f"{self._label}/{key}", value, step=step)
        self._row += 1

    def close(self) -> None:
        self._writer.close()


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
    tensorboard_time_delta: float = 1.0,
    steps_key: Optional[str] = None,
    print_fn: Callable[[str], None] = print,
) -> Logger:
    """The default logger: terminal, plus CSV (run_dir/logs) and TensorBoard (run_dir/tb).

    Every row gets a `timestamp`. Rows closer than `time_delta` seconds to the
    previous one are dropped; TensorBoard, whose eager summary ops cost
    milliseconds per row, gets at most one row every `tensorboard_time_delta`.
    """
    loggers = []
    if terminal:
        loggers.append(TerminalLogger(label, print_fn=print_fn))
    if run_dir is not None:
        loggers.append(CSVLogger(os.path.join(run_dir, "logs"), label))
        if tensorboard:
            loggers.append(
                TimeFilter(TensorBoardLogger(os.path.join(run_dir, "tb"), label, steps_key), tensorboard_time_delta)
            )
    logger: Logger = TimestampLogger(Dispatcher(loggers))
    if time_delta > 0:
        logger = TimeFilter(logger, time_delta)
    return logger
