"""A deployed model file as a predict function, in this process, through its runtime.

Trust checks (fairness, robustness, explainers) call ``Predictor`` on float features and
get class probabilities, whatever the file's format or I/O dtype: they see the artifact
only through the runtime it ships on, as a black box.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_opt.runtimes import DEFAULT_RUNTIME, detect_format, get_backend_class


class Predictor:
    """``Predictor(path)(x) -> (n, n_classes)`` probabilities; ``.labels(x)`` class indices."""

    def __init__(
        self,
        model_path: str | Path,
        runtime: str | None = None,
        threads: int = 1,
        precision: str | None = None,
        trust_model: bool = False,
    ) -> None:
        self.path = Path(model_path)
        self.format = detect_format(self.path)
        self.runtime = runtime or DEFAULT_RUNTIME[self.format]
        backend = get_backend_class(self.runtime)
        self._backend = backend(threads=threads, precision=precision, trust_model=trust_model)
        self._backend.load(str(self.path))
        self.calls = 0  # rows predicted, for query budgets of black-box attacks
        self.input_shape = tuple(self._backend.inputs()[0].shape[1:])  # without the batch dimension

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        self.calls += len(x)
        out = np.asarray(self._backend.predict(x), dtype=np.float32).reshape(len(x), -1)
        if out.shape[1] == 1:  # one sigmoid unit: P(class 1)
            out = np.hstack([1.0 - out, out])
        return out

    def labels(self, x: np.ndarray) -> np.ndarray:
        return self(x).argmax(axis=1)

    def __repr__(self) -> str:
        return f"Predictor({self.path.name}, runtime={self.runtime})"
