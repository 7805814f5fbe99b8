"""Implementation of `python -m replay.inspect` (see replay/inspect.py)."""
