"""D4PG hyperparameters."""

import dataclasses
from typing import Any, Optional, Tuple

from agents.config_checks import check_ranges


@dataclasses.dataclass
class D4PGConfig:
    """Hyperparameters of D4PG (Barth-Maron et al. 2018): a deterministic policy trained through a categorical
    (distributional) critic on n-step transitions that many Gaussian-exploring actors write.

    The defaults are tuned for Pendulum-v1 on a 2-core machine (see the README's D4PG benchmark).

    The critic's support is `num_atoms` atoms on [v_min, v_max]. Left unset, each bound is the discounted sum of
    the largest per-step reward of that sign over an unbounded episode (Acme's rule, one-sided where rewards have
    one sign), from the environment's reward spec (agents.envs.REWARD_RANGES):
        Pendulum-v1               rewards in [-16.27, 0]  -> [-16.27 / (1 - discount), 0]   ([-1627, 0] at 0.99)
        MountainCarContinuous-v0  rewards in [-0.1, 100]  -> [-0.1 / (1 - discount), 100 / (1 - discount)]
                                  (loose: the +100 is paid once; v_max=100 gives a finer support)
    An environment without reward bounds needs v_min and v_max set.
    """

    # Networks: the policy is a layer-norm MLP ending in tanh scaled to the action bounds; the critic a layer-norm
    # MLP over (observation, action) with one logit per atom.
    policy_hidden_sizes: Tuple[int, ...] = (128, 128)
    critic_hidden_sizes: Tuple[int, ...] = (128, 128)
    num_atoms: int = 51
    v_min: Optional[float] = None
    v_max: Optional[float] = None

    # Learning.
    policy_learning_rate: float = 1e-3
    critic_learning_rate: float = 1e-3
    discount: float = 0.99
    n_step: int = 5
    batch_size: int = 128
    max_gradient_norm: float = 40.0  # Global-norm clipping of each network's gradients.
    dqda_clipping: float = 1.0  # |dQ/da| is clipped to this in the policy gradient (0: no clipping).
    target_update_period: int = 100  # Learner steps between target-network copies (when target_update_tau = 0).
    target_update_tau: float = 0.0  # > 0: Polyak averaging target += tau (online - target) every step instead.

    # Replay: a uniform table with FIFO eviction, or prioritized by the critic's loss.
    replay_table_name: str = "priority_table"  # replay.DEFAULT_PRIORITY_TABLE
    prioritized: bool = False
    priority_exponent: float = 0.6
    importance_sampling_exponent: float = 0.2
    max_replay_size: int = 1_000_000
    min_replay_size: int = 1_000
    # Average number of times each transition is sampled. Acme's 32 at batch 256 is one learner step per 8 actor
    # steps; 128 at batch 128 is one per actor step: on 2 cores the learner's steps bound the time to solve, so
    # each transition is learned from more (and the rate limiter holds actors back to match).
    samples_per_insert: float = 128.0
    samples_per_insert_tolerance: float = 0.1
    prefetch_size: int = 4

    # Acting: Gaussian noise of standard deviation sigma (in units of half the action range), from sigma_max for
    # the first actor to sigma_min for the last, geometrically (an Ape-X-style spread of exploration); one actor
    # (and the single-process actor) uses sigma_max.
    sigma_max: float = 0.3
    sigma_min: float = 0.05
    variable_update_period: int = 100  # Actor steps between parameter polls.
    publish_period: int = 10  # Learner steps between parameter publications.

    def value_range(self, environment_spec: Any) -> Tuple[float, float]:
        """(v_min, v_max): the fields when set, else from the bounds of the environment's reward spec (see above)."""
        if self.v_min is not None and self.v_max is not None:
            return self.v_min, self.v_max
        rewards = environment_spec.rewards
        if not hasattr(rewards, "minimum"):
            raise ValueError(
                "D4PG's critic needs a value range, and the environment's reward spec has no bounds to derive it "
                "from (agents.envs.REWARD_RANGES knows Pendulum-v1 and MountainCarContinuous-v0): pass "
                "--config v_min=... --config v_max=..."
            )
        if self.discount == 1:
            raise ValueError("D4PG derives v_min and v_max only for discount < 1: set them, or lower the discount.")
        horizon = 1.0 / (1.0 - self.discount)
        return min(float(rewards.minimum), 0.0) * horizon, max(float(rewards.maximum), 0.0) * horizon

    def replace(self, **changes) -> "D4PGConfig":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def __post_init__(self):
        self.policy_hidden_sizes = tuple(self.policy_hidden_sizes)
        self.critic_hidden_sizes = tuple(self.critic_hidden_sizes)
        more = []
        for name in ("policy_hidden_sizes", "critic_hidden_sizes"):
            sizes = getattr(self, name)
            if not sizes or any(size < 1 for size in sizes):
                more.append(f"{name} must be one or more sizes >= 1 (got {sizes})")
        if self.num_atoms < 2:
            more.append(f"num_atoms must be >= 2 (got {self.num_atoms})")
        if (self.v_min is None) != (self.v_max is None):
            more.append(f"set both v_min and v_max, or neither (got v_min={self.v_min}, v_max={self.v_max})")
        elif self.v_min is not None and not self.v_min < self.v_max:
            more.append(f"v_min ({self.v_min}) must be < v_max ({self.v_max})")
        if self.min_replay_size > self.max_replay_size:
            more.append(f"min_replay_size ({self.min_replay_size}) must be <= max_replay_size ({self.max_replay_size})")
        if self.sigma_min > self.sigma_max:
            more.append(f"sigma_min ({self.sigma_min}) must be <= sigma_max ({self.sigma_max})")
        check_ranges(
            self,
            at_least_one=(
                "n_step",
                "batch_size",
                "target_update_period",
                "max_replay_size",
                "min_replay_size",
                "prefetch_size",
                "variable_update_period",
                "publish_period",
            ),
            positive=("policy_learning_rate", "critic_learning_rate", "samples_per_insert", "max_gradient_norm"),
            unit_interval=("discount", "importance_sampling_exponent", "target_update_tau"),
            non_negative=(
                "dqda_clipping",
                "samples_per_insert_tolerance",
                "priority_exponent",
                "sigma_min",
                "sigma_max",
            ),
            more=more,
        )
