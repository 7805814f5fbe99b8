"""Agent utilities: loggers, counting, variable publication, checkpoints, plots."""

from agents.utils.checkpointing import Checkpointer
from agents.utils.counting import Counter
from agents.utils.loggers import (CSVLogger, Dispatcher, InMemoryLogger, Logger, NoOpLogger,
                                  TensorBoardLogger, TerminalLogger, TimeFilter, TimestampLogger,
                                  make_logger)
from agents.utils.plotting import plot_learning_curve, read_csv_log
from agents.utils.run_files import make_run_dir, read_json, write_json
from agents.utils.variables import VariableClient, VariableServer

__all__ = [
    "CSVLogger", "Checkpointer", "Counter", "Dispatcher", "InMemoryLogger", "Logger", "NoOpLogger",
    "TensorBoardLogger", "TerminalLogger", "TimeFilter", "TimestampLogger", "VariableClient",
    "VariableServer", "make_logger", "make_run_dir", "plot_learning_curve", "read_csv_log",
    "read_json", "write_json",
]
