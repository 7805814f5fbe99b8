"""What one experiment is: an agent's builder, an environment, a seed, budgets, evaluation and a run directory."""

import dataclasses
import time
from typing import Callable, Optional, Union

import dm_env

from agents import core, envs

EnvironmentFactory = Callable[[int], dm_env.Environment]  # seed -> environment


@dataclasses.dataclass
class ExperimentConfig:
    """Everything the experiment layer needs to run `builder` single-process or distributed (a ProgramBuilder
    assembles both itself, from the same fields).

    `environment_factory` defaults to `agents.envs.make_environment(env_name, seed)`; `solved_return` and
    `max_return` (an upper bound on one episode's return, to end hopeless evaluations early) default to
    the values `agents.envs` knows for `env_name`. Budgets: `max_seconds` counts from `start_time`,
    `max_actor_steps` counts every actor step of the run (a resumed run continues the count).
    A full greedy evaluation of `eval_episodes` episodes runs every `eval_every` actor steps (the learning
    curve); with `stop_when_solved` the run also checks cheaply for solving every `solve_check_every` actor steps
    in between and ends once solved, without it trains to its budget. `checkpoint_seconds` is the period of the
    learner, counter and replay checkpoints: what a crash loses. `deterministic` (single process only): the
    same seed gives the same run.
    `max_restarts`: how many times each node of the distributed program is started again after it fails or is
    killed (it keeps its address and restores its latest checkpoint).
    `num_replay_shards` (distributed only): replay split over that many servers with identical tables; actor i
    writes to shard i mod K, the learner samples from all of them in turn and sends each priority update to the
    shard that holds the item; each shard rate-limits and checkpoints (run_dir/replay/shard_K) on its own.
    """

    builder: Union[core.Builder, core.ProgramBuilder]
    run_dir: str
    env_name: str = "CartPole-v1"
    environment_factory: Optional[EnvironmentFactory] = None
    seed: int = 0
    max_seconds: Optional[float] = None
    max_actor_steps: Optional[int] = None
    eval_episodes: int = 10
    eval_every: int = 5_000
    stop_when_solved: bool = True
    # The SB3 baselines of benchmarks/time_to_solve.py check every 500 env steps too. Checking every new
    # parameter version instead made the evaluator a third actor on 2 cores for agents that publish every step.
    solve_check_every: int = 500
    deterministic: bool = False
    solved_return: Optional[float] = None
    max_return: Optional[float] = None
    checkpoint_seconds: float = 60.0
    max_restarts: int = 3
    num_replay_shards: int = 1
    start_time: float = dataclasses.field(default_factory=time.time)
    verbose: bool = False

    def __post_init__(self):
        if self.solved_return is None:
            self.solved_return = envs.solved_return(self.env_name)
        if self.max_return is None:
            self.max_return = envs.max_return(self.env_name)
        problems = []
        if self.max_seconds is not None and not self.max_seconds > 0:
            problems.append(f"max_seconds must be > 0 (got {self.max_seconds})")
        if self.max_actor_steps is not None and self.max_actor_steps < 1:
            problems.append(f"max_actor_steps must be >= 1 (got {self.max_actor_steps})")
        if self.eval_episodes < 1:
            problems.append(f"eval_episodes must be >= 1 (got {self.eval_episodes})")
        if self.eval_every < 1:
            problems.append(f"eval_every must be >= 1 actor step (got {self.eval_every})")
        if self.solve_check_every < 1:
            problems.append(f"solve_check_every must be >= 1 actor step (got {self.solve_check_every})")
        if not self.checkpoint_seconds > 0:
            problems.append(f"checkpoint_seconds must be > 0 (got {self.checkpoint_seconds})")
        if self.max_restarts < 0:
            problems.append(f"max_restarts must be >= 0 (got {self.max_restarts})")
        if not isinstance(self.num_replay_shards, int) or self.num_replay_shards < 1:
            problems.append(f"num_replay_shards must be an integer >= 1 (got {self.num_replay_shards!r})")
        if problems:
            raise ValueError("ExperimentConfig: " + "; ".join(problems) + ".")

    def check_replay_shards(self, num_actors: int, single_process: bool) -> None:
        """Raises a ValueError if `num_replay_shards` cannot apply to this way of running the experiment."""
        shards = self.num_replay_shards
        if shards == 1:
            return
        if single_process:
            raise ValueError(f"num_replay_shards={shards} is for distributed runs; a single process has one replay.")
        if isinstance(self.builder, core.ProgramBuilder):
            raise ValueError(
                f"num_replay_shards={shards}: {self.builder.name} assembles its own program, whose replay is not "
                "sharded; leave num_replay_shards at 1."
            )
        if num_actors < shards:
            raise ValueError(
                f"num_replay_shards={shards} needs at least as many actors (got {num_actors}): actor i writes to "
                "shard i mod K, so a shard without an actor would stay empty and hold the learner back."
            )

    def make_environment(self, seed: int) -> dm_env.Environment:
        if self.environment_factory is not None:
            return self.environment_factory(seed)
        return envs.make_environment(self.env_name, seed=seed)

    def out_of_budget(self, actor_steps: int) -> bool:
        return (self.max_seconds is not None and time.time() - self.start_time >= self.max_seconds) or (
            self.max_actor_steps is not None and actor_steps >= self.max_actor_steps
        )
