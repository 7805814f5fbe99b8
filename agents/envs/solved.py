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


def solved_return(name: str) -> Optional[float]:
    """The solving return of environment `name`, or None when it has no threshold."""
    return SOLVED_RETURNS.get(name)
