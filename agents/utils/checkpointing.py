"""Periodic checkpoints of learner and counter state with tf.train.Checkpoint."""

from replay import import_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
import json
import os
import time
from typing import Any, Mapping, Optional

import tensorflow as tf

from agents import core


class _SaveableAdapter(tf.Module):
    """Lets a core.Saveable with JSON-serialisable state ride in a tf checkpoint.

    A `save()` returning None (state unavailable) is stored as empty and not restored.
    """

    def __init__(self, saveable: core.Saveable):
        super().__init__()
        self._saveable = saveable
        self.state = tf.Variable("", dtype=tf.string, trainable=False)

    def before_save(self) -> None:
        state = self._saveable.save()
        self.state.assign("" if state is None else json.dumps(state))

    def after_restore(self) -> None:
        serialized = self.state.numpy()
        if serialized:
            self._saveable.restore(json.loads(serialized))


class Checkpointer:
    """Saves a set of objects under `directory`, at most every `time_delta_minutes`.

    Objects are tf trackables (tf.Module, tf.Variable, optimizers) or
    core.Saveable objects whose `save()` returns JSON-serialisable state (e.g. a
    Counter). The latest checkpoint in `directory` is restored on construction.
    """

    def __init__(
        self, objects: Mapping[str, Any], directory: str, time_delta_minutes: float = 10.0, max_to_keep: int = 1
    ):
        self._adapters = []
        trackables = {}
        for name, obj in objects.items():
            if isinstance(obj, core.Saveable) and not isinstance(obj, tf.Module):
                obj = _SaveableAdapter(obj)
                self._adapters.append(obj)
            trackables[name] = obj
        self._checkpoint = tf.train.Checkpoint(**trackables)
        self._manager = tf.train.CheckpointManager(self._checkpoint, directory, max_to_keep)
        self._time_delta = time_delta_minutes * 60
        self._last_save = time.monotonic()
        self.restored_from: Optional[str] = None
        if self._manager.latest_checkpoint:
            self._checkpoint.restore(self._manager.latest_checkpoint).expect_partial()
            for adapter in self._adapters:
                adapter.after_restore()
            self.restored_from = self._manager.latest_checkpoint

    def save(self, force: bool = False) -> Optional[str]:
        """Saves if forced or `time_delta_minutes` passed; returns the path or None."""
        if not force and time.monotonic() - self._last_save < self._time_delta:
            return None
        for adapter in self._adapters:
            adapter.before_save()
        self._last_save = time.monotonic()
        return self._manager.save()

    @property
    def directory(self) -> str:
        return os.fspath(self._manager.directory)
