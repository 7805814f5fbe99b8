"""DQN (Ape-X style) hyperparameters."""

import dataclasses
from typing import Tuple


@dataclasses.dataclass
class DQNConfig:
    """Hyperparameters of double DQN on prioritized n-step replay.

    The defaults are tuned for CartPole-v1 (a small MLP, a short replay warm-up
    and few learner steps per insert) on a 2-core machine.
    """

    # Network.
    hidden_sizes: Tuple[int, ...] = (64, 64)
    dueling: bool = False

    # Learning.
    learning_rate: float = 2e-3
    discount: float = 0.99
    n_step: int = 3
    batch_size: int = 64
    num_sgd_steps_per_step: int = 4  # Minibatches per sampled batch; each gets its own gradient step.
    target_update_period: int = 100  # Gradient steps between target-network copies.
    huber_delta: float = 1.0
    max_gradient_norm: float = 10.0
    importance_sampling_exponent: float = 0.4  # Beta of prioritized replay.

    # Replay.
    replay_table_name: str = "priority_table"  # replay.DEFAULT_PRIORITY_TABLE
    max_replay_size: int = 50_000
    min_replay_size: int = 500
    samples_per_insert: float = 16.0  # Average number of times each transition is sampled.
    samples_per_insert_tolerance: float = 0.2
    priority_exponent: float = 0.6
    prefetch_size: int = 4

    # Acting.
    epsilon_start: float = 0.5  # Single-process linear epsilon decay (distributed uses the ladder).
    epsilon_end: float = 0.1
    epsilon_decay_steps: int = 2_000
    variable_update_period: int = 100  # Actor steps between parameter polls.
    publish_period: int = 10  # Gradient steps between parameter publications.

    # Evaluation.
    eval_episodes: int = 10

    def replace(self, **changes) -> "DQNConfig":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def __post_init__(self):
        if self.n_step < 1:
            raise ValueError(f"n_step must be >= 1 (got {self.n_step}).")
        if not 0.0 <= self.discount <= 1.0:
            raise ValueError(f"discount must be in [0, 1] (got {self.discount}).")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (got {self.batch_size}).")
        if self.num_sgd_steps_per_step < 1:
            raise ValueError(f"num_sgd_steps_per_step must be >= 1 (got {self.num_sgd_steps_per_step}).")
        if self.min_replay_size > self.max_replay_size:
            raise ValueError(f"min_replay_size ({self.min_replay_size}) must be <= max_replay_size "
                             f"({self.max_replay_size}).")
        self.hidden_sizes = tuple(self.hidden_sizes)
