"""Run one experiment, single-process or distributed, and plot its learning curve."""

from typing import Any, Dict, Optional

from agents import core, utils
from agents.experiments.config import ExperimentConfig
from agents.experiments.distributed import run_distributed, run_program
from agents.experiments.single_process import run_single_process


def run_experiment(
    experiment: ExperimentConfig,
    *,
    num_actors: int = 2,
    launch_type: str = "local_mp",
    single_process: bool = False,
    launch_options: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Trains until solved or out of budget and returns result.json's contents; writes the run directory's
    learning_curve.png. `launch_options`: more arguments of lp.launch(), e.g. ray_address."""
    experiment.check_replay_shards(num_actors, single_process)
    builder = experiment.builder
    if isinstance(builder, core.ProgramBuilder):
        if single_process:
            workers = {"num_actors": num_actors} if builder.uses_num_actors else {}
            result = dict(builder.run_single_process(experiment, **workers))
        else:
            program = builder.make_program(experiment, num_actors)
            result = run_program(experiment, program, launch_type, launch_options)
    elif single_process:
        result = run_single_process(experiment)
    else:
        result = run_distributed(
            experiment, num_actors=num_actors, launch_type=launch_type, launch_options=launch_options
        )
    utils.plot_learning_curve(
        experiment.run_dir,
        start_time=experiment.start_time,
        title=f"{experiment.builder.name} on {experiment.env_name}, seed {experiment.seed}",
        threshold=experiment.solved_return,
    )
    return result
