"""The Transport contract (checked by ``edge_opt.conformance.check_transport``)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from edge_opt.bench.process import WorkerResult
from edge_opt.core.errors import EdgeOptError

#: The names in a worker spec that hold files the harness wrote for the worker to read.
INPUT_FILES = ("model", "feeds", "data")
#: The name in a worker spec of the file the worker writes back (a bare file name).
OUTPUT_FILE = "predictions_out"


class TransportError(EdgeOptError):
    """The device cannot be reached or used (connection refused, lost, no such folder)."""


@runtime_checkable
class Transport(Protocol):
    name: str  # the device's name

    def put(self, path: str | Path) -> str:
        """Make a local file (an OpenVINO .xml with its .bin, a SavedModel folder) available on the
        device; returns the path the device's worker reads. Content-addressed: sent once."""
        ...

    def run(self, spec: dict, timeout_s: float, local_dir: Path) -> WorkerResult:
        """Run the harness worker on ``spec`` (whose file names come from ``put``), killing it after
        ``timeout_s``; the file named by ``spec['predictions_out']`` (a bare name) lands in
        ``local_dir``. Never raises for the device's or the model's failures: the result says."""
        ...

    def usable_cpus(self) -> int:
        """How many CPUs a measurement may use there (its core mask, else the device's)."""
        ...

    def fingerprint(self) -> dict:
        """CPU model, cores, governor and frequency, memory, OS, runtime versions (raises TransportError)."""
        ...

    def conditions(self) -> dict:
        """Governor and current frequency of the CPUs a measurement uses, now."""
        ...

    def close(self) -> None: ...


def companions(path: Path) -> list[Path]:
    """The files that make up one model: the file, an OpenVINO .xml's .bin, a folder's files."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    extra = path.with_suffix(".bin")
    return [path, extra] if path.suffix.lower() == ".xml" and extra.is_file() else [path]
