"""LiteRT's newer CompiledModel API (what ``litert-benchmark`` times), on the CPU.

The classic Interpreter (``litert``) stays the default; this backend exists so a file can
be measured through the same API as LiteRT's own tool, and the two APIs compared.
"""

from __future__ import annotations

from importlib import metadata

import numpy as np

from edge_opt.core.errors import ModelLoadError, first_line
from edge_opt.runtimes.base import Backend, TensorSpec, batched, dequantize, quantize


class LiteRTCompiledBackend(Backend):
    name = "litert-compiled"
    formats = ("tflite",)

    @classmethod
    def import_runtime(cls) -> None:
        import ai_edge_litert.compiled_model  # noqa: F401

    def load(self, path: str, shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.environment import Environment, EnvironmentOptions
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator
        from ai_edge_litert.options import CpuOptions, Options

        options = Options(
            hardware_accelerators=HardwareAccelerator(HardwareAccelerator.CPU),
            cpu_options=CpuOptions(num_threads=self.threads),
        )
        try:
            self._model = CompiledModel.from_file(
                str(path), environment=Environment.create(options=EnvironmentOptions()), options=options
            )
        except Exception as exc:  # LiteRT raises RuntimeError/ValueError for a bad file
            raise ModelLoadError(f"{path}: LiteRT (CompiledModel) cannot load it: {first_line(exc)}") from None
        self._sig = next(iter(self._model.get_signature_list()), "serving_default")
        self._in = self._model.get_input_tensor_details(self._sig)
        self._out = self._model.get_output_tensor_details(self._sig)
        self._in_buf = {n: self._model.create_input_buffer_by_name(self._sig, n) for n in self._in}
        self._out_buf = {n: self._model.create_output_buffer_by_name(self._sig, n) for n in self._out}
        # Quantization parameters come from the flatbuffer, through the classic reader.
        from ai_edge_litert.interpreter import Interpreter

        details = (
            Interpreter(model_path=str(path)).get_input_details()
            + Interpreter(model_path=str(path)).get_output_details()
        )
        self._quant = {d["name"]: d["quantization"] for d in details}

    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec(n, tuple(d["shape"]), d["dtype"]) for n, d in self._in.items()]

    def bind(self, feeds: list[np.ndarray]) -> None:
        for buf, feed in zip(self._in_buf.values(), feeds, strict=False):
            buf.write(np.ascontiguousarray(feed))

    def invoke(self) -> None:
        self._model.run_by_name(self._sig, self._in_buf, self._out_buf)

    def predict(self, x: np.ndarray) -> np.ndarray:
        (name, detail), (out_name, out_detail) = next(iter(self._in.items())), next(iter(self._out.items()))
        in_dtype, out_dtype = np.dtype(detail["dtype"]), np.dtype(out_detail["dtype"])
        n_out = int(np.prod(out_detail["shape"]))

        def run(chunk: np.ndarray) -> np.ndarray:
            if in_dtype.kind in "iu" and chunk.dtype.kind == "f":
                chunk = quantize(chunk, in_dtype.name, *self._quant[detail["name"]])
            self._in_buf[name].write(np.ascontiguousarray(chunk, dtype=in_dtype))
            self.invoke()
            y = np.asarray(self._out_buf[out_name].read(n_out, out_dtype)).reshape(out_detail["shape"])
            if out_dtype.kind in "iu":
                y = dequantize(y, *self._quant[out_detail["name"]])
            return y.astype(np.float32)

        return batched(run, x, int(detail["shape"][0]))

    def version(self) -> str:
        return metadata.version("ai-edge-litert")

    def info(self) -> dict:
        return {**super().info(), "delegate": "xnnpack", "api": "CompiledModel"}
