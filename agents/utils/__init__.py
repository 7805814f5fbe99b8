"""Agent utilities: loggers, counting, variable publication, checkpoints, plots, run files.

Checkpointer, ParameterServer and the losses (TensorFlow) and the plotting functions (matplotlib) are imported
on first use, so nodes that need neither start quickly.
"""

from agents.utils import run_files
from agents.utils.counting import Counter
from agents.utils.loggers import (
    CSVLogger,
    Dispatcher,
    InMemoryLogger,
    Logger,
    NoOpLogger,
    TensorBoardLogger,
    TerminalLogger,
    TimeFilter,
    TimestampLogger,
    make_logger,
)
from agents.utils.run_files import ProgressLine, make_run_dir, read_json, write_json, write_program_json
from agents.utils.variables import VariableClient, VariableServer

_LAZY = {
    "Checkpointer": "agents.utils.checkpointing",
    "ParameterServer": "agents.utils.parameter_server",
    "huber": "agents.utils.losses",
    "importance_weights": "agents.utils.losses",
    "plot_learning_curve": "agents.utils.plotting",
    "plot_sweep_curves": "agents.utils.plotting",
    "read_csv_log": "agents.utils.plotting",
}

__all__ = [
    "CSVLogger",
    "Checkpointer",
    "Counter",
    "Dispatcher",
    "InMemoryLogger",
    "Logger",
    "NoOpLogger",
    "ParameterServer",
    "ProgressLine",
    "TensorBoardLogger",
    "TerminalLogger",
    "TimeFilter",
    "TimestampLogger",
    "VariableClient",
    "VariableServer",
    "huber",
    "importance_weights",
    "make_logger",
    "make_run_dir",
    "plot_learning_curve",
    "plot_sweep_curves",
    "read_csv_log",
    "read_json",
    "run_files",
    "write_json",
    "write_program_json",
]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'agents.utils' has no attribute {name!r}")
    import importlib  # pylint: disable=import-outside-toplevel

    return getattr(importlib.import_module(_LAZY[name]), name)
