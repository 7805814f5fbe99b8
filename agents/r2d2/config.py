"""R2D2 hyperparameters."""

import dataclasses
from typing import Tuple

from agents.config_checks import check_ranges


@dataclasses.dataclass
class R2D2Config:
    """Hyperparameters of R2D2 (Kapturowski et al. 2019): an LSTM Q-network learned from prioritized replay of
    overlapping sequences that start from the actor's stored recurrent state.

    The defaults are tuned for CartPoleNoVel-v1 (CartPole without the velocities) on a 2-core machine. The
    sequence layout differs from Acme's Atari one (burn-in 40, trace 80, period 40) because this task needs
    little memory: two observations give both velocities, so a short burn-in refreshes a stale stored state,
    and short traces keep the learner's step cheap (it unrolls online and target networks over the whole
    sequence) so that it takes many updates per second; the period of half a trace puts every step after the
    first burn-in into two traces. Learning rate 3e-3, batch 16 and a target copy every 50 steps came out of a
    sweep on this task (distributed, 2 actors): with 1e-3 and batch 32 runs needed ~95,000 env steps, with these
    26,000-58,000.
    """

    # Network: MLP torso -> LSTM -> (dueling) Q head.
    hidden_sizes: Tuple[int, ...] = (64,)
    lstm_size: int = 64
    dueling: bool = True

    # Sequences: `burn_in` steps that only refresh the stored state, `trace_length` learned steps, one more row
    # to bootstrap from; a new sequence every `sequence_period` steps.
    burn_in: int = 4
    trace_length: int = 16
    sequence_period: int = 8

    # Learning.
    learning_rate: float = 3e-3
    discount: float = 0.99
    n_step: int = 5
    batch_size: int = 16  # Sequences per gradient step.
    target_update_period: int = 50  # Gradient steps between target-network copies.
    max_gradient_norm: float = 10.0
    value_rescaling_epsilon: float = 1e-3  # The eps of h(x) = sign(x)(sqrt(|x| + 1) - 1) + eps x.
    importance_sampling_exponent: float = 0.6
    max_priority_weight: float = 0.9  # A sequence's priority: eta max|td| + (1 - eta) mean|td|.

    # Replay (sizes in sequences).
    replay_table_name: str = "priority_table"  # replay.DEFAULT_PRIORITY_TABLE
    max_replay_size: int = 5_000
    min_replay_size: int = 64
    samples_per_insert: float = 4.0  # Times each sequence is sampled, on average.
    samples_per_insert_tolerance: float = 0.2
    priority_exponent: float = 0.9
    prefetch_size: int = 2

    # Acting.
    epsilon_start: float = 0.5  # Single-process linear epsilon decay (distributed uses the Ape-X ladder).
    epsilon_end: float = 0.05
    epsilon_decay_steps: int = 10_000
    variable_update_period: int = 50  # Actor steps between parameter polls.
    publish_period: int = 10  # Gradient steps between parameter publications.

    @property
    def sequence_length(self) -> int:
        """Rows of one replayed sequence: burn-in, trace, and the row the trace's last step bootstraps from."""
        return self.burn_in + self.trace_length + 1

    def replace(self, **changes) -> "R2D2Config":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def __post_init__(self):
        self.hidden_sizes = tuple(self.hidden_sizes)
        more = []
        if any(size < 1 for size in self.hidden_sizes):
            more.append(f"hidden_sizes must all be >= 1 (got {self.hidden_sizes})")
        if self.burn_in < 0:
            more.append(f"burn_in must be >= 0 (got {self.burn_in})")
        if self.sequence_period > self.trace_length:
            more.append(
                f"sequence_period ({self.sequence_period}) must be <= trace_length ({self.trace_length}), or steps "
                "between traces are never learned from"
            )
        if self.min_replay_size > self.max_replay_size:
            more.append(f"min_replay_size ({self.min_replay_size}) must be <= max_replay_size ({self.max_replay_size})")
        check_ranges(
            self,
            at_least_one=(
                "lstm_size",
                "trace_length",
                "sequence_period",
                "n_step",
                "batch_size",
                "target_update_period",
                "max_replay_size",
                "min_replay_size",
                "prefetch_size",
                "epsilon_decay_steps",
                "variable_update_period",
                "publish_period",
            ),
            positive=("learning_rate", "samples_per_insert", "max_gradient_norm", "value_rescaling_epsilon"),
            unit_interval=(
                "discount",
                "importance_sampling_exponent",
                "max_priority_weight",
                "epsilon_start",
                "epsilon_end",
            ),
            non_negative=("samples_per_insert_tolerance", "priority_exponent"),
            more=more,
        )
