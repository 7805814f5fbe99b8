"""What agents' TensorFlow networks share: a flat list of variables that actors receive as numpy arrays."""

from replay import import_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
from typing import List, Sequence

import numpy as np
import tensorflow as tf


class ParameterModule(tf.Module):
    """A tf.Module whose variables form one ordered list: published as numpy arrays for numpy twins that act,
    restored from such a list."""

    def __init__(self, name: str):
        super().__init__(name=name)
        self._parameters: List[tf.Variable] = []

    def _add_parameter(self, name: str, value: np.ndarray) -> None:
        """Appends a float32 variable; call inside `self.name_scope`."""
        self._parameters.append(tf.Variable(np.asarray(value, np.float32), name=name))

    @property
    def parameters(self) -> List[tf.Variable]:
        """The variables, in the order the numpy twin reads them."""
        return list(self._parameters)

    def numpy_parameters(self) -> List[np.ndarray]:
        return [p.numpy() for p in self._parameters]

    def set_parameters(self, values: Sequence[np.ndarray]) -> None:
        if len(values) != len(self._parameters):
            raise ValueError(
                f"{self.name} has {len(self._parameters)} parameter arrays, got {len(values)}: restore parameters "
                "saved from a network of the same configuration."
            )
        for variable, value in zip(self._parameters, values):
            variable.assign(value)
