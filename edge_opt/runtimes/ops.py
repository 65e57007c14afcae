"""Per-op profiles: one schema for what every runtime says about the time each op takes.

A backend's ``profile_ops(runs)`` gives an :class:`OpProfile`: the ops with their mean time per
invoke, the kernel, provider or delegate that ran each (``exec``) and the precision it ran in,
where the runtime says. ``method`` names where the times come from:

- ``onnxruntime-profiler``: ONNX Runtime's own trace (``SessionOptions.enable_profiling``);
- ``openvino-perf-counters``: OpenVINO's profiling info (``PERF_COUNT``), per infer request;
- ``isolated``: each op cut from the file into a model of its own (same tensors, types and
  quantization) and timed alone, where the runtime has no profiler (LiteRT on the host);
- ``benchmark_model``: LiteRT's ``--enable_op_profiling`` tables (on a phone, over adb).

A runtime that cannot profile gives a profile with ``method: None`` and the ``reason``; never an
error.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class OpTime:
    """One op of a profile: ``ms`` is its mean time per invoke of the model (all its calls)."""

    name: str
    type: str
    ms: float
    calls: float = 1.0  # times it ran per invoke
    exec: str | None = None  # the kernel, provider or delegate that ran it
    precision: str | None = None  # what it computed in, where the runtime says
    fallback: bool = False  # run off the intended delegate, provider or kernel class (a slow path)


@dataclass(frozen=True)
class OpProfile:
    method: str | None
    ops: tuple[OpTime, ...] = ()
    runs: int = 0  # invokes the times are averaged over
    reason: str | None = None  # why there is no profile, or what to know about this one
    whole_ms: float | None = None  # the model's time per invoke while it was profiled, where known

    @property
    def total_ms(self) -> float | None:
        return sum(op.ms for op in self.ops) if self.ops else None

    def to_dict(self) -> dict[str, Any]:
        """The record's fields: ``ops`` (worst first, each with its ``share``), ``ops_method``,
        ``ops_total_ms``, ``ops_runs``, ``ops_whole_ms``, ``ops_note``, and for budgets
        ``ops_count`` and ``ops_fallback`` (ops off the intended path)."""
        total = self.total_ms
        ops = sorted(self.ops, key=lambda op: -op.ms)
        return {
            "ops": [{**asdict(op), "share": op.ms / total if total else None} for op in ops] if self.ops else None,
            "ops_method": self.method,
            "ops_total_ms": total,
            "ops_runs": self.runs,
            "ops_whole_ms": self.whole_ms,
            "ops_note": self.reason,
            "ops_count": len(self.ops) if self.method else None,
            "ops_fallback": sum(op.fallback for op in self.ops) if self.method else None,
        }


#: What the type of an op that does a layer's arithmetic holds (lower case, no underscores), on
#: every runtime (``CONV_2D``, ``FusedConv``, ``QLinearConv``, ``GroupConvolution``, ``MatMul``,
#: ``DynamicQuantizeMatMul``, ``BATCH_MATMUL``, ``Gemm``, ``FULLY_CONNECTED``): the ops whose
#: precision says what precision the model ran in. OpenVINO's ``Convert`` is a cast.
COMPUTE_OPS = ("conv", "matmul", "gemm", "fullyconnected", "innerproduct")

#: The precisions a file can ask its compute ops to run in (``dynamic`` and ``mixed`` ask no one).
_ASKED = ("fp32", "fp16", "bf16", "int8", "int16")


def mark_precision(profile: OpProfile, asked: str | None) -> OpProfile:
    """``profile`` with each compute op that ran in another precision than ``asked`` (the file's,
    or the one the profile asked the runtime for) marked as a fallback: an int8 file's
    ``MatMul`` computed in fp32, an fp32 file's ``Convolution`` run by a bf16 kernel. An op whose
    precision the runtime does not say is left as it is."""
    if asked not in _ASKED or not profile.ops:
        return profile
    ops = tuple(
        replace(op, fallback=True)
        if not op.fallback and op.precision and op.precision != asked and _is_compute(op.type)
        else op
        for op in profile.ops
    )
    if ops == profile.ops:
        return profile
    note = f"a compute op run in another precision than {asked} counts as a fallback"
    return replace(profile, ops=ops, reason="; ".join(filter(None, (profile.reason, note))))


def _is_compute(op_type: str) -> bool:
    kind = op_type.lower().replace("_", "")
    return kind != "convert" and any(k in kind for k in COMPUTE_OPS)


def unsupported(reason: str) -> OpProfile:
    return OpProfile(method=None, reason=reason)


def mean_call_ms(call: Callable[[], None], runs: int, warmup: int = 3, min_time_s: float = 0.02) -> float:
    """The time of one ``call`` in ms: batches of ``runs`` calls, each timed as the harness times a
    model (``perf_counter_ns``, garbage collection off), repeated for at least ``min_time_s`` and
    five batches; the median batch's mean, so a burst of noise in one batch does not count."""
    for _ in range(warmup):
        call()
    clock = time.perf_counter_ns
    enabled = gc.isenabled()
    gc.disable()
    means: list[float] = []
    try:
        end = clock() + min_time_s * 1e9
        while len(means) < 5 or clock() < end:
            t = clock()
            for _ in range(runs):
                call()
            means.append((clock() - t) / runs / 1e6)
    finally:
        if enabled:
            gc.enable()
    return statistics.median(means)


#: Element types as the runtimes name them, to the precisions edge-opt names.
PRECISIONS = {
    "float": "fp32",
    "float32": "fp32",
    "f32": "fp32",
    "fp32": "fp32",
    "float16": "fp16",
    "f16": "fp16",
    "fp16": "fp16",
    "bfloat16": "bf16",
    "bf16": "bf16",
    "int8": "int8",
    "i8": "int8",
    "uint8": "int8",
    "u8": "int8",
    "int16": "int16",
    "i16": "int16",
    "int32": "int32",
    "i32": "int32",
    "int64": "int64",
    "i64": "int64",
}
