"""What an agent needs of an environment, checked before anything starts."""

from typing import Any, Tuple

import numpy as np


def num_discrete_actions(environment_spec: Any, agent: str) -> int:
    """The number of actions of a discrete action spec; a ValueError naming `agent` and the fix otherwise."""
    actions = environment_spec.actions
    if not hasattr(actions, "num_values"):
        raise ValueError(
            f"{agent} needs discrete actions (a dm_env DiscreteArray), but the environment's action spec is "
            f"{actions}; pick an environment with a Discrete action space such as CartPole-v1."
        )
    return int(actions.num_values)


def bounded_actions(environment_spec: Any, agent: str) -> Tuple[np.ndarray, np.ndarray]:
    """(minimum, maximum) float32 arrays of a bounded continuous action spec; a ValueError naming `agent` and the
    fix otherwise."""
    actions = environment_spec.actions
    floating = np.issubdtype(np.dtype(getattr(actions, "dtype", np.int64)), np.floating)
    if hasattr(actions, "num_values") or not floating or not hasattr(actions, "minimum"):
        raise ValueError(
            f"{agent} needs continuous actions with bounds (a float dm_env BoundedArray), but the environment's "
            f"action spec is {actions}; pick an environment with a Box action space such as Pendulum-v1."
        )
    shape = tuple(actions.shape)
    minimum = np.broadcast_to(np.asarray(actions.minimum, np.float32), shape).copy()
    maximum = np.broadcast_to(np.asarray(actions.maximum, np.float32), shape).copy()
    if not (np.all(np.isfinite(minimum)) and np.all(np.isfinite(maximum)) and np.all(minimum < maximum)):
        raise ValueError(
            f"{agent} scales its actions to the spec's bounds, which must be finite with minimum < maximum "
            f"(got {minimum} .. {maximum}); wrap the environment so its Box action space is bounded."
        )
    return minimum, maximum
