"""Greedy evaluation with an early stop once the solving mean is out of reach."""

from typing import List, Optional, Tuple

import dm_env
import numpy as np

from agents import core


def evaluate(
    environment: dm_env.Environment,
    actor: core.Actor,
    num_episodes: int,
    *,
    target: Optional[float] = None,
    max_return: Optional[float] = None,
) -> float:
    """Mean undiscounted return of `actor` over `num_episodes` episodes.

    Given `target` and `max_return` (an upper bound on one episode's return), stops
    early, returning the mean so far, once the mean can no longer reach `target`.
    """
    returns: List[float] = []
    for episode in range(num_episodes):
        if (
            target is not None
            and max_return is not None
            and sum(returns) + (num_episodes - episode) * max_return < target * num_episodes
        ):
            break
        timestep = environment.reset()
        total = 0.0
        while not timestep.last():
            timestep = environment.step(actor.select_action(timestep.observation))
            total += float(np.sum(timestep.reward))
        returns.append(total)
    return float(np.mean(returns))


def screen_then_evaluate(
    environment: dm_env.Environment,
    actor: core.Actor,
    num_episodes: int,
    target: Optional[float],
    max_return: Optional[float] = None,
) -> Tuple[float, Optional[float], bool]:
    """One screening episode, then `num_episodes` more only if it reached `target`.

    Screening keeps evaluation cheap while the policy is far from solving; the
    solve criterion is still the mean over the full evaluation, which ends early
    once `max_return` per remaining episode could not lift the mean to `target`.
    Returns (screen return, mean evaluation return or None, solved).
    """
    screen_return = evaluate(environment, actor, 1)
    if target is not None and screen_return < target:
        return screen_return, None, False
    mean_return = evaluate(environment, actor, num_episodes, target=target, max_return=max_return)
    return screen_return, mean_return, target is not None and mean_return >= target
