"""The experiment layer: any agent's Builder run in one process or as a distributed program.

Heavy modules are imported on first use, so that node processes unpickling a program stay light.
"""

import importlib

_EXPORTS = {
    "EnvironmentFactory": "config", "ExperimentConfig": "config",
    "evaluate": "evaluation", "screen_then_evaluate": "evaluation",
    "make_distributed_program": "distributed", "run_distributed": "distributed",
    "run_single_process": "single_process",
    "run_experiment": "running",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'agents.experiments' has no attribute {name!r}")
    return getattr(importlib.import_module(f"agents.experiments.{_EXPORTS[name]}"), name)


def __dir__():
    return __all__
