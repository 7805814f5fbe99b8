"""Range checks for agents' config dataclasses: every problem at once, each naming the field and its value."""

from typing import Any, Iterable


def check_ranges(
    config: Any,
    *,
    at_least_one: Iterable[str] = (),
    positive: Iterable[str] = (),
    unit_interval: Iterable[str] = (),
    non_negative: Iterable[str] = (),
    more: Iterable[str] = (),
) -> None:
    """Raises one ValueError listing every field out of its range (and the `more` problems found by the caller)."""
    value = lambda name: getattr(config, name)  # noqa: E731
    problems = [f"{name} must be >= 1 (got {value(name)})" for name in at_least_one if value(name) < 1]
    problems += [f"{name} must be > 0 (got {value(name)})" for name in positive if not value(name) > 0]
    problems += [f"{name} must be in [0, 1] (got {value(name)})" for name in unit_interval if not 0 <= value(name) <= 1]
    problems += [f"{name} must be >= 0 (got {value(name)})" for name in non_negative if value(name) < 0]
    problems += list(more)
    if problems:
        raise ValueError(f"{type(config).__name__}: " + "; ".join(problems) + ".")
