"""Table factories for prioritized (Ape-X), uniform and queue replay, with checked rate limiters."""

import replay._quiet_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
from typing import Any, Optional

import reverb


def rate_limiter(samples_per_insert: float, min_size: int, tolerance: float) -> reverb.rate_limiters.RateLimiter:
    """A SampleToInsertRatio limiter whose error buffer is `min_size * tolerance * samples_per_insert`.

    Inserts and samples block when the running ratio strays further than that from `samples_per_insert`
    (each item sampled that many times on average), once `min_size` items are in the table.
    """
    if samples_per_insert <= 0:
        raise ValueError(
            f"samples_per_insert must be > 0 (got {samples_per_insert}); it is how many times each "
            "item is sampled on average. Use samples_per_insert=None for no ratio limit."
        )
    if min_size < 1:
        raise ValueError(f"min_size must be >= 1 (got {min_size}): it is the table size before sampling may start.")
    if tolerance <= 0:
        raise ValueError(f"tolerance must be > 0 (got {tolerance}); 0.1 lets the ratio drift by 10% of min_size.")
    error_buffer = min_size * tolerance * samples_per_insert
    needed = max(1.0, samples_per_insert)
    if error_buffer < needed:
        raise ValueError(
            f"rate limiter cannot work: min_size * tolerance * samples_per_insert = {min_size} * {tolerance} * "
            f"{samples_per_insert} = {error_buffer:g} must be >= max(1, samples_per_insert) = {needed:g}, otherwise "
            "a single insert or sample moves the ratio out of bounds and writers and learners block each other "
            f"(deadlock). Raise tolerance to >= {needed / (min_size * samples_per_insert):.3g} or min_size to >= "
            f"{int(-(-needed // (tolerance * samples_per_insert)))}."
        )
    return reverb.rate_limiters.SampleToInsertRatio(
        samples_per_insert=samples_per_insert, min_size_to_sample=min_size, error_buffer=error_buffer
    )


def _limiter(
    max_size: int, samples_per_insert: Optional[float], min_size: int, tolerance: float
) -> reverb.rate_limiters.RateLimiter:
    if max_size < 1:
        raise ValueError(f"max_size must be >= 1 (got {max_size}).")
    if min_size < 1:
        raise ValueError(f"min_size must be >= 1 (got {min_size}): it is the table size before sampling may start.")
    if min_size > max_size:
        raise ValueError(
            f"min_size ({min_size}) > max_size ({max_size}): the table could never hold enough items "
            "to start sampling, so learners would wait forever. Lower min_size or raise max_size."
        )
    if samples_per_insert is None:
        return reverb.rate_limiters.MinSize(min_size)
    return rate_limiter(samples_per_insert, min_size, tolerance)


def prioritized(
    name: str,
    max_size: int,
    priority_exponent: float = 0.6,
    samples_per_insert: Optional[float] = None,
    min_size: int = 1,
    tolerance: float = 0.1,
    signature: Any = None,
) -> reverb.Table:
    """A prioritized table (P(i) ∝ priority_i ** priority_exponent) with FIFO eviction, as in Ape-X."""
    if priority_exponent < 0:
        raise ValueError(f"priority_exponent must be >= 0 (got {priority_exponent}); 0 is uniform, 0.6 is Ape-X.")
    return reverb.Table(
        name=name,
        sampler=reverb.selectors.Prioritized(priority_exponent),
        remover=reverb.selectors.Fifo(),
        max_size=max_size,
        rate_limiter=_limiter(max_size, samples_per_insert, min_size, tolerance),
        signature=signature,
    )


def uniform(
    name: str,
    max_size: int,
    samples_per_insert: Optional[float] = None,
    min_size: int = 1,
    tolerance: float = 0.1,
    signature: Any = None,
) -> reverb.Table:
    """A uniformly sampled table with FIFO eviction."""
    return reverb.Table(
        name=name,
        sampler=reverb.selectors.Uniform(),
        remover=reverb.selectors.Fifo(),
        max_size=max_size,
        rate_limiter=_limiter(max_size, samples_per_insert, min_size, tolerance),
        signature=signature,
    )


def queue(name: str, max_size: int, signature: Any = None) -> reverb.Table:
    """A FIFO queue: every item is sampled exactly once; writers block while it is full."""
    if max_size < 1:
        raise ValueError(f"max_size must be >= 1 (got {max_size}).")
    return reverb.Table.queue(name=name, max_size=max_size, signature=signature)
