"""The workers' Q-learning and the coordinator's merge: plain objects, run in one process or as launch nodes."""

import random
import threading
from typing import Dict, Tuple

import gymnasium
import numpy as np

from agents.tabular.config import TabularConfig
from agents.tabular.model import TabularModel
from agents.tabular.partition import Partition, make_partition

# The step-size power of TabularConfig's automatic choice in a stochastic environment.
_STOCHASTIC_LEARNING_RATE_POWER = 0.5


class QLearningWorker:
    """Q-learning that updates only the rows of `owned_states`, in segments that start in one of them.

    The table holds every row: the worker's own, and the others' as the coordinator last merged them. A step
    that leaves the owned states bootstraps from that merged row and ends the segment, so every update reads
    the freshest values the worker has (block-asynchronous Q-learning). The environment is stepped through
    `env.unwrapped`, whose state an exploring start sets directly; the time limit is kept here.
    """

    def __init__(
        self, env: gymnasium.Env, model: TabularModel, owned_states: np.ndarray, config: TabularConfig, seed: int
    ):
        self._env = env.unwrapped
        env.reset(seed=seed)  # Seeds the environment's own generator, which samples its transitions.
        self._rng = random.Random(seed)
        self.q = np.zeros((model.num_states, model.num_actions))
        self.owned_states = np.asarray(owned_states, np.int64)
        self._owned = np.zeros(model.num_states, bool)
        self._owned[self.owned_states] = True
        starts = np.setdiff1d(self.owned_states, model.absorbing_states)
        self._starts = (starts if starts.size else self.owned_states).tolist()
        self._counts = np.zeros((model.num_states, model.num_actions), np.int64)
        self._config = config
        self._power = config.learning_rate_power
        if self._power < 0:
            self._power = 0.0 if model.deterministic else _STOCHASTIC_LEARNING_RATE_POWER
        self._time_limit = model.time_limit
        self._state = -1  # -1: the next step starts a segment.
        self._segment_steps = 0
        self.steps = 0

    def run(self, num_steps: int) -> None:
        """Takes `num_steps` environment steps, updating Q after each; a segment in progress continues."""
        q, counts, owned, env, rng = self.q, self._counts, self._owned, self._env, self._rng
        discount, epsilon = self._config.discount, self._config.exploration_rate
        learning_rate, power = self._config.learning_rate, self._power
        num_actions, starts, time_limit = q.shape[1], self._starts, self._time_limit
        state, segment_steps = self._state, self._segment_steps
        for _ in range(num_steps):
            if state < 0:
                state = starts[rng.randrange(len(starts))]
                env.s = state
                segment_steps = 0
            if rng.random() < epsilon:
                action = rng.randrange(num_actions)
            else:
                action = int(q[state].argmax())
            next_state, reward, terminated, _, _ = env.step(action)
            counts[state, action] += 1
            target = reward if terminated else reward + discount * q[next_state].max()
            step_size = learning_rate if power == 0 else learning_rate / counts[state, action] ** power
            q[state, action] += step_size * (target - q[state, action])
            segment_steps += 1
            if terminated or not owned[next_state] or segment_steps >= time_limit:
                state = -1
            else:
                state = next_state
        self._state, self._segment_steps = state, segment_steps
        self.steps += num_steps

    def own_rows(self) -> np.ndarray:
        """A copy of the rows this worker learns, in the order of `owned_states`."""
        return self.q[self.owned_states]

    def adopt(self, merged: np.ndarray) -> None:
        """Takes the coordinator's merged table (its own rows there are the ones it just sent)."""
        self.q[...] = merged


class Coordinator:
    """Merges the workers' tables: row-wise (each worker's rows replace that block's rows, so no worker changes
    another's) when `mode` is partitioned or single, by averaging the latest table of each worker when
    averaged. Thread-safe: workers exchange concurrently."""

    def __init__(self, mode: str, partition: Partition, num_actions: int, num_workers: int):
        self._mode = mode
        self._partition = partition
        num_states = partition.owner.size
        self._merged = np.zeros((num_states, num_actions))
        self._tables: Dict[int, np.ndarray] = {}
        self._exchanges = [0] * num_workers  # Per worker: how many times it exchanged.
        self._waits_ended = False
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.version = 0
        self.steps = 0

    def rows_of(self, worker_id: int) -> np.ndarray:
        """The states whose rows worker `worker_id` sends."""
        return worker_rows(self._mode, self._partition, worker_id)

    def exchange(self, worker_id: int, rows: np.ndarray, steps: int) -> np.ndarray:
        """Merges `rows` (worker `worker_id`'s rows, as `rows_of` orders them, after `steps` more steps of it) and
        returns the merged table."""
        states = self.rows_of(worker_id)
        rows = np.asarray(rows, float)
        expected = (states.size, self._merged.shape[1])
        if rows.shape != expected:
            raise ValueError(f"worker {worker_id} sent rows of shape {rows.shape}; its block needs {expected}.")
        with self._lock:
            if self._mode == "averaged":
                self._tables[worker_id] = rows
                self._merged = np.mean(list(self._tables.values()), axis=0)
            else:
                self._merged[states] = rows
            self.version += 1
            self.steps += steps
            self._exchanges[worker_id] += 1
            self._changed.notify_all()
            return self._merged.copy()

    def wait_for_slowest(self, worker_id: int, max_lead: int, timeout: float) -> np.ndarray:
        """Waits up to `timeout` seconds until worker `worker_id` has exchanged at most `max_lead` times more than
        the worker that exchanged least; returns the merged table then."""
        with self._changed:
            self._changed.wait_for(
                lambda: self._waits_ended or self._exchanges[worker_id] - min(self._exchanges) <= max_lead, timeout
            )
            return self._merged.copy()

    def latest(self) -> Tuple[int, int, np.ndarray]:
        """(version, total steps merged, a copy of the merged table)."""
        with self._lock:
            return self.version, self.steps, self._merged.copy()

    def end_waits(self) -> None:
        """Ends every wait for the slowest worker, now and later (the program stops)."""
        with self._changed:
            self._waits_ended = True
            self._changed.notify_all()

    def wait_for_change(self, version: int, timeout: float) -> int:
        """Waits up to `timeout` seconds for a version newer than `version`; returns the current version."""
        with self._changed:
            self._changed.wait_for(lambda: self.version != version, timeout)
            return self.version


def worker_rows(mode: str, partition: Partition, worker_id: int) -> np.ndarray:
    """The states whose rows worker `worker_id` learns and sends: its block when partitioned, all of them when
    tables are averaged."""
    if mode == "averaged":
        return np.arange(partition.owner.size)
    return partition.blocks[worker_id]


def make_run_partition(config: TabularConfig, env_name: str, model: TabularModel) -> Partition:
    """The blocks of a run: `config.partition`'s when partitioned, else one block of every state."""
    num_blocks = config.num_workers if config.mode == "partitioned" else 1
    return make_partition(config.partition, env_name, model.num_states, num_blocks)


def make_worker(
    config: TabularConfig, env_name: str, model: TabularModel, worker_id: int, seed: int
) -> QLearningWorker:
    """Worker `worker_id` of a run seeded `seed` (worker k draws from seed + k: a single learner and the one worker
    of partitioned K=1 take the same steps)."""
    rows = worker_rows(config.mode, make_run_partition(config, env_name, model), worker_id)
    return QLearningWorker(gymnasium.make(env_name), model, rows, config, seed + worker_id)
