"""Encore agents (in progress)."""
