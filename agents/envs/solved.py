"""Per-environment facts agents rely on: the return that counts as solving a task, bounds on one episode's return and on
one step's reward."""

from typing import Optional, Tuple

# Greedy mean return over evaluation episodes; the gymnasium reward_threshold where one exists.
SOLVED_RETURNS = {
    "CartPole-v0": 195.0,
    "CartPole-v1": 475.0,
    "CartPoleNoVel-v1": 475.0,  # CartPole-v1 without the velocities (agents.envs.partially_observed).
    "Acrobot-v1": -100.0,
    "MountainCar-v0": -110.0,
    "LunarLander-v2": 200.0,
    "LunarLander-v3": 200.0,
    "Pendulum-v1": -200.0,
    "MountainCarContinuous-v0": 90.0,
}


# Upper bounds on one episode's return (time limit x best reward per step, or 0 when no reward is positive),
# so an evaluation can stop as soon as the solving mean is out of reach.
MAX_RETURNS = {
    "CartPole-v0": 200.0,
    "CartPole-v1": 500.0,
    "CartPoleNoVel-v1": 500.0,
    "Acrobot-v1": 0.0,
    "MountainCar-v0": 0.0,
    "Pendulum-v1": 0.0,
    "MountainCarContinuous-v0": 100.0,
}


# Bounds on one step's reward, for environments whose rewards are bounded: the wrapper's reward spec is then a
# BoundedArray, from which agents with a bounded value support (D4PG's critic) size it.
REWARD_RANGES = {
    # -(theta^2 + 0.1 thetadot^2 + 0.001 u^2) with |theta| <= pi, |thetadot| <= 8, |u| <= 2.
    "Pendulum-v1": (-16.2736044, 0.0),
    # -0.1 u^2 for |u| <= 1 on every step, +100 once on reaching the flag.
    "MountainCarContinuous-v0": (-0.1, 100.0),
}


def solved_return(name: str) -> Optional[float]:
    """The solving return of environment `name`, or None when it has no threshold."""
    return SOLVED_RETURNS.get(name)


def max_return(name: str) -> Optional[float]:
    """An upper bound on one episode's return in environment `name`, or None when unknown."""
    return MAX_RETURNS.get(name)


def reward_range(name: str) -> Optional[Tuple[float, float]]:
    """(lowest, highest) reward of one step of environment `name`, or None when unbounded or unknown."""
    return REWARD_RANGES.get(name)
