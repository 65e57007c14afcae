"""A backend that does nothing: timing it measures the harness's own per-call overhead."""

from __future__ import annotations

import numpy as np

from edge_opt import __version__
from edge_opt.runtimes.base import Backend, TensorSpec


class NullBackend(Backend):
    name = "null"
    formats = ("tflite", "onnx", "openvino", "keras", "none")

    def load(self, path: str, shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        # Any shape fits: dynamic until the harness binds one.
        self._shape = next(iter((shapes or {"x": (-1, -1)}).values()))

    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec("x", tuple(self._shape), "float32")]

    def bind(self, feeds: list[np.ndarray]) -> None:
        pass

    def invoke(self) -> None:
        pass

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.zeros((len(x), 1), dtype=np.float32)

    def version(self) -> str:
        return __version__
