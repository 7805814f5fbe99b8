"""DQN (Ape-X style) hyperparameters."""

import dataclasses
from typing import Tuple

from agents.config_checks import check_ranges


@dataclasses.dataclass
class DQNConfig:
    """Hyperparameters of double DQN on prioritized n-step replay.

    The defaults are tuned for CartPole-v1 (a small MLP, a short replay warm-up
    and few learner steps per insert) on a 2-core machine.

    `num_learners` > 1 (distributed runs only): that many learner nodes sample the same table and push each
    minibatch's gradient to a parameter server, which applies it with Adam (one set of moments for all learners)
    and publishes the parameters; asynchronously (each push applied as it arrives) or, with
    `synchronous_learners`, as the mean of one push from every learner per update.
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
    # Average number of times each transition is sampled: 1/8 gradient step of 64 per env step. 16 (one per 4
    # env steps) solved CartPole-v1 in no fewer env steps in either mode and halved the distributed actors' pace:
    # the learner's sampling, not its gradients, bounds it (see README, "The main job").
    samples_per_insert: float = 8.0
    samples_per_insert_tolerance: float = 0.2
    priority_exponent: float = 0.6
    prefetch_size: int = 4

    # Acting.
    epsilon_start: float = 0.5  # Single-process linear epsilon decay (distributed uses the ladder).
    epsilon_end: float = 0.1
    epsilon_decay_steps: int = 2_000
    apex_epsilon_base: float = 0.4  # Distributed actor i of N: base ** (1 + alpha * i / (N - 1)) (Ape-X).
    apex_epsilon_alpha: float = 7.0
    variable_update_period: int = 100  # Actor steps between parameter polls.
    publish_period: int = 10  # Gradient steps between parameter publications.

    # Learners (see the class docstring).
    num_learners: int = 1
    synchronous_learners: bool = False

    def replace(self, **changes) -> "DQNConfig":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def __post_init__(self):
        self.hidden_sizes = tuple(self.hidden_sizes)
        more = []
        if any(size < 1 for size in self.hidden_sizes):
            more.append(f"hidden_sizes must all be >= 1 (got {self.hidden_sizes})")
        if self.min_replay_size > self.max_replay_size:
            more.append(f"min_replay_size ({self.min_replay_size}) must be <= max_replay_size ({self.max_replay_size})")
        if self.synchronous_learners and self.num_learners == 1:
            more.append("synchronous_learners=true needs num_learners > 1 (one learner has no one to wait for)")
        check_ranges(
            self,
            at_least_one=(
                "n_step",
                "batch_size",
                "num_sgd_steps_per_step",
                "target_update_period",
                "max_replay_size",
                "prefetch_size",
                "epsilon_decay_steps",
                "variable_update_period",
                "publish_period",
                "num_learners",
            ),
            positive=("learning_rate", "samples_per_insert", "huber_delta"),
            unit_interval=(
                "discount",
                "importance_sampling_exponent",
                "epsilon_start",
                "epsilon_end",
                "apex_epsilon_base",
            ),
            non_negative=("min_replay_size", "samples_per_insert_tolerance", "priority_exponent", "apex_epsilon_alpha"),
            more=more,
        )
