"""Encore replay: everything between an actor's environment step and a learner's batch, on Reverb."""

from replay._quiet_tensorflow import import_tensorflow as _import_tensorflow

_import_tensorflow()

from replay import tables  # noqa: E402
from replay.adders import (  # noqa: E402
    DEFAULT_PRIORITY_TABLE, Adder, AdderClosedError, EndBehavior, EpisodeAdder, NStepTransitionAdder, SequenceAdder)
from replay.datasets import make_dataset, make_numpy_iterator  # noqa: E402
from replay.priorities import PriorityUpdater  # noqa: E402
from replay.server import ReplayServer  # noqa: E402
from replay.specs import EnvironmentSpec, Step, Transition, make_environment_spec  # noqa: E402

__all__ = [
    "DEFAULT_PRIORITY_TABLE", "Adder", "AdderClosedError", "EndBehavior", "EnvironmentSpec", "EpisodeAdder", "NStepTransitionAdder",
    "PriorityUpdater", "ReplayServer", "SequenceAdder", "Step", "Transition", "make_dataset",
    "make_environment_spec", "make_numpy_iterator", "tables",
]
