"""Per-environment returns at which an agent counts as having solved the task."""

from typing import Optional

# Greedy mean return over evaluation episodes; the gymnasium reward_threshold where one exists.
SOLVED_RETURNS = {
    "CartPole-v0": 195.0,
    "CartPole-v1": 475.0,
    "Acrobot-v1": -100.0,
    "MountainCar-v0": -110.0,
    "LunarLander-v2": 200.0,
    "LunarLander-v3": 200.0,
    "Pendulum-v1": -200.0,
}


# Upper bounds on one episode's return (time limit x best reward per step, or 0 when no reward is positive),
# so an evaluation can stop as soon as the solving mean is out of reach.
MAX_RETURNS = {
    "CartPole-v0": 200.0,
    "CartPole-v1": 500.0,
    "Acrobot-v1": 0.0,
    "MountainCar-v0": 0.0,
    "Pendulum-v1": 0.0,
}


def solved_return(name: str) -> Optional[float]:
    """The solving return of environment `name`, or None when it has no threshold."""
    return SOLVED_RETURNS.get(name)


def max_return(name: str) -> Optional[float]:
    """An upper bound on one episode's return in environment `name`, or None when unknown."""
    return MAX_RETURNS.get(name)
