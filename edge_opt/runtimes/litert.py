"""LiteRT (ai-edge-litert) interpreter, with XNNPACK on the CPU or the EdgeTPU delegate."""

from __future__ import annotations

import ctypes.util
from importlib import metadata

import numpy as np

from edge_opt.core.errors import ModelLoadError, first_line
from edge_opt.runtimes.base import Backend, TensorSpec, dequantize, quantize

_EDGETPU_LIB = "libedgetpu.so.1"


class LiteRTBackend(Backend):
    name = "litert"
    formats = ("tflite",)

    @classmethod
    def import_runtime(cls) -> None:
        import ai_edge_litert.interpreter  # noqa: F401

    @classmethod
    def unavailable(cls, device: str) -> str | None:
        if device == "cpu":
            return None
        if device == "edgetpu":
            if ctypes.util.find_library("edgetpu") is None:
                return f"no EdgeTPU here: the delegate library {_EDGETPU_LIB} is not installed"
            return None
        if device == "gpu":
            # ai-edge-litert's desktop wheels ship no GPU delegate (it targets Android/iOS GPUs).
            return "no LiteRT GPU delegate in this ai-edge-litert build (phone GPUs only)"
        return f"litert: device '{device}' is not supported by edge-opt's LiteRT backend"

    def load(self, path: str, shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter, load_delegate

        delegates = [load_delegate(_EDGETPU_LIB)] if self.device == "edgetpu" else None
        try:
            # The default op resolver applies XNNPACK on the CPU, as benchmark_model does.
            self._interp = Interpreter(model_path=str(path), num_threads=self.threads, experimental_delegates=delegates)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"{path}: LiteRT cannot load it: {first_line(exc)}") from None
        self._in = self._interp.get_input_details()
        self._out = self._interp.get_output_details()
        for detail in self._in:
            shape = (shapes or {}).get(detail["name"])
            if shape is not None:
                self._resize(detail["index"], shape)
        self._refresh()

    def _resize(self, index: int, shape) -> None:
        self._interp.resize_tensor_input(index, list(shape), strict=False)
        self._interp.allocate_tensors()

    def _refresh(self) -> None:
        self._in = self._interp.get_input_details()
        self._out = self._interp.get_output_details()
        self._static = [tuple(int(d) for d in detail["shape"]) for detail in self._in]

    def inputs(self) -> list[TensorSpec]:
        # A TFLite file always carries a concrete default shape; use it.
        return [TensorSpec(d["name"], tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"]).name) for d in self._in]

    def bind(self, feeds: list[np.ndarray]) -> None:
        for detail, feed in zip(self._in, feeds, strict=False):
            if tuple(feed.shape) != tuple(detail["shape"]):
                self._resize(detail["index"], feed.shape)
                self._refresh()
        for detail, feed in zip(self._in, feeds, strict=False):
            self._interp.set_tensor(detail["index"], feed)
        self._invoke = self._interp.invoke

    def invoke(self) -> None:
        self._invoke()

    def predict(self, x: np.ndarray) -> np.ndarray:
        detail = self._in[0]
        if detail["shape"][0] != len(x):
            self._resize(detail["index"], (len(x), *detail["shape"][1:]))
            self._refresh()
            detail = self._in[0]
        dtype = np.dtype(detail["dtype"])
        if dtype.kind in "iu" and x.dtype.kind == "f":
            scale, zero = detail["quantization"]
            x = quantize(x, dtype.name, scale, zero)
        self._interp.set_tensor(detail["index"], np.ascontiguousarray(x, dtype=dtype))
        self._interp.invoke()
        out = self._out[0]
        y = self._interp.get_tensor(out["index"])
        if np.dtype(out["dtype"]).kind in "iu":
            scale, zero = out["quantization"]
            y = dequantize(y, scale, zero)
        return np.asarray(y, dtype=np.float32)

    def version(self) -> str:
        return metadata.version("ai-edge-litert")

    def info(self) -> dict:
        delegate = "edgetpu" if self.device == "edgetpu" else "xnnpack"
        return {**super().info(), "delegate": delegate}
