"""Environment specs and the record types that adders write (field order as Acme's)."""

from typing import Any, NamedTuple

import dm_env
import tree
from dm_env import specs as dm_specs


class EnvironmentSpec(NamedTuple):
    """Specs of everything an environment emits and accepts."""

    observations: Any
    actions: Any
    rewards: Any
    discounts: Any


class Transition(NamedTuple):
    """An (n-step) transition: s_t, a_t, R_{t:t+n}, D_{t:t+n}, s_{t+n}, e_t."""

    observation: Any
    action: Any
    reward: Any
    discount: Any
    next_observation: Any
    extras: Any = ()


class Step(NamedTuple):
    """One row of a trajectory; sequences and episodes are Steps with a time axis."""

    observation: Any
    action: Any
    reward: Any
    discount: Any
    start_of_episode: Any
    extras: Any = ()


def make_environment_spec(environment: dm_env.Environment) -> EnvironmentSpec:
    """Returns the EnvironmentSpec of a dm_env environment."""
    return EnvironmentSpec(
        observations=environment.observation_spec(),
        actions=environment.action_spec(),
        rewards=environment.reward_spec(),
        discounts=environment.discount_spec(),
    )


def to_tensor_specs(nest: Any) -> Any:
    """Maps a nest of dm_env/TF specs to tf.TensorSpecs named by their path."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel  # Here: EnvironmentSpec stays TF-free.

    def convert(path, spec):
        name = "/".join(str(p) for p in path)
        return tf.TensorSpec(shape=spec.shape, dtype=tf.as_dtype(spec.dtype), name=name)

    return tree.map_structure_with_path(convert, nest)


def with_time_axis(nest: Any, length: Any = None) -> Any:
    """Prepends a time axis of `length` (None: any length) to every TensorSpec in `nest`."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    return tree.map_structure(lambda s: tf.TensorSpec((length, *s.shape), s.dtype, s.name), nest)


def scalar_bool_spec() -> dm_specs.Array:
    return dm_specs.Array((), bool, name="start_of_episode")
