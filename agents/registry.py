"""The agents `python -m agents.run --agent NAME` knows: adding an agent is one line here."""

import importlib
from typing import Dict, Type, Union

from agents import core

AGENTS: Dict[str, str] = {
    "a2c": "agents.a3c.builder:A2CBuilder",
    "a3c": "agents.a3c.builder:A3CBuilder",
    "dqn": "agents.dqn.builder:DQNBuilder",
    "impala": "agents.impala.builder:IMPALABuilder",
    "tabular": "agents.tabular.builder:TabularBuilder",
    "d4pg": "agents.d4pg.builder:D4PGBuilder",
    "r2d2": "agents.r2d2.builder:R2D2Builder",
}


def builder_class(name: str) -> Type[Union[core.Builder, core.ProgramBuilder]]:
    """The Builder (or ProgramBuilder, for an agent that assembles its own nodes) subclass registered as `name`."""
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; the agents are: {', '.join(sorted(AGENTS))}.")
    module, attribute = AGENTS[name].split(":")
    return getattr(importlib.import_module(module), attribute)
