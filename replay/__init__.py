"""Encore replay: everything between an actor's environment step and a learner's batch, on Reverb.

Names are imported on first use: `replay.EnvironmentSpec` and `replay.make_environment_spec` need only
dm_env, so a node that acts in numpy never imports TensorFlow; every other name imports TensorFlow and
Reverb (once, with the CPU-only plugin noise filtered).
"""

import importlib

_EXPORTS = {
    "tables": None,
    "DEFAULT_PRIORITY_TABLE": "adders",
    "Adder": "adders",
    "AdderClosedError": "adders",
    "EndBehavior": "adders",
    "EpisodeAdder": "adders",
    "NStepTransitionAdder": "adders",
    "SequenceAdder": "adders",
    "make_dataset": "datasets",
    "make_numpy_iterator": "datasets",
    "PriorityUpdater": "priorities",
    "InterleavedSamples": "shards",
    "ShardedPriorityUpdater": "shards",
    "ReplayServer": "server",
    "server_info": "_server_info",
    "import_tensorflow": "_quiet_tensorflow",
    "EnvironmentSpec": "specs",
    "Step": "specs",
    "Transition": "specs",
    "make_environment_spec": "specs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'replay' has no attribute {name!r}")
    module = _EXPORTS[name]
    if module is None:
        return importlib.import_module(f"replay.{name}")
    return getattr(importlib.import_module(f"replay.{module}"), name)


def __dir__():
    return __all__
