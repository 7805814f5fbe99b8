"""Tabular Q-learning hyperparameters."""

import dataclasses

from agents.config_checks import check_ranges
from agents.tabular.partition import PARTITIONS

MODES = ("single", "partitioned", "averaged")
# merge_period=0: how many of its steps a worker takes between exchanges. Partitioned, values cross block borders
# once per merge: Taxi-v4 K=5 needed a median ~92k env steps with 250, ~96k with 500, ~101k with 1000 and ~140k
# with 2000 (synchronous rounds, seeds 10-29), and 250 with max_lead=1 also beat 500 and 100 distributed (seeds
# 10-17, loaded machine). Averaged, each merge dilutes a worker's updates with the others' older copies: 250 (with
# max_lead=1) took Taxi-v4 K=5 a median 1.6M env steps (seeds 0-4) where 1000 (no lead bound) had taken 756k (both
# with epsilon 0.2; with 0.7, synchronous rounds: 180k with 1000, 177.5k with 500 and with 250). With one worker
# a merge only judges the table (about a millisecond): 1000 keeps that under 5% of its time.
_PARTITIONED_MERGE_PERIOD = 250
_MERGE_PERIOD = 1000
# epsilon<0: the behaviour policy's random-action probability. Several workers explore more. Partitioned, their
# segments are short (they end on leaving the block) and the merge needs every row of a block right, not the rows
# along greedy paths: Taxi-v4 K=5 (synchronous rounds, seeds 10-29) needed a median 92k env steps with 0.2, 75k
# with 0.3, 63k with 0.5, 60k with 0.6, 57k with 0.7, 61k with 0.8 and 70k with 1.0 (worst seed 152k with 0.2, 81k
# with 0.7); K=2 255k with 0.2 and 79k with 0.7; FrozenLake8x8-v1 K=5 (seeds 0-4) 443k with 0.2 and 348k with 0.7.
# Averaged, Taxi-v4 K=5 needed 1.42M with 0.2 and 185k with 0.7 (seeds 10-17; seeds 0-4: 1.15M with 0.2, 285k
# with 0.5, 180k with 0.7, 290k with 1.0). One learner keeps the conventional 0.2: it is the baseline the other
# modes are measured against (with 0.7 it needs 98k, with 1.0 88k; benchmarks/tabular_parallel.py reports it with
# 1.0 too).
_SEVERAL_WORKERS_EPSILON = 0.7
_ONE_LEARNER_EPSILON = 0.2


@dataclasses.dataclass
class TabularConfig:
    """Q-learning on a table of states x actions, by one worker or by `num_workers` at the same time.

    Modes: `single` (one learner), `partitioned` (worker k owns the rows of block k of `partition` and learns
    only them; a coordinator merges the blocks row-wise) and `averaged` (every worker learns every row; the
    coordinator averages their tables). Workers exchange their table with the coordinator every
    `merge_period` of their own steps (0: 250 for several partitioned workers, else 1000; see `merge_steps`). Segments
    start in a uniformly drawn state of the worker's block (exploring starts) and end at termination, at the time
    limit, or (partitioned) on leaving the block.
    Distributed, a worker that has exchanged `max_lead` times more than the slowest worker waits for it (at most a
    second) before it takes the merged table back: workers that get more of the cores would otherwise spend steps
    on blocks that are learned while a slower one holds the others back (stale-synchronous parallel; a large
    value: fully asynchronous). Single-process runs merge in synchronous rounds.
    A step's action is uniformly random with probability `epsilon` (negative: 0.7 for several workers, 0.2 for
    one; see `exploration_rate`), else greedy.
    The step size of the n-th update of (s, a) is learning_rate / n ** learning_rate_power; a negative power means
    0 in a deterministic environment (Taxi, CliffWalking: every target is exact, so the first update is the last
    one needed) and 0.5 in a stochastic one (slippery FrozenLake: targets must be averaged).
    """

    mode: str = "single"
    num_workers: int = 1
    partition: str = "auto"
    merge_period: int = 0
    max_lead: int = 1
    discount: float = 0.99
    learning_rate: float = 1.0
    learning_rate_power: float = -1.0
    epsilon: float = -1.0

    def __post_init__(self):
        more = []
        if self.mode not in MODES:
            more.append(f"mode must be one of {', '.join(MODES)} (got {self.mode!r})")
        if self.mode == "single" and self.num_workers != 1:
            more.append(
                f"mode=single has one worker (got num_workers={self.num_workers}); use mode=partitioned or "
                "mode=averaged for several"
            )
        if self.partition not in PARTITIONS:
            more.append(f"partition must be one of {', '.join(PARTITIONS)} (got {self.partition!r})")
        if self.epsilon > 1:
            more.append(f"epsilon must be in [0, 1], or negative for the automatic choice (got {self.epsilon})")
        if not 0 <= self.discount < 1:
            more.append(f"discount must be in [0, 1) (got {self.discount})")
        check_ranges(
            self,
            at_least_one=("num_workers",),
            positive=("learning_rate",),
            non_negative=("merge_period", "max_lead"),
            more=more,
        )

    @property
    def merge_steps(self) -> int:
        """The steps a worker takes between exchanges: `merge_period`, or its automatic value when that is 0."""
        if self.merge_period:
            return self.merge_period
        partitioned = self.mode == "partitioned" and self.num_workers > 1
        return _PARTITIONED_MERGE_PERIOD if partitioned else _MERGE_PERIOD

    @property
    def exploration_rate(self) -> float:
        """The probability of a uniformly random action: `epsilon`, or its automatic value when that is negative."""
        if self.epsilon >= 0:
            return self.epsilon
        return _SEVERAL_WORKERS_EPSILON if self.num_workers > 1 else _ONE_LEARNER_EPSILON
