"""Tabular Q-learning as a launch program: a coordinator node and `num_workers` worker nodes (numpy only)."""

import concurrent.futures
import logging
import threading
import time
from typing import Optional, Set

import numpy as np

import launch as lp
from agents.experiments.config import ExperimentConfig
from agents.tabular import learning
from agents.tabular.evaluation import Judge
from agents.tabular.model import make_model

# Calls to the coordinator fail after this long instead of waiting for it forever.
_CALL_TIMEOUT = {"call_timeout": 10.0}
# How often the coordinator judges the newest merged table at most (the judging costs about a millisecond).
_JUDGE_SECONDS = 0.05
# How long an exchange waits at most for the slowest worker (see TabularConfig.max_lead): a worker being
# restarted does not hold the others for longer.
_LEAD_WAIT_SECONDS = 1.0
# How long a worker whose exchange failed waits for the program's stop before the failure counts.
_STOPPING_SECONDS = 5.0
# How often a worker waiting for the coordinator checks whether the program stops.
_STOP_POLL_SECONDS = 0.1
# How long one call of a starting worker waits for the others.
_START_WAIT_SECONDS = 1.0
_NODE_DOWN_ERRORS = (ConnectionError, TimeoutError, lp.RemoteError)


class CoordinatorNode:
    """Merges the workers' tables as they exchange them (`exchange`), judges the newest merged table, and stops
    the program when its greedy policy is optimal or the budget is spent (or writes the result of a stop from
    outside)."""

    def __init__(self, experiment: ExperimentConfig):
        config = experiment.builder.config
        self._model = make_model(experiment.env_name)
        partition = learning.make_run_partition(config, experiment.env_name, self._model)
        self._coordinator = learning.Coordinator(config.mode, partition, self._model.num_actions, config.num_workers)
        self._max_lead = config.max_lead
        self._lead_waits = [0.0] * config.num_workers  # Per worker (whose exchanges come one at a time): seconds.
        self._experiment = experiment
        self._num_workers = config.num_workers
        self._registered: Set[int] = set()
        self._started = threading.Condition()
        self._startup_seconds: Optional[float] = None

    def exchange(self, worker_id: int, rows, steps: int):
        """Merges worker `worker_id`'s rows (after `steps` more of its steps); returns the merged table once no
        more than `max_lead` exchanges ahead of the slowest worker."""
        self._coordinator.exchange(worker_id, rows, steps)
        started = time.monotonic()
        merged = self._coordinator.wait_for_slowest(worker_id, self._max_lead, _LEAD_WAIT_SECONDS)
        self._lead_waits[worker_id] += time.monotonic() - started
        return merged

    def start(self, worker_id: int):
        """Registers worker `worker_id`; the merged table once every worker has registered, or None if not all
        have within a short wait (call again). Workers start together, so that the first ones up neither take
        the cores the others need to start nor learn against blocks nobody learns yet."""
        with self._started:
            self._registered.add(worker_id)
            self._started.notify_all()
            if not self._started.wait_for(lambda: len(self._registered) == self._num_workers, _START_WAIT_SECONDS):
                return None
            if self._startup_seconds is None:
                self._startup_seconds = time.time() - self._experiment.start_time
        return self._coordinator.latest()[2]

    def run(self) -> None:
        # Here, not in __init__: the workers exchange with this node's server while value iteration and the
        # logger's imports (a quarter of a second) run.
        judge = Judge(self._experiment, self._model)
        stop = lp.stop_event()
        judged = steps = 0
        stopped_by = None
        while stopped_by is None and not stop.is_set():
            if self._coordinator.wait_for_change(judged, _JUDGE_SECONDS) == judged:
                stopped_by = "budget" if self._experiment.out_of_budget(steps) else None
                continue
            judged, steps, table = self._coordinator.latest()
            stopped_by = judge.judge(table, steps, judged)
            stop.wait(_JUDGE_SECONDS)  # At most this often: judging newer tables as fast as they come wastes a core.
        self._coordinator.end_waits()
        version, steps, table = self._coordinator.latest()
        if version != judged:  # Exchanges since the last judging: judge the table that is saved.
            judge.judge(table, steps, version)
        judge.finish(
            stopped_by or "user",
            table,
            steps,
            version,
            startup_seconds=self._startup_seconds,
            lead_wait_seconds=sum(self._lead_waits),
        )
        if stopped_by is not None:
            lp.stop()


class WorkerNode:
    """One Q-learning worker: learns `merge_steps` steps, exchanges its rows for the merged table, repeats."""

    def __init__(self, experiment: ExperimentConfig, worker_id: int, coordinator):
        config = experiment.builder.config
        model = make_model(experiment.env_name)
        self._coordinator = coordinator
        self._worker_id = worker_id
        self._merge_period = config.merge_steps
        self._worker = learning.make_worker(config, experiment.env_name, model, worker_id, experiment.seed)

    def run(self) -> None:
        stop = lp.stop_event()
        try:
            merged = None
            while merged is None and not stop.is_set():
                merged = self._call(stop, "start", self._worker_id)
            while merged is not None:
                self._worker.adopt(merged)  # At the start all zeros, unless this worker was restarted.
                self._worker.run(self._merge_period)
                merged = self._call(stop, "exchange", self._worker_id, self._worker.own_rows(), self._merge_period)
        except _NODE_DOWN_ERRORS as error:
            if not stop.wait(_STOPPING_SECONDS):  # The coordinator went down without the program stopping.
                raise
            logging.debug("The coordinator stopped first: %s", error)

    def _call(self, stop: threading.Event, method: str, *args) -> Optional[np.ndarray]:
        """The coordinator's answer, or None once the program stops (a call to a coordinator that stopped can
        otherwise wait out its whole timeout)."""
        future = getattr(self._coordinator.futures, method)(*args)
        while True:
            try:
                return future.result(timeout=_STOP_POLL_SECONDS)
            except concurrent.futures.TimeoutError:
                if stop.is_set():
                    future.cancel()
                    return None


def make_program(experiment: ExperimentConfig) -> lp.Program:
    """A coordinator and `num_workers` workers (one in single mode). The coordinator holds the only merged
    table, so it is not restarted; a restarted worker starts from the merged table."""
    config = experiment.builder.config
    program = lp.Program(f"tabular_{config.mode}")
    coordinator = program.add_node(
        lp.CourierNode(CoordinatorNode, experiment, courier_client_kwargs=_CALL_TIMEOUT),
        label="coordinator",
        max_restarts=0,
    )
    for worker_id in range(config.num_workers):
        program.add_node(
            lp.PyClassNode(WorkerNode, experiment, worker_id, coordinator),
            label="worker",
            max_restarts=experiment.max_restarts,
        )
    return program
