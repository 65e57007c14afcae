"""The parent side of the harness: start a worker per measurement and read its result.

Like MLPerf LoadGen's split, the harness owns timing, statistics and memory; the system
under test is a Backend that only loads and runs the model.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_opt.bench.process import WorkerResult
from edge_opt.transports.base import Transport
from edge_opt.transports.local import LocalTransport


@dataclass(frozen=True)
class HarnessOptions:
    min_runs: int = 50
    min_time_s: float = 1.0
    warmup_runs: int = 10
    max_runs: int = 1_000_000
    max_time_s: float = 60.0
    timeout_s: float = 600.0  # the whole child: load, timing, predictions
    ops_runs: int = 0  # > 0: after the timing, a per-op profile over this many invokes (Backend.profile_ops)

    def to_dict(self) -> dict:
        return asdict(self)


def measure(
    model: str | Path | None,
    runtime: str,
    *,
    threads: int = 1,
    device: str = "cpu",
    precision: str | None = None,
    file_precision: str | None = None,
    shapes: dict[str, tuple[int, ...]] | None = None,
    default_batch: int | None = 1,
    data: np.ndarray | None = None,
    options: HarnessOptions = HarnessOptions(),
    trust_model: bool = False,
    feeds: dict[str, np.ndarray] | None = None,
    input_ranges: dict[str, tuple[float, float]] | None = None,
    transport: Transport | None = None,
) -> WorkerResult:
    """Measure one (model, runtime, threads) in a fresh process; never raises for a crash.

    A dynamic first dimension is the batch: it runs at ``default_batch`` (the record warns so);
    ``None``: it must be fixed by ``shapes`` like any other dynamic dimension.
    ``precision`` asks the runtime to execute at another precision than the file stores
    (``bf16`` on OpenVINO); ``file_precision`` (the artifact's) is what the record names as
    executed when the runtime has no precision of its own to report. ``feeds`` are the
    inputs to time by input name (``--input``; their shapes fix the model's), else inputs
    are random of each input's dtype, within ``input_ranges`` where given. ``transport``
    says where the worker runs (default: a subprocess on this machine).
    """
    if transport is None:
        transport = LocalTransport()
    skipped = _skipped(transport, threads, runtime, model)
    if skipped is not None:
        return skipped
    if not getattr(transport, "runs_worker", True):  # the device's own tool feeds random inputs
        feeds = data = None
    with tempfile.TemporaryDirectory(prefix="edge-opt-") as tmp:
        tmp = Path(tmp)
        spec = {
            "model": transport.put(model) if model is not None else None,
            "runtime": runtime,
            "device": device,
            "threads": threads,
            "precision": precision,
            "file_precision": file_precision,
            "shapes": {k: list(v) for k, v in (shapes or {}).items()},
            "default_batch": default_batch,
            "trust_model": trust_model,
            "input_ranges": {k: list(v) for k, v in (input_ranges or {}).items()},
            **options.to_dict(),
        }
        _put_inputs(transport, spec, tmp, feeds, data)
        result = transport.run(spec, options.timeout_s, tmp)
        if result.status == "reshape":  # the model's shapes had to be fixed: measure in a fresh process
            spec = {**spec, "shapes": result.raw["shapes"], "shapes_final": True, "warnings": result.raw["warnings"]}
            result = transport.run(spec, options.timeout_s, tmp)
        if result.status == "ok" and data is not None:
            result.predictions = np.load(tmp / "pred.npy")
        return result


def _skipped(transport: Transport, threads: int, runtime: str, model: str | Path | None) -> WorkerResult | None:
    """The skipped result when the transport cannot run this (too many threads, a runtime it lacks), else None."""
    cpus = transport.usable_cpus()
    if threads > cpus:  # oversubscribed threads measure contention, not the model (and can exhaust the host)
        where = "this machine lets" if transport.name == "local" else f"device {transport.name!r} lets"
        return WorkerResult("skipped", f"{threads} threads asked, and {where} edge-opt use {cpus} CPUs", {})
    why = getattr(transport, "cannot_run", lambda *_: None)(runtime, model)
    if why:  # a device that runs one tool (adb: benchmark_model on .tflite): nothing is sent
        return WorkerResult("skipped", why, {})
    return None


def _put_inputs(
    transport: Transport, spec: dict, tmp: Path, feeds: dict[str, np.ndarray] | None, data: np.ndarray | None
) -> None:
    """Send the input arrays and the data rows to the transport, naming them in ``spec``."""
    if feeds:
        np.savez(tmp / "feeds.npz", **feeds)
        spec["feeds"] = transport.put(tmp / "feeds.npz")
        spec["shapes"] = {**{k: list(np.shape(v)) for k, v in feeds.items()}, **spec["shapes"]}
    if data is not None:
        np.save(tmp / "data.npy", np.ascontiguousarray(data, dtype=np.float32))
        spec["data"] = transport.put(tmp / "data.npy")
        spec["predictions_out"] = "pred.npy"  # a name: the transport brings the file back into tmp
