"""What a worker process gives back, and how it is watched from outside: shared by the harness and every transport.

Below both: a transport returns a ``WorkerResult`` and samples its worker's memory with a
``UssSampler`` without importing the harness that drives it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

from edge_opt.bench.stats import summarize


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
        """The wall-clock samples around each call: the one basis every runtime is compared on."""
        samples = self.raw.get("samples_ms")
        return summarize(samples) if samples else None

    @property
    def runtime_latency_ms(self) -> dict | None:
        """The runtime's own timer over the same calls (OpenVINO's), or None where it has none."""
        samples = self.raw.get("runtime_samples_ms")
        return summarize(samples) if samples else None


#: How often the harness reads the child's USS (a peak shorter than this can be missed).
USS_SAMPLE_S = 0.025


class UssSampler(threading.Thread):
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


def tail(text: str, lines: int = 5) -> str:
    kept = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])
