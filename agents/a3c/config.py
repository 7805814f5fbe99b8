"""A3C and A2C hyperparameters: one worker, two update schemes."""

import dataclasses
from typing import Optional, Tuple

from agents.config_checks import check_ranges


@dataclasses.dataclass
class A3CConfig:
    """Advantage actor-critic workers that push gradients to a parameter server (Mnih et al. 2016).

    The defaults are tuned for CartPole-v1 on a 2-core machine (see the README's A3C/A2C benchmark).

    Each worker acts in `num_envs` environments with its copy of the parameters for `t_max` steps, computes the
    gradient of the n-step actor-critic loss on that rollout and pushes it; the server applies it with RMSProp
    (one set of statistics for all workers, as in the paper) and sends back the newest parameters.
    `synchronous`: the server waits for a push from every worker of a group (`num_workers / num_groups` workers)
    and applies their mean once (A2C); otherwise it applies each push as it arrives (A3C). A round whose workers
    have not all pushed within `barrier_timeout` seconds proceeds without them. `max_staleness`: drop pushes
    computed on parameters more than this many updates old (None: keep all).
    """

    # Network: a shared MLP torso, then policy logits and a value; each head has hidden layers of its own of
    # `head_hidden_sizes` (empty: linear heads on the torso). One shared 64 layer and a 64 layer per head, tanh,
    # orthogonal init: with SB3 A2C's settings (7e-4, value_cost 0.5, 8 envs) that solved tuning seeds 10-15 in a
    # median 15k env steps where the shared (64, 64) torso with linear heads solved none of 4 within 60k; ReLU
    # there took 36k (2 of 6 unsolved at 60k). The heads' own layers keep most of the value loss's gradient out
    # of the policy's features.
    hidden_sizes: Tuple[int, ...] = (64,)
    head_hidden_sizes: Tuple[int, ...] = (64,)
    activation: str = "tanh"  # Every hidden layer's: "relu" or "tanh".
    # Orthogonal weights (gains sqrt(2), 0.01 for the policy head, 1 for the value head), else Glorot-uniform.
    orthogonal_init: bool = True

    # Rollouts and loss.
    num_envs: int = 4  # Environments each worker steps in lockstep; a rollout holds t_max x num_envs steps.
    t_max: int = 5  # Steps per rollout before a gradient is pushed (n of the n-step returns).
    discount: float = 0.99
    value_cost: float = 0.25  # The value loss is value_cost * (R - V)^2 (its gradient reaches the shared torso).
    # The loss subtracts entropy_cost * the policy's entropy (a bonus). 0, as rl-zoo's A2C on CartPole-v1: 0.01
    # solved 1 of 4 tuning seeds within 40k env steps where 0 solved 3 of 4 (tanh torso, 3e-3, 8 envs): the
    # near-uniform initial policy explores enough on CartPole, and the bonus only slows its sharpening.
    entropy_cost: float = 0.0
    # The server clips each update's gradient to this global norm: A3C's push, A2C's mean of a round (as SB3 clips
    # its batch's). Clipping each push before A2C's mean instead took a median 8.8k env steps to solve (16 tuning
    # seeds, 10-25, single process) where clipping the mean took 6.9k.
    max_gradient_norm: float = 0.5

    # The server's RMSProp. Median env steps to solve with this network, 2 workers x 4 envs (SB3's 8 envs), tuning
    # seeds 10-15, A3C / A2C: value_cost 0.5 and 7e-4 (SB3's) 15.9k / 17.7k, 1.5e-3 11.2k / 14.0k, 3e-3 7.0k /
    # 13.3k; value_cost 0.25 and 3e-3 7.3k / 7.0k (seeds 16-19: 6.0k / 9.1k; the benchmark's 0-2: 8.8k / 9.9k),
    # 5e-3 6.8k / 10.4k. SB3 A2C takes 10k.
    learning_rate: float = 3e-3
    rmsprop_decay: float = 0.99
    # Added to the mean square inside the square root (Keras): 1e-10 there is PyTorch's (and so Stable-Baselines3
    # A2C's) 1e-5 added outside it. Larger values damp the first updates, whose mean square is still small.
    rmsprop_epsilon: float = 1e-10

    # Update scheme.
    synchronous: bool = False
    num_groups: int = 1
    max_staleness: Optional[int] = None
    barrier_timeout: float = 5.0

    def __post_init__(self):
        self.hidden_sizes = tuple(self.hidden_sizes)
        self.head_hidden_sizes = tuple(self.head_hidden_sizes)
        more = []
        if any(size < 1 for size in self.hidden_sizes):
            more.append(f"hidden_sizes must all be >= 1 (got {self.hidden_sizes})")
        if any(size < 1 for size in self.head_hidden_sizes):
            more.append(f"head_hidden_sizes must all be >= 1 (got {self.head_hidden_sizes})")
        if self.activation not in ("relu", "tanh"):
            more.append(f"activation must be 'relu' or 'tanh' (got {self.activation!r})")
        if not 0 <= self.discount <= 1:
            more.append(f"discount must be in [0, 1] (got {self.discount})")
        if self.max_staleness is not None and self.max_staleness < 0:
            more.append(f"max_staleness must be >= 0, or None for no limit (got {self.max_staleness})")
        if self.num_groups > 1 and not self.synchronous:
            more.append(f"num_groups={self.num_groups} needs synchronous=true (asynchronous pushes form no groups)")
        check_ranges(
            self,
            at_least_one=("num_envs", "t_max", "num_groups"),
            positive=("learning_rate", "max_gradient_norm", "barrier_timeout", "rmsprop_epsilon"),
            unit_interval=("rmsprop_decay",),
            non_negative=("value_cost", "entropy_cost"),
            more=more,
        )

    def group_size(self, num_workers: int) -> int:
        """Pushes per update: all workers of a group when synchronous, else 1. Raises ValueError when the workers
        do not split into `num_groups` equal groups."""
        if not self.synchronous:
            return 1
        if num_workers % self.num_groups:
            raise ValueError(
                f"{type(self).__name__}: {num_workers} workers do not split into num_groups={self.num_groups} equal "
                "groups; pass a number of workers (--num_actors) that is a multiple of num_groups."
            )
        return num_workers // self.num_groups


@dataclasses.dataclass
class A2CConfig(A3CConfig):
    """A3C's workers with a synchronous server: every update is the mean of one push from each worker."""

    synchronous: bool = True
