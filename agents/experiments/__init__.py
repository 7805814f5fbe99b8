"""The experiment layer: any agent's Builder run in one process or as a distributed program.

Nothing here imports TensorFlow: node processes that unpickle a program stay light.
"""

from agents.experiments.config import EnvironmentFactory, ExperimentConfig
from agents.experiments.distributed import make_distributed_program, run_distributed, run_program
from agents.experiments.evaluation import evaluate, screen_then_evaluate
from agents.experiments.running import run_experiment
from agents.experiments.single_process import run_single_process

__all__ = [
    "EnvironmentFactory",
    "ExperimentConfig",
    "evaluate",
    "make_distributed_program",
    "run_distributed",
    "run_experiment",
    "run_program",
    "run_single_process",
    "screen_then_evaluate",
]
