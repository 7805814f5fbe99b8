"""Loss pieces shared by the TensorFlow learners."""

from replay import import_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
import tensorflow as tf


def huber(x: tf.Tensor, delta: float) -> tf.Tensor:
    """Elementwise Huber loss: quadratic within `delta` of zero, linear beyond."""
    absolute = tf.abs(x)
    quadratic = tf.minimum(absolute, delta)
    return 0.5 * tf.square(quadratic) + delta * (absolute - quadratic)


def importance_weights(probabilities: tf.Tensor, exponent: float) -> tf.Tensor:
    """Prioritized-replay weights (1/P)^beta, scaled so the largest is 1."""
    weights = tf.pow(1.0 / tf.cast(probabilities, tf.float32), exponent)
    return weights / tf.reduce_max(weights)
