"""The parent side of the harness: start a worker per measurement and read its result.

Like MLPerf LoadGen's split, the harness owns timing, statistics and memory; the system
under test is a Backend that only loads and runs the model.
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_opt.bench.stats import summarize

if TYPE_CHECKING:
    from edge_opt.transports.base import Transport


@dataclass(frozen=True)
class HarnessOptions:
    min_runs: int = 50
    min_time_s: float = 1.0
    warmup_runs: int = 10
    max_runs: int = 1_000_000
    max_time_s: float = 60.0
    timeout_s: float = 600.0  # the whole child: load, timing, predictions

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class WorkerResult:
    """What one child measured; ``predictions`` only when data was given."""

    status: str  # ok | failed | skipped
    error: str | None
    raw: dict
    predictions: np.ndarray | None = None
    exit_code: int | None = None  # the edge-opt exit code the child's error maps to

    @property
    def latency_ms(self) -> dict | None:
        samples = self.raw.get("samples_ms")
        return summarize(samples) if samples else None


def measure(
    model: str | Path | None,
    runtime: str,
    *,
    threads: int = 1,
    device: str = "cpu",
    precision: str | None = None,
    file_precision: str | None = None,
    shapes: dict[str, tuple[int, ...]] | None = None,
    default_batch: int | None = None,
    data: np.ndarray | None = None,
    options: HarnessOptions = HarnessOptions(),
    trust_model: bool = False,
    feeds: dict[str, np.ndarray] | None = None,
    input_ranges: dict[str, tuple[float, float]] | None = None,
    transport: Transport | None = None,
) -> WorkerResult:
    """Measure one (model, runtime, threads) in a fresh process; never raises for a crash.

    ``precision`` asks the runtime to execute at another precision than the file stores
    (``bf16`` on OpenVINO); ``file_precision`` (the artifact's) is what the record names as
    executed when the runtime has no precision of its own to report. ``feeds`` are the
    inputs to time by input name (``--input``; their shapes fix the model's), else inputs
    are random of each input's dtype, within ``input_ranges`` where given. ``transport``
    says where the worker runs (default: a subprocess on this machine).
    """
    if transport is None:
        from edge_opt.transports.local import LocalTransport

        transport = LocalTransport()
    cpus = transport.usable_cpus()
    if threads > cpus:  # oversubscribed threads measure contention, not the model (and can exhaust the host)
        where = "this machine lets" if transport.name == "local" else f"device {transport.name!r} lets"
        return WorkerResult("skipped", f"{threads} threads asked, and {where} edge-opt use {cpus} CPUs", {})
    why = getattr(transport, "cannot_run", lambda *_: None)(runtime, model)
    if why:  # a device that runs one tool (adb: benchmark_model on .tflite): nothing is sent
        return WorkerResult("skipped", why, {})
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
        if feeds:
            np.savez(tmp / "feeds.npz", **feeds)
            spec["feeds"] = transport.put(tmp / "feeds.npz")
            spec["shapes"] = {**{k: list(np.shape(v)) for k, v in feeds.items()}, **spec["shapes"]}
        if data is not None:
            np.save(tmp / "data.npy", np.ascontiguousarray(data, dtype=np.float32))
            spec["data"] = transport.put(tmp / "data.npy")
            spec["predictions_out"] = "pred.npy"  # a name: the transport brings the file back into tmp
        result = transport.run(spec, options.timeout_s, tmp)
        if result.status == "reshape":  # the model's shapes had to be fixed: measure in a fresh process
            spec = {**spec, "shapes": result.raw["shapes"], "shapes_final": True, "warnings": result.raw["warnings"]}
            result = transport.run(spec, options.timeout_s, tmp)
        if result.status == "ok" and data is not None:
            result.predictions = np.load(tmp / "pred.npy")
        return result


#: How often the harness reads the child's USS (a peak shorter than this can be missed).
USS_SAMPLE_S = 0.025


class _UssSampler(threading.Thread):
    """The highest USS of a process, read from outside it every ``USS_SAMPLE_S`` until it ends.

    USS (memory unique to the process) has no kernel high-water mark as RSS has (VmHWM), so
    it is sampled; sampling from the parent keeps the measuring process's own threads and
    timing loop untouched.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.samples = pid, 0, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            proc = psutil.Process(self.pid)
            while not self._stop_event.is_set():
                self.peak = max(self.peak, proc.memory_full_info().uss)
                self.samples += 1
                self._stop_event.wait(USS_SAMPLE_S)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, e.g. a container's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _tail(text: str, lines: int = 5) -> str:
    kept = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])
