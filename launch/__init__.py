"""Encore launch (in progress)."""
