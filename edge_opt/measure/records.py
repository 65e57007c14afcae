"""The measurement record: one (artifact, runtime, device, threads, precision) result.

``Measurement`` is immutable: scoring and attaching trust-check summaries make a new one
(``dataclasses.replace``). ``to_json`` gives the plain dict ``results.json`` holds, a copy
that shares nothing with the record. Every field is always present; a failed or skipped
measurement has ``None`` figures and says why in ``error``.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, fields
from typing import Any

from edge_opt.bench.process import WorkerResult

STATUSES = ("ok", "failed", "skipped")
#: What a record's ``latency_ms`` measures on every runtime: choose, compare and gate decide on it.
LATENCY_BASIS = {
    "wall": "the wall clock (perf_counter_ns) around one call of the runtime from Python, inputs bound once",
}


def record_id(
    artifact_id: str, runtime: str, device: str, threads: int, precision: str | None = None, where: str | None = None
) -> str:
    """``device`` is the accelerator (cpu, gpu, edgetpu); ``where`` the inventory device (None: this host)."""
    key = f"{artifact_id}|{runtime}|{device}|{threads}" + (f"|{precision}" if precision else "")
    key += f"|@{where}" if where else ""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def runtime_label(rt: dict[str, Any]) -> str:
    """``openvino``, ``openvino@bf16`` (a precision the profile asked for), ``onnxruntime (gpu)``."""
    label = rt.get("name") or "?"
    if rt.get("precision_requested"):
        label += f"@{rt['precision_requested']}"
    if rt.get("device") not in (None, "cpu", "-"):
        label += f" ({rt['device']})"
    return label


#: The record's fields of a per-op profile, as the worker reports them (OpProfile.to_dict).
OPS_FIELDS = ("ops", "ops_method", "ops_total_ms", "ops_runs", "ops_whole_ms", "ops_note", "ops_count", "ops_fallback")


@dataclass(frozen=True)
class Measurement:
    id: str
    task: str | None
    target: str | None
    artifact: dict[str, Any]  # id, path, sha256, format, precision, target, pass, parent, label
    runtime: dict[str, Any]  # name, version, threads, device, precision (executed), precision_requested, note...
    status: str  # ok | failed | skipped
    error: str | None
    latency_ms: dict[str, Any] | None  # the wall clock around each call (LATENCY_BASIS), for every runtime
    runtime_latency_ms: dict[str, Any] | None  # the runtime's own timer over the same calls, where it has one
    load_ms: float | None
    cold_start_ms: float | None
    memory_mb: dict[str, float] | None
    size_bytes: dict[str, int] | None
    accuracy: float | None = None
    accuracy_drop: float | None = None
    agreement: float | None = None
    inputs: list[dict[str, Any]] | None = None
    latency_samples_ms: list[float] | None = None
    checks: dict[str, Any] | None = None  # trust-check summaries of this record's file
    warnings: list[str] | None = None  # what the harness warned about (e.g. a placeholder input size)
    # The inventory device it ran on (name, transport, address, core_mask, conditions: governor and
    # frequency before and after); None: this host, without a device of the inventory.
    device: dict[str, Any] | None = None
    # A tool that times its own loop and prints only a summary (LiteRT's benchmark_model over adb):
    # n, mean, std, min, max (ms) as it printed them, ``samples: unavailable``; latency_ms stays None.
    latency_summary_ms: dict[str, Any] | None = None
    # What latency_ms measures, the same for every runtime so that records compare (LATENCY_BASIS).
    latency_basis: str = "wall"
    # The per-op profile (``bench --ops``; edge_opt.runtimes.ops): the ops worst first, how they
    # were timed, their sum, the invokes averaged, the whole model's time then, and a note.
    ops: list[dict[str, Any]] | None = None
    ops_method: str | None = None
    ops_total_ms: float | None = None
    ops_runs: int | None = None
    ops_whole_ms: float | None = None
    ops_note: str | None = None
    ops_count: int | None = None  # budgets: ops.count
    ops_fallback: int | None = None  # budgets: ops.fallback, the ops off the intended delegate/provider/kernels
    # The repair loop's record when a budget (max_drop) rebuilt this file's pipeline: every step tried
    # with its drop, p50, size and layers left in float (edge_opt.repair.RepairResult.to_dict).
    repair: dict[str, Any] | None = None

    @property
    def key(self) -> tuple:
        """What makes two measurements the same one."""
        rt = self.runtime
        where = (self.device or {}).get("name")
        return (
            self.artifact["id"],
            rt.get("name"),
            rt.get("device"),
            rt.get("threads"),
            rt.get("precision_requested"),
            where,
        )

    def to_json(self) -> dict[str, Any]:
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)}


def build_record(
    *,
    artifact: dict[str, Any],
    runtime: str,
    device: str,
    threads: int,
    size_bytes: dict[str, int] | None,
    result: WorkerResult | None = None,
    status: str | None = None,
    error: str | None = None,
    task: str | None = None,
    note: str = "",
    precision: str | None = None,
) -> Measurement:
    raw = result.raw if result else {}
    status = status or (result.status if result else "failed")
    error = error if error is not None else (result.error if result else None)
    info = raw.get("runtime") or {
        "name": runtime,
        "version": None,
        "threads": threads,
        "device": device,
        "precision": precision or artifact.get("precision"),
    }
    where = raw.get("device")
    return Measurement(
        id=record_id(artifact["id"], runtime, device, threads, precision, where["name"] if where else None),
        task=task,
        target=artifact.get("target"),
        artifact=dict(artifact),
        runtime={**info, "precision_requested": precision, "note": note},
        status=status,
        error=error,
        latency_ms=result.latency_ms if result and status == "ok" else None,
        runtime_latency_ms=result.runtime_latency_ms if result and status == "ok" else None,
        load_ms=raw.get("load_ms"),
        cold_start_ms=raw.get("cold_start_ms"),
        memory_mb=raw.get("memory_mb"),
        size_bytes=size_bytes,
        inputs=raw.get("inputs"),
        latency_samples_ms=raw.get("samples_ms"),
        warnings=raw.get("warnings") or None,
        device=where,
        latency_summary_ms=raw.get("latency_summary_ms") if status == "ok" else None,
        **{name: raw.get(name) for name in OPS_FIELDS if status == "ok"},
    )
