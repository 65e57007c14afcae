"""ONNX Runtime session; CUDA / TensorRT providers for the GPU profile when present."""

from __future__ import annotations

from importlib import metadata

import numpy as np

from edge_opt.core.errors import ModelLoadError, first_line
from edge_opt.runtimes.base import Backend, TensorSpec, batched

_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    formats = ("onnx",)

    @classmethod
    def import_runtime(cls) -> None:
        import onnxruntime  # noqa: F401

    @classmethod
    def unavailable(cls, device: str) -> str | None:
        import onnxruntime as ort

        if device == "cpu":
            return None
        if device == "gpu":
            if not any(p in ort.get_available_providers() for p in _GPU_PROVIDERS):
                have = ", ".join(ort.get_available_providers())
                return f"no GPU execution provider in onnxruntime here (has: {have})"
            return None
        return f"onnxruntime: device '{device}' is not supported"

    def _providers(self) -> list[str]:
        import onnxruntime as ort

        if self.device == "gpu":
            return [p for p in _GPU_PROVIDERS if p in ort.get_available_providers()]
        return ["CPUExecutionProvider"]

    def load(self, path: str, shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        try:
            self._sess = ort.InferenceSession(str(path), sess_options=opts, providers=self._providers())
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            raise ModelLoadError(f"{path}: ONNX Runtime cannot load it: {first_line(exc)}") from None
        self._shapes = dict(shapes or {})
        self._outputs = [o.name for o in self._sess.get_outputs()]

    def inputs(self) -> list[TensorSpec]:
        specs = []
        for i in self._sess.get_inputs():
            shape = self._shapes.get(i.name) or tuple(d if isinstance(d, int) and d >= 0 else -1 for d in i.shape)
            specs.append(TensorSpec(i.name, tuple(shape), _ORT_DTYPES.get(i.type, "float32")))
        return specs

    def bind(self, feeds: list[np.ndarray]) -> None:
        # IO binding keeps the per-call overhead of sess.run's dict handling out of the timing.
        self._binding = self._sess.io_binding()
        for spec, feed in zip(self._sess.get_inputs(), feeds, strict=False):
            self._binding.bind_cpu_input(spec.name, np.ascontiguousarray(feed))
        for name in self._outputs:
            self._binding.bind_output(name)
        self._run = self._sess.run_with_iobinding

    def invoke(self) -> None:
        self._run(self._binding)

    def predict(self, x: np.ndarray) -> np.ndarray:
        spec = self._sess.get_inputs()[0]
        dtype = _ORT_DTYPES.get(spec.type, "float32")
        batch = spec.shape[0]
        run = lambda chunk: self._sess.run(self._outputs[:1], {spec.name: chunk.astype(dtype)})[0]  # noqa: E731
        if isinstance(batch, int) and batch > 0:
            y = batched(run, x, batch)
        else:
            y = np.concatenate([run(x[i : i + 4096]) for i in range(0, len(x), 4096)])
        return np.asarray(y, dtype=np.float32)

    def version(self) -> str:
        return metadata.version("onnxruntime")

    def info(self) -> dict:
        return {**super().info(), "providers": self._providers()}
