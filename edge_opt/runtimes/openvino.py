"""OpenVINO runtime: IR, ONNX or TFLite files on the CPU (or an Intel GPU), latency hint, one stream.

OpenVINO's ``read_model`` reads ONNX and TFLite files directly (as ``benchmark_app`` does),
so a file is measured as it is, without a conversion step of edge-opt's.
"""

from __future__ import annotations

from importlib import metadata

import numpy as np

from edge_opt.core.errors import ModelLoadError, runtime_message
from edge_opt.core.fileio import comma_free
from edge_opt.runtimes.base import Backend, TensorSpec, batched, dequantize, quantize
from edge_opt.runtimes.ops import PRECISIONS, OpProfile, OpTime

_DEVICES = {"cpu": "CPU", "gpu": "GPU"}
# edge-opt's precision names -> OpenVINO's INFERENCE_PRECISION_HINT and the capability it needs.
_HINTS = {"fp32": ("f32", "FP32"), "bf16": ("bf16", "BF16"), "fp16": ("f16", "FP16")}
_NAMES = {hint: name for name, (hint, _) in _HINTS.items()}


class OpenVINOBackend(Backend):
    name = "openvino"
    formats = ("openvino", "onnx", "tflite")
    # InferRequest.latency is measured in C++ around the inference, which is what
    # benchmark_app reports; the Python wrapper adds 5-15 us per call on top.
    timer = "runtime"
    # Without a hint the CPU plugin runs float models in bf16 on CPUs that have it (and GPUs
    # in f16): edge-opt always sets the hint, fp32 unless a profile asks for another.
    precisions = ("fp32", "bf16", "fp16")

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

    @classmethod
    def unsupported_precision(cls, precision: str | None, device: str) -> str | None:
        reason = super().unsupported_precision(precision, device)
        if reason or precision in (None, "fp32") or device not in _DEVICES:
            return reason
        import openvino as ov

        caps = ov.Core().get_property(_DEVICES[device], "OPTIMIZATION_CAPABILITIES")
        if _HINTS[precision][1] not in caps:
            return f"this {_DEVICES[device]} cannot execute at {precision} (OpenVINO capabilities: {', '.join(caps)})"
        return None

    def load(self, path: str, shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        """Read (or, for ONNX and TFLite with ``shapes``, convert with those input shapes, as
        ``ov.convert_model(input=...)`` does: shapes fixed before shape inference) and compile.

        A model whose inputs are dynamic and that the CPU plugin cannot compile so (an input of
        unknown rank) is kept uncompiled: its inputs can be read, and the harness loads it again
        with the shapes it resolves.
        """
        import openvino as ov

        core = ov.Core()
        self._compiled = self._request = self._model = None
        self._why = ""
        try:
            self._model = _read(core, str(path), shapes)
            if not self._model.inputs or not self._model.outputs:  # an empty network "ran" in 1.7 µs
                raise ModelLoadError(f"{path}: OpenVINO read no network in it (no inputs or no outputs)")
            # A TFLite file with integer I/O keeps its integers in OpenVINO: predict() quantizes the
            # float features and dequantizes the outputs with the file's own parameters.
            self._quant = _tflite_io_quantization(path) if str(path).lower().endswith(".tflite") else ([], [])
            self._compiled = core.compile_model(self._model, _DEVICES[self.device], self._config())
        except ModelLoadError:
            raise
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with long text
            dynamic = self._model is not None and any(p.get_partial_shape().is_dynamic for p in self._model.inputs)
            if dynamic and not shapes:
                self._why = runtime_message(exc)
                return  # inputs() reads the model; the harness loads it again with static shapes
            raise ModelLoadError(f"{path}: OpenVINO cannot load it: {runtime_message(exc)}") from None
        self._request = self._compiled.create_infer_request()

    def _config(self) -> dict[str, str]:
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": "1",
            "INFERENCE_PRECISION_HINT": _HINTS[self.precision or "fp32"][0],
        }
        if self.device == "cpu":
            config["INFERENCE_NUM_THREADS"] = str(self.threads)
        return config

    def _ready(self) -> None:
        if self._request is None:
            raise ModelLoadError(f"OpenVINO cannot compile this model with dynamic inputs ({self._why}): pass --shape")

    def executed_precision(self) -> str | None:
        hint = self._compiled.get_property("INFERENCE_PRECISION_HINT")
        name = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
        return _NAMES.get(name, name)

    def inputs(self) -> list[TensorSpec]:
        specs = []
        for port in (self._compiled or self._model).inputs:
            pshape = port.get_partial_shape()
            known = pshape.rank.is_static
            shape = tuple(d.get_length() if d.is_static else -1 for d in pshape) if known else ()
            names = sorted(port.get_names() - {port.get_any_name()})
            dtype = port.get_element_type().to_dtype().name
            specs.append(TensorSpec(port.get_any_name(), shape, dtype, tuple(names), rank_known=known))
        return specs

    def bind(self, feeds: list[np.ndarray]) -> None:
        import openvino as ov

        self._ready()
        self._feeds = [np.ascontiguousarray(feed) for feed in feeds]
        for i, feed in enumerate(self._feeds):
            self._request.set_input_tensor(i, ov.Tensor(feed))
        self._infer = self._request.infer

    def invoke(self) -> None:
        self._infer()

    def last_latency_ms(self) -> float:
        return self._request.latency

    def predict(self, x: np.ndarray) -> np.ndarray:
        self._ready()
        spec = self.inputs()[0]
        dtype = np.dtype(spec.dtype)
        in_q, out_q = self._quant
        if in_q and in_q[0] and dtype.kind in "iu" and x.dtype.kind == "f":
            x = quantize(x, dtype.name, *in_q[0])
        run = lambda chunk: self._request.infer({0: chunk.astype(dtype)})[0]  # noqa: E731
        if spec.shape[0] > 0:
            y = batched(lambda c: np.array(run(c)), x, spec.shape[0])
        else:
            y = np.concatenate([np.array(run(x[i : i + 4096])) for i in range(0, len(x), 4096)])
        if out_q and out_q[0] and y.dtype.kind in "iu":
            y = dequantize(y, *out_q[0])
        return np.asarray(y, dtype=np.float32)

    def profile_ops(self, runs: int) -> OpProfile:
        """OpenVINO's profiling info: the model compiled again with ``PERF_COUNT`` on, each layer's
        real time after each of ``runs`` infers summed (the info describes the last infer only)."""
        import openvino as ov

        self._ready()
        compiled = ov.Core().compile_model(self._model, _DEVICES[self.device], {**self._config(), "PERF_COUNT": "YES"})
        request = compiled.create_infer_request()
        for i, feed in enumerate(self._feeds):
            request.set_input_tensor(i, ov.Tensor(feed))
        for _ in range(3):
            request.infer()
        layers: dict[str, list] = {}  # name -> [type, kernel, ms summed, ran at least once]
        whole = 0.0
        for _ in range(runs):
            request.infer()
            whole += request.latency
            for info in request.get_profiling_info():
                entry = layers.setdefault(info.node_name, [info.node_type, info.exec_type, 0.0, False])
                entry[2] += info.real_time.total_seconds() * 1e3
                entry[3] |= info.status == info.Status.EXECUTED  # NOT_RUN also when it took under 1 µs
        ops = tuple(
            OpTime(name, kind, ms / runs, 1.0, kernel, _kernel_precision(kernel), kernel.startswith("ref"))
            for name, (kind, kernel, ms, ran) in layers.items()
            if ran
        )
        note = "OpenVINO counts whole microseconds per layer: a layer under 1 µs often reads 0"
        return OpProfile("openvino-perf-counters", ops, runs, note, whole / runs)

    def version(self) -> str:
        return metadata.version("openvino")


def _kernel_precision(exec_type: str) -> str | None:
    """The precision in an OpenVINO kernel name: ``brgemm_avx512_bf16`` → bf16, ``jit_uni_FP32`` → fp32."""
    return PRECISIONS.get(exec_type.rsplit("_", 1)[-1].lower()) if "_" in exec_type else None


def _read(core, path: str, shapes: dict[str, tuple[int, ...]] | None):
    """The model of ``path``; with ``shapes``, an ONNX or TFLite file is converted with them as its
    input shapes (a model whose ranks only those shapes make known converts where a reshape fails),
    and an IR is reshaped."""
    import openvino as ov

    if shapes and not path.lower().endswith(".xml"):
        with comma_free(path) as source:
            return ov.convert_model(source, input={name: list(s) for name, s in shapes.items()})
    model = core.read_model(path)
    if shapes:
        model.reshape({name: ov.PartialShape(list(s)) for name, s in shapes.items()})
    return model


def _tflite_io_quantization(path) -> tuple[list, list]:
    """(scale, zero point) of each integer input and output of a TFLite file (None: a float one)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))  # reads the flatbuffer's tensor details; runs nothing

    def params(details) -> list:
        return [
            tuple(d["quantization"]) if np.dtype(d["dtype"]).kind in "iu" and d["quantization"][0] else None
            for d in details
        ]

    return params(interp.get_input_details()), params(interp.get_output_details())
