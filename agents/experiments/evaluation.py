"""Greedy evaluations: a full one every `eval_every` actor steps (the learning curve), and cheap solve checks."""

import time
from typing import Any, Dict, List, Optional, Tuple

import dm_env
import numpy as np

from agents import core, utils
from agents.experiments.config import ExperimentConfig


def evaluate(environment: dm_env.Environment, actor: core.Actor, num_episodes: int) -> float:
    """Mean undiscounted return of `actor` over `num_episodes` episodes."""
    return float(np.mean([_episode_return(environment, actor) for _ in range(num_episodes)]))


def solve_check(
    environment: dm_env.Environment,
    actor: core.Actor,
    num_episodes: int,
    target: float,
    max_return: Optional[float] = None,
) -> Tuple[float, Optional[float], bool]:
    """One screening episode, then `num_episodes` more only if it reached `target`.

    Screening keeps checks cheap while the policy is far from solving. The evaluation after it ends early once
    `max_return` per remaining episode could no longer lift the mean to `target`; such a partial mean is not an
    evaluation, so it comes back as None. Returns (screen return, mean of the full evaluation or None, solved).
    """
    screen_return = _episode_return(environment, actor)
    if screen_return < target:
        return screen_return, None, False
    returns: List[float] = []
    for episode in range(num_episodes):
        if max_return is not None and sum(returns) + (num_episodes - episode) * max_return < target * num_episodes:
            return screen_return, None, False
        returns.append(_episode_return(environment, actor))
    mean_return = float(np.mean(returns))
    return screen_return, mean_return, mean_return >= target


def _episode_return(environment: dm_env.Environment, actor: core.Actor) -> float:
    timestep = environment.reset()
    actor.observe_first(timestep)  # A recurrent actor resets its state here (an evaluation actor records nothing).
    total = 0.0
    while not timestep.last():
        timestep = environment.step(actor.select_action(timestep.observation))
        total += float(np.sum(timestep.reward))
    return total


class Evaluations:
    """The evaluations of one run, for the evaluator node and the single-process loop alike.

    A full greedy evaluation of `eval_episodes` episodes runs at the first call after every `eval_every` actor
    steps; its mean is the learning curve's `eval_return`. With `stop_when_solved`, a call at least
    `solve_check_every` actor steps after the previous check runs a solve check (a screening episode, then a full
    evaluation only if it reached the threshold), so a run stops soon after it solves; `due` says whether a call
    would evaluate. Each row goes to `logger`: `eval_return` only from full evaluations, the screening
    episode's return as `screen_return`.
    """

    def __init__(self, experiment: ExperimentConfig, environment: dm_env.Environment, actor: core.Actor, logger):
        self._experiment = experiment
        self._environment = environment
        self._actor = actor
        self._logger = logger
        self._next_full = experiment.eval_every
        self._next_check = 0
        self.eval_return: Optional[float] = None  # Of the latest full evaluation.
        self.eval_actor_steps: Optional[int] = None
        self.solved_at: Optional[Dict[str, float]] = None  # The first full evaluation at or above the threshold.

    def resume(self, actor_steps: int) -> None:
        """A run continued at `actor_steps` evaluates at the next multiple of eval_every."""
        self._next_full = (actor_steps // self._experiment.eval_every + 1) * self._experiment.eval_every

    def _checks_solving(self) -> bool:
        return self._experiment.stop_when_solved and self._experiment.solved_return is not None

    def due(self, actor_steps: int) -> bool:
        """Whether `run` at `actor_steps` would evaluate (a full evaluation or a solve check)."""
        return actor_steps >= self._next_full or (self._checks_solving() and actor_steps >= self._next_check)

    def run(self, counts: Dict[str, Any], parameter_version: int) -> bool:
        """Evaluates the actor's current parameters if due; True once the run is solved and should stop."""
        experiment = self._experiment
        actor_steps = int(counts.get("actor_steps", 0))
        screen_return = mean_return = None
        if actor_steps >= self._next_full:
            self._next_full = (actor_steps // experiment.eval_every + 1) * experiment.eval_every
            self._next_check = actor_steps + experiment.solve_check_every
            mean_return = evaluate(self._environment, self._actor, experiment.eval_episodes)
        elif self._checks_solving() and actor_steps >= self._next_check:
            self._next_check = actor_steps + experiment.solve_check_every
            screen_return, mean_return, _ = solve_check(
                self._environment,
                self._actor,
                experiment.eval_episodes,
                experiment.solved_return,
                experiment.max_return,
            )
        else:
            return False
        if mean_return is not None:
            self.eval_return, self.eval_actor_steps = mean_return, actor_steps
            solved = experiment.solved_return is not None and mean_return >= experiment.solved_return
            if solved and self.solved_at is None:
                self.solved_at = {"actor_steps": actor_steps, "seconds": time.time() - experiment.start_time}
        self._logger.write(
            {
                "actor_steps": actor_steps,
                "learner_steps": int(counts.get("learner_steps", 0)),
                "parameter_version": parameter_version,
                "screen_return": float("nan") if screen_return is None else screen_return,
                "eval_return": float("nan") if mean_return is None else mean_return,
            }
        )
        return experiment.stop_when_solved and self.solved_at is not None

    def final(self, counts: Dict[str, Any], parameter_version: int) -> None:
        """At the end of a run that ran out of budget: a full evaluation of the final parameters, unless the
        latest full evaluation was of this very step."""
        if self.eval_actor_steps != int(counts.get("actor_steps", 0)):
            self._next_full = 0
            self.run(counts, parameter_version)

    def result_fields(self) -> Dict[str, Any]:
        """What result.json says about the evaluations."""
        return {
            "solved": self.solved_at is not None,
            "eval_return": self.eval_return,
            "eval_actor_steps": self.eval_actor_steps,
            "solved_at_actor_steps": None if self.solved_at is None else self.solved_at["actor_steps"],
            "solved_at_seconds": None if self.solved_at is None else self.solved_at["seconds"],
        }


def make_evaluator_logger(experiment: ExperimentConfig) -> "utils.Logger":
    """The evaluator's CSV and TensorBoard log, its x axis the actor steps."""
    return utils.make_logger("evaluator", experiment.run_dir, terminal=experiment.verbose, steps_key="actor_steps")
