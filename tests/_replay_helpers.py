"""Shared helpers for replay tests: drive an adder through episodes and read back what it wrote."""

import dm_env
import numpy as np
import tree


def run_episode(adder, first_observation, steps):
    """steps: [(action, timestep) or (action, timestep, extras)]."""
    adder.add_first(dm_env.restart(first_observation))
    for step in steps:
        adder.add(*step)


def drain(client, table, like=None):
    """All items of a FIFO `table`, in insertion order; flat lists unless `like` gives their structure."""
    size = client.server_info()[table].current_size
    if size == 0:
        return []
    items = [sample.data for sample in client.sample(table, num_samples=size, emit_timesteps=False)]
    return items if like is None else [tree.unflatten_as(like, tree.flatten(item)) for item in items]


def assert_nest_close(actual, expected):
    tree.assert_same_structure(actual, expected, check_types=False)
    for a, e in zip(tree.flatten(actual), tree.flatten(expected)):
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(e, np.float64), rtol=1e-6)
