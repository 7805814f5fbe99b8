"""A3C's network: IMPALA's actor-critic MLP (a shared torso, then policy logits and a value, each head optionally with
hidden layers of its own); acting reads it through its numpy twin, agents.impala.acting.numpy_policy_and_value."""

from agents.a3c.config import A3CConfig
from agents.impala.networks import ActorCriticNetwork, make_actor_critic_network
from replay import EnvironmentSpec


def make_network(environment_spec: EnvironmentSpec, config: A3CConfig, seed: int) -> ActorCriticNetwork:
    """The network for a flat observation and discrete actions (else a ValueError naming A3C/A2C)."""
    return make_actor_critic_network(
        environment_spec,
        config.hidden_sizes,
        seed,
        name="a3c",
        agent="A3C/A2C",
        activation=config.activation,
        orthogonal_init=config.orthogonal_init,
        head_hidden_sizes=config.head_hidden_sizes,
    )
