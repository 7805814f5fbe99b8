"""Tabular Q-learning hyperparameters."""

import dataclasses

from agents.config_checks import check_ranges
from agents.tabular.partition import PARTITIONS

MODES = ("single", "partitioned", "averaged")


@dataclasses.dataclass
class TabularConfig:
    """Q-learning on a table of states x actions, by one worker or by `num_workers` at the same time.

    Modes: `single` (one learner), `partitioned` (worker k owns the rows of block k of `partition` and learns
    only them; a coordinator merges the blocks row-wise) and `averaged` (every worker learns every row; the
    coordinator averages their tables). Workers exchange their table with the coordinator every
    `merge_period` of their own steps. Segments start in a uniformly drawn state of the worker's block (exploring
    starts) and end at termination, at the time limit, or (partitioned) on leaving the block.
    The step size of the n-th update of (s, a) is learning_rate / n ** learning_rate_power; a negative power means
    0 in a deterministic environment (Taxi, CliffWalking: every target is exact, so the first update is the last
    one needed) and 0.5 in a stochastic one (slippery FrozenLake: targets must be averaged).
    """

    mode: str = "single"
    num_workers: int = 1
    partition: str = "auto"
    merge_period: int = 1000
    discount: float = 0.99
    learning_rate: float = 1.0
    learning_rate_power: float = -1.0
    epsilon: float = 0.2

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
        if not 0 <= self.discount < 1:
            more.append(f"discount must be in [0, 1) (got {self.discount})")
        check_ranges(
            self,
            at_least_one=("num_workers", "merge_period"),
            positive=("learning_rate",),
            unit_interval=("epsilon",),
            more=more,
        )
