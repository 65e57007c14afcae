"""ONNX Runtime session; CUDA / TensorRT providers for the GPU profile when present."""

from __future__ import annotations

import json
import os
import tempfile
from importlib import metadata

import numpy as np

from edge_opt.core.errors import ModelLoadError, first_line
from edge_opt.runtimes.base import Backend, TensorSpec, batched
from edge_opt.runtimes.ops import PRECISIONS, OpProfile, OpTime

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

    def _options(self):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        return opts

    def load(self, path: str, shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        import onnxruntime as ort

        self._path = str(path)
        try:
            self._sess = ort.InferenceSession(str(path), sess_options=self._options(), providers=self._providers())
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
        names = [spec.name for spec in self._sess.get_inputs()]
        self._feeds = {name: np.ascontiguousarray(feed) for name, feed in zip(names, feeds, strict=False)}
        self._binding = self._sess.io_binding()
        for name, feed in self._feeds.items():
            self._binding.bind_cpu_input(name, feed)
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

    def profile_ops(self, runs: int) -> OpProfile:
        """ONNX Runtime's own profiler: a second session of the same options with profiling on,
        run ``runs`` times after a warm-up; each node's kernel time from its trace."""
        import onnxruntime as ort

        with tempfile.TemporaryDirectory(prefix="edge-opt-ort-profile-") as tmp:
            opts = self._options()
            opts.enable_profiling = True
            opts.profile_file_prefix = os.path.join(tmp, "trace")
            sess = ort.InferenceSession(self._path, sess_options=opts, providers=self._providers())
            warmup = 3
            for _ in range(warmup + runs):
                sess.run(None, self._feeds)
            with open(sess.end_profiling(), encoding="utf-8") as fh:
                events = json.load(fh)
        return ort_profile(events, warmup, runs, self._providers()[0])

    def version(self) -> str:
        return metadata.version("onnxruntime")

    def info(self) -> dict:
        return {**super().info(), "providers": self._providers()}


def _node_precision(types: list[str]) -> str | None:
    """A node's precision from its input types: int8 where it reads 8-bit integers (the weights
    of ``DynamicQuantizeMatMul``, ``MatMulInteger``, ``QLinearConv``), else its first input's."""
    if any(t in ("int8", "uint8") for t in types):
        return "int8"
    return PRECISIONS.get(types[0], types[0]) if types else None


def ort_profile(events: list[dict], warmup: int, runs: int, intended: str) -> OpProfile:
    """Per-node kernel times of an ONNX Runtime trace, the first ``warmup`` model runs left out;
    a node on another provider than ``intended`` (the first asked for) is a fallback."""
    starts = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    if len(starts) < warmup + runs:
        return OpProfile(None, reason=f"ONNX Runtime's trace holds {len(starts)} runs, not {warmup + runs}")
    cutoff = starts[warmup]
    whole = [e["dur"] for e in events if e.get("name") == "model_run" and e["ts"] >= cutoff]
    nodes: dict[str, list] = {}  # name -> [type, provider, precision, ms summed, calls]
    for e in events:
        if e.get("cat") != "Node" or e["ts"] < cutoff or not e.get("name", "").endswith("_kernel_time"):
            continue
        args = e.get("args") or {}
        types = [next(iter(t)) for t in args.get("input_type_shape") or [] if t]
        precision = _node_precision(types)
        node = nodes.setdefault(
            e["name"].removesuffix("_kernel_time"), [args.get("op_name", "?"), args.get("provider"), precision, 0.0, 0]
        )
        node[3] += e["dur"] / 1e3
        node[4] += 1
    ops = tuple(
        OpTime(name, kind, ms / runs, calls / runs, provider, precision, provider not in (None, intended))
        for name, (kind, provider, precision, ms, calls) in nodes.items()
    )
    whole_ms = sum(whole) / len(whole) / 1e3 if whole else None
    return OpProfile(
        "onnxruntime-profiler", ops, runs, "ONNX Runtime's trace counts whole microseconds per node", whole_ms
    )
