"""Encore agents: Acme-style core interfaces, environments, utilities and agents."""

from agents.core import (
    Actor,
    ActorSettings,
    Builder,
    Counting,
    EnvironmentLoop,
    GenericActor,
    Learner,
    ParameterPublisher,
    ParameterSource,
    ProgramBuilder,
    Saveable,
    VariableClientLike,
    VariableSource,
    Worker,
)

__all__ = [
    "Actor",
    "ActorSettings",
    "Builder",
    "Counting",
    "EnvironmentLoop",
    "GenericActor",
    "Learner",
    "ParameterPublisher",
    "ParameterSource",
    "ProgramBuilder",
    "Saveable",
    "VariableClientLike",
    "VariableSource",
    "Worker",
]
