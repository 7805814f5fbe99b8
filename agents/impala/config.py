"""IMPALA hyperparameters."""

import dataclasses
from typing import Tuple

from agents.config_checks import check_ranges


@dataclasses.dataclass
class IMPALAConfig:
    """Hyperparameters of IMPALA: actors write sequences of their own policy into a FIFO queue; one learner
    consumes each sequence once and corrects for the policy lag with V-trace (Espeholt et al. 2018).

    The defaults are tuned for CartPole-v1 on a 2-core machine (see the README's IMPALA benchmark).
    """

    # Network: a shared MLP torso, then policy logits and a value.
    hidden_sizes: Tuple[int, ...] = (64, 64)

    # Learning.
    # High, with small batches: each frame is learned from once. With gamma 0.98 and reward_scale 0.1 (seeds 10-13,
    # single process, median env steps to solve): 5e-3: 13,700; 1e-2: 27,000 (batch 4) and 27,200 (batch 8).
    learning_rate: float = 5e-3
    # Gamma; multiplies the environment's discount (0 at a termination). 0.99 with reward_scale 0.05 (the same
    # largest return, 5) against 0.98 with 0.1, single process: seeds 10-15 median 9,700 vs 13,000 env steps to
    # solve, seeds 0-2 10,600 vs 25,200; 0.99 with 0.1: 20,800 (seeds 10-13).
    discount: float = 0.99
    # Rewards are multiplied by this in the loss (CartPole's 1 per step becomes 0.05). The torso is shared, so
    # value targets in the tens (CartPole: up to 1 / (1 - gamma) = 100) make it grow features that also scale the
    # logits: unscaled, the policy turned deterministic within ~100 learner steps and single-process runs took
    # ~90,000 env steps to solve (1 seed of 4 never). Single process, gamma 0.98, seeds 10-13, median env steps
    # to solve: 0.02: 16,000; 0.05: 18,900; 0.1: 13,700; 0.2: 26,500 (gamma 0.99: see discount).
    reward_scale: float = 0.05
    # Sequences per learner step: small, for many updates per frame. Single process (as lr): 2: 11,400;
    # 4: 13,700; 8: 18,800. Distributed under load 15-24, 2 left the learner behind (queue full 35-42% of the
    # time, 2 of 4 seeds unsolved in 90 s) where 4 kept the queue full < 10%.
    batch_size: int = 4
    baseline_cost: float = 0.5  # The value loss is baseline_cost * (v_s - V)^2.
    entropy_cost: float = 0.01  # The loss subtracts entropy_cost * the policy's entropy (a bonus).
    max_gradient_norm: float = 40.0
    clip_rho_threshold: float = 1.0  # rho-bar
    clip_pg_rho_threshold: float = 1.0  # rho-bar of the policy-gradient advantages
    clip_c_threshold: float = 1.0  # c-bar
    vtrace_lambda: float = 1.0

    # Replay: sequences of `sequence_length` steps every `sequence_period` steps (overlapping by one step, which
    # only bootstraps) in a queue of `max_queue_size` sequences.
    replay_table_name: str = "queue"
    sequence_length: int = 20
    sequence_period: int = 19
    max_queue_size: int = 64
    prefetch_size: int = 1  # Batches the learner's dataset holds ready (more: staler data).

    # Acting.
    variable_update_period: int = 20  # Actor steps between parameter polls (polls run in the background).
    publish_period: int = 1  # Learner steps between parameter publications.

    def replace(self, **changes) -> "IMPALAConfig":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def __post_init__(self):
        self.hidden_sizes = tuple(self.hidden_sizes)
        more = []
        if self.sequence_length < 2:
            more.append(f"sequence_length must be >= 2 (got {self.sequence_length}): the last step only bootstraps")
        if any(size < 1 for size in self.hidden_sizes):
            more.append(f"hidden_sizes must all be >= 1 (got {self.hidden_sizes})")
        if self.sequence_period > self.sequence_length:
            more.append(
                f"sequence_period ({self.sequence_period}) must be <= sequence_length ({self.sequence_length}), "
                "or steps between sequences are never learned from"
            )
        check_ranges(
            self,
            at_least_one=(
                "batch_size",
                "max_queue_size",
                "prefetch_size",
                "sequence_period",
                "variable_update_period",
                "publish_period",
            ),
            positive=(
                "learning_rate",
                "reward_scale",
                "max_gradient_norm",
                "clip_rho_threshold",
                "clip_pg_rho_threshold",
                "clip_c_threshold",
            ),
            unit_interval=("discount", "vtrace_lambda"),
            non_negative=("baseline_cost", "entropy_cost"),
            more=more,
        )
        # One error on its own: the queue's size is the setting most likely to be mistaken for a memory knob.
        check_queue_size(self.max_queue_size, self.batch_size)


def check_queue_size(max_queue_size: int, batch_size: int) -> None:
    """Refuses a queue that could deadlock: the learner takes `batch_size` sequences at a time and an actor can
    write two sequences on an episode's last step (the periodic one and the padded end), so the queue must hold
    at least batch_size + 2."""
    needed = batch_size + 2
    if max_queue_size < needed:
        raise ValueError(
            f"IMPALAConfig: max_queue_size ({max_queue_size}) must be >= batch_size + 2 ({needed}): the learner "
            "waits for a full batch while actors, which can write two sequences on an episode's last step, wait "
            f"for room in the queue. Set max_queue_size={needed} or more (e.g. --config max_queue_size="
            f"{max(needed, 4 * batch_size)}), or lower batch_size."
        )
