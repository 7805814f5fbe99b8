"""Imports TensorFlow with its CPU-only CUDA-plugin registration noise filtered from stderr.

Every replay module that needs TensorFlow or Reverb imports this module first; importing it is the import.
"""

import os
import sys

from replay._stderr_filter import lines_hidden

# Printed by every TF 2.15 import on machines without a GPU; harmless and not actionable.
_NOISE = (
    b"Unable to register cuDNN factory",
    b"Unable to register cuFFT factory",
    b"Unable to register cuBLAS factory",
    b"TF-TRT Warning: Could not find TensorRT",
)


def import_tensorflow() -> None:
    """Imports tensorflow (once), passing every stderr line except the known noise through."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return
    with lines_hidden(_NOISE):
        import tensorflow  # noqa: F401


import_tensorflow()
