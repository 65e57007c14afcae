"""A third-party backend (``tests.plugins.onnxref:OnnxReferenceBackend``): ONNX's own pure-Python
reference evaluator, registered by nothing but its module:Class name. It has to pass the
same conformance suite as the built-in backends."""

from __future__ import annotations

from importlib import metadata

import numpy as np

from edge_opt.core.errors import ModelLoadError, first_line
from edge_opt.runtimes.base import Backend, TensorSpec, batched

_DTYPES = {1: "float32", 6: "int32", 7: "int64", 3: "int8", 2: "uint8", 11: "float64", 9: "bool"}


class OnnxReferenceBackend(Backend):
    name = "onnx-reference"
    formats = ("onnx",)

    def load(self, path: str, shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        import onnx
        from onnx.reference import ReferenceEvaluator

        try:
            model = onnx.load(str(path))
            self._session = ReferenceEvaluator(model)
        except Exception as exc:  # onnx raises plain OSError / DecodeError for bad files
            raise ModelLoadError(f"{path}: the ONNX reference evaluator cannot load it: {first_line(exc)}") from None
        initializers = {i.name for i in model.graph.initializer}
        self._specs = []
        for inp in model.graph.input:
            if inp.name in initializers:
                continue
            t = inp.type.tensor_type
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
            shape = tuple((shapes or {}).get(inp.name, dims))
            self._specs.append(TensorSpec(inp.name, shape, _DTYPES.get(t.elem_type, "float32")))

    def inputs(self) -> list[TensorSpec]:
        return list(self._specs)

    def bind(self, feeds: list[np.ndarray]) -> None:
        self._feeds = {s.name: f for s, f in zip(self._specs, feeds, strict=True)}

    def invoke(self) -> None:
        self._session.run(None, self._feeds)

    def predict(self, x: np.ndarray) -> np.ndarray:
        spec = self._specs[0]
        run = lambda chunk: self._session.run(None, {spec.name: chunk.astype(spec.dtype)})[0]  # noqa: E731
        y = batched(run, x, spec.shape[0]) if spec.shape[0] > 0 else run(x)
        return np.asarray(y, dtype=np.float32)

    def version(self) -> str:
        return metadata.version("onnx")
