"""The experiment layer: any agent's Builder run in one process or as a distributed program.

Nothing here imports TensorFlow: node processes that unpickle a program stay light.
"""

from agents.experiments.config import EnvironmentFactory, ExperimentConfig
from agents.experiments.distributed import check_learners, make_distributed_program, run_distributed, run_program
from agents.experiments.evaluation import Evaluations, evaluate, solve_check
from agents.experiments.running import run_experiment
from agents.experiments.single_process import check_repeatable, run_single_process

__all__ = [
    "check_learners",
    "check_repeatable",
    "EnvironmentFactory",
    "Evaluations",
    "ExperimentConfig",
    "evaluate",
    "make_distributed_program",
    "run_distributed",
    "run_experiment",
    "run_program",
    "run_single_process",
    "solve_check",
]
