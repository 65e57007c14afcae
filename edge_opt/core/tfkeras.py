"""The one place TensorFlow is imported, with Keras 2 (tf_keras) selected first.

tensorflow-model-optimization needs Keras 2, so ``TF_USE_LEGACY_KERAS=1`` must be set
before TensorFlow is imported anywhere in the process.
"""

from __future__ import annotations

import os


def _prepare_env() -> None:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def tf():
    _prepare_env()
    import tensorflow

    return tensorflow


def keras():
    _prepare_env()
    import tf_keras

    return tf_keras
