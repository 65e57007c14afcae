"""OpenVINO runtime: IR on the CPU (or an Intel GPU), latency hint, one stream."""

from __future__ import annotations

from importlib import metadata

import numpy as np

from edge_opt.errors import ModelLoadError, first_line
from edge_opt.runtimes.base import Backend, TensorSpec, batched

_DEVICES = {"cpu": "CPU", "gpu": "GPU"}


class OpenVINOBackend(Backend):
    name = "openvino"
    formats = ("openvino",)
    # InferRequest.latency is measured in C++ around the inference, which is what
    # benchmark_app reports; the Python wrapper adds 5-15 us per call on top.
    timer = "runtime"

    @classmethod
    def import_runtime(cls) -> None:
        import openvino  # noqa: F401

    @classmethod
    def unavailable(cls, device: str) -> str | None:
        if device not in _DEVICES:
            return f"openvino: device '{device}' is not supported"
        if device == "cpu":
            return None
        import openvino as ov

        devices = ov.Core().available_devices
        if not any(d.startswith(_DEVICES[device]) for d in devices):
            return f"no OpenVINO {_DEVICES[device]} device here (has: {', '.join(devices)})"
        return None

    def load(self, path: str, shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        import openvino as ov

        core = ov.Core()
        try:
            model = core.read_model(str(path))
            if shapes:
                model.reshape({name: ov.PartialShape(list(s)) for name, s in shapes.items()})
            config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1"}
            if self.device == "cpu":
                config["INFERENCE_NUM_THREADS"] = str(self.threads)
            self._compiled = core.compile_model(model, _DEVICES[self.device], config)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with long text
            raise ModelLoadError(f"{path}: OpenVINO cannot load it: {first_line(exc)}") from None
        self._request = self._compiled.create_infer_request()

    def inputs(self) -> list[TensorSpec]:
        specs = []
        for port in self._compiled.inputs:
            pshape = port.get_partial_shape()
            shape = tuple(d.get_length() if d.is_static else -1 for d in pshape)
            specs.append(TensorSpec(port.get_any_name(), shape, port.get_element_type().to_dtype().name))
        return specs

    def bind(self, feeds: list[np.ndarray]) -> None:
        import openvino as ov

        for i, feed in enumerate(feeds):
            self._request.set_input_tensor(i, ov.Tensor(np.ascontiguousarray(feed)))
        self._infer = self._request.infer

    def invoke(self) -> None:
        self._infer()

    def last_latency_ms(self) -> float:
        return self._request.latency

    def predict(self, x: np.ndarray) -> np.ndarray:
        spec = self.inputs()[0]
        dtype = np.dtype(spec.dtype)
        run = lambda chunk: self._request.infer({0: chunk.astype(dtype)})[0]  # noqa: E731
        if spec.shape[0] > 0:
            y = batched(lambda c: np.array(run(c)), x, spec.shape[0])
        else:
            y = np.concatenate([np.array(run(x[i : i + 4096])) for i in range(0, len(x), 4096)])
        return np.asarray(y, dtype=np.float32)

    def version(self) -> str:
        return metadata.version("openvino")
