"""What an agent needs of an environment, checked before anything starts."""

from typing import Any


def num_discrete_actions(environment_spec: Any, agent: str) -> int:
    """The number of actions of a discrete action spec; a ValueError naming `agent` and the fix otherwise."""
    actions = environment_spec.actions
    if not hasattr(actions, "num_values"):
        raise ValueError(
            f"{agent} needs discrete actions (a dm_env DiscreteArray), but the environment's action spec is "
            f"{actions}; pick an environment with a Discrete action space such as CartPole-v1."
        )
    return int(actions.num_values)
