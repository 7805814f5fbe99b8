"""Adders: write environment steps into Reverb tables as transitions, sequences or episodes."""

from replay.adders.base import (
    DEFAULT_PRIORITY_TABLE,
    Adder,
    AdderClosedError,
    PriorityFn,
    PriorityFnMapping,
    ReverbAdder,
)
from replay.adders.episode import EpisodeAdder
from replay.adders.sequence import EndBehavior, SequenceAdder
from replay.adders.transition import NStepTransitionAdder

__all__ = [
    "Adder",
    "AdderClosedError",
    "DEFAULT_PRIORITY_TABLE",
    "EndBehavior",
    "EpisodeAdder",
    "NStepTransitionAdder",
    "PriorityFn",
    "PriorityFnMapping",
    "ReverbAdder",
    "SequenceAdder",
]
