"""Imports TensorFlow with its CPU-only CUDA-plugin registration noise filtered from stderr.

Every replay module that needs TensorFlow or Reverb imports this module first; importing it is the import.
"""

import os
import sys
import tempfile

# Printed by every TF 2.15 import on machines without a GPU; harmless and not actionable.
_NOISE = (
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "TF-TRT Warning: Could not find TensorRT",
)


def import_tensorflow() -> None:
    """Imports tensorflow (once), passing every stderr line except the known noise through."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not any(noise in line for noise in _NOISE):
                    sys.stderr.write(line)
            sys.stderr.flush()


import_tensorflow()
