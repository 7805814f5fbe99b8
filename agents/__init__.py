"""Encore agents: Acme-style core interfaces, environments, utilities and agents."""

from agents.core import Actor, EnvironmentLoop, Learner, Saveable, VariableSource, Worker

__all__ = ["Actor", "EnvironmentLoop", "Learner", "Saveable", "VariableSource", "Worker"]
