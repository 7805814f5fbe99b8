"""Judges merged tables against the exact oracle: logs the learning curve, prints progress, decides when a run
stops, and writes result.json and q_table.npy."""

import os
import time
from typing import Any, Callable, Dict, Optional

import numpy as np

from agents import utils
from agents.experiments.config import ExperimentConfig
from agents.tabular import model as tabular_model

_PROGRESS_SECONDS = 5.0


class Judge:
    """Evaluates each merged table it is shown: the exact expected return of its greedy policy (mean over start
    states, within the time limit) and whether that policy is optimal from every start state."""

    def __init__(
        self,
        experiment: ExperimentConfig,
        model: tabular_model.TabularModel,
        print_fn: Callable[[str], None] = print,
    ):
        self._experiment = experiment
        self.model = model
        self.solution = tabular_model.value_iteration(self.model, experiment.builder.config.discount)
        self.optimal_return = tabular_model.start_return(self.model, self.solution.returns)
        self._logger = utils.make_logger(
            "evaluator", experiment.run_dir, terminal=experiment.verbose, steps_key="actor_steps"
        )
        self._progress = utils.ProgressLine(experiment.start_time, print_fn)
        self._last_progress = time.monotonic()
        self.eval_return: Optional[float] = None
        self.optimal_at: Optional[Dict[str, Any]] = None  # Steps, seconds and merges when first optimal.

    def judge(self, table: np.ndarray, steps: int, merges: int) -> Optional[str]:
        """Logs the evaluation of `table` (merged `merges` times after `steps` environment steps in all); returns
        "solved" once its greedy policy is optimal (with the experiment's `stop_when_solved`) or "budget" when out
        of budget."""
        policy = tabular_model.greedy_policy(table)
        self.eval_return = tabular_model.start_return(self.model, tabular_model.policy_returns(self.model, policy))
        optimal = tabular_model.is_optimal(self.model, self.solution, policy)
        if optimal and self.optimal_at is None:
            seconds = time.time() - self._experiment.start_time
            self.optimal_at = {"steps": steps, "seconds": seconds, "merges": merges}
        self._logger.write(
            {
                "actor_steps": steps,
                "merges": merges,
                "eval_return": self.eval_return,
                "optimal_return": self.optimal_return,
                "optimal": int(optimal),
                "max_q_error": float(np.abs(table - self.solution.q).max()),
            }
        )
        if time.monotonic() - self._last_progress >= _PROGRESS_SECONDS:
            self._last_progress = time.monotonic()
            self._progress.show(steps, steps, None, self.eval_return)
        if optimal and self._experiment.stop_when_solved:
            return "solved"
        return "budget" if self._experiment.out_of_budget(steps) else None

    def finish(
        self,
        stopped_by: str,
        table: np.ndarray,
        steps: int,
        merges: int,
        startup_seconds: Optional[float] = None,
        lead_wait_seconds: Optional[float] = None,
    ) -> Dict[str, Any]:
        """Writes run_dir/q_table.npy (the merged table, states x actions) and run_dir/result.json; returns the
        result. `startup_seconds`: when the last worker started learning, since the run started;
        `lead_wait_seconds`: how long the workers' exchanges waited for the slowest worker, in all."""
        run_dir = self._experiment.run_dir
        np.save(os.path.join(run_dir, "q_table.npy"), table)
        optimal_at = self.optimal_at or {}
        result = {
            "solved": self.optimal_at is not None,
            "optimal": self.optimal_at is not None,
            "stopped_by": stopped_by,
            "wall_seconds": time.time() - self._experiment.start_time,
            "steps": optimal_at.get("steps"),  # Environment steps of all workers until optimal.
            "seconds": optimal_at.get("seconds"),  # Since the run started (process start-up included).
            "merges": merges,
            "startup_seconds": startup_seconds,
            "lead_wait_seconds": lead_wait_seconds,
            "solved_at_actor_steps": optimal_at.get("steps"),
            "eval_return": self.eval_return,
            "optimal_return": self.optimal_return,
            "max_q_error": float(np.abs(table - self.solution.q).max()),
            "actor_steps": steps,
            "learner_steps": steps,  # One Q update per environment step.
            "replay_size": None,
            "resumed_from": None,
        }
        utils.write_json(os.path.join(run_dir, "result.json"), result)
        self._progress.show(steps, steps, None, self.eval_return)
        self._logger.close()
        return result
