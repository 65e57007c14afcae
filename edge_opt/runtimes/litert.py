"""LiteRT (ai-edge-litert) interpreter, with XNNPACK on the CPU or the EdgeTPU delegate."""

from __future__ import annotations

import ctypes.util
from importlib import metadata

import numpy as np

from edge_opt.core.errors import ModelLoadError, first_line
from edge_opt.runtimes.base import Backend, TensorSpec, dequantize, quantize
from edge_opt.runtimes.litert_ops import isolated_profile
from edge_opt.runtimes.ops import OpProfile, unsupported

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
        self._path = str(path)
        try:
            # The default op resolver applies XNNPACK on the CPU, as benchmark_model does.
            self._interp = Interpreter(model_path=str(path), num_threads=self.threads, experimental_delegates=delegates)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"{path}: LiteRT cannot load it: {first_line(exc)}") from None
        self._in = self._interp.get_input_details()
        self._out = self._interp.get_output_details()
        self._fixed = bool(shapes)  # shapes given: the inputs are static from here on
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
        # Until shapes are fixed, the shape signature marks a dynamic dimension (-1), as the other
        # runtimes do; a file without one has only its concrete shape.
        return [
            TensorSpec(d["name"], tuple(int(s) for s in (d["shape"] if self._fixed else _signature(d))),
                       np.dtype(d["dtype"]).name)
            for d in self._in
        ]  # fmt: skip

    def reshaped_in_place(self, shapes: dict[str, tuple[int, ...]]) -> bool:
        """True when the shapes are those already allocated (a dynamic batch at the file's own 1):
        nothing to load again. Others are loaded anew with the shapes, in a fresh process."""
        same = all(tuple(shapes.get(d["name"], st)) == st for d, st in zip(self._in, self._static, strict=True))
        self._fixed |= same
        return same

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

    def profile_ops(self, runs: int) -> OpProfile:
        """LiteRT's Python API has no profiler: each op is cut from the file and timed alone."""
        if self.device != "cpu":
            return unsupported(f"per-op times on the {self.device} delegate need its own profiler")
        return isolated_profile(self._path, self.threads, runs)

    def version(self) -> str:
        return metadata.version("ai-edge-litert")

    def info(self) -> dict:
        delegate = "edgetpu" if self.device == "edgetpu" else "xnnpack"
        return {**super().info(), "delegate": delegate}


def _signature(detail: dict):
    """A tensor's shape with -1 where its signature says dynamic (its concrete shape otherwise)."""
    signature = detail.get("shape_signature")
    return signature if signature is not None and len(signature) == len(detail["shape"]) else detail["shape"]
