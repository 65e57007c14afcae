"""Hand-made run folders that pass the shipped results schema, for tests of the readers
(gate, compare, report, lineage) that need no measurement: fill in what a test leaves out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

LATENCY = {"p50": 0.01, "p90": 0.012, "p95": 0.013, "p99": 0.02, "mean": 0.011, "std": 0.001, "min": 0.009,
           "max": 0.05, "n": 3, "median_ci": [0.009, 0.011], "outliers": 0}  # fmt: skip


def record(rid: str = "r1", target: str | None = "cpu", status: str = "ok", task: str | None = "t", **fields) -> dict:
    """A measurement record of the schema: ``ok`` ones are measured (latency, size, samples)."""
    ok = status == "ok"
    rec = {
        "id": rid,
        "task": task,
        "target": target,
        "artifact": {
            "id": "a1",
            "path": None,
            "format": "tflite",
            "precision": "fp32",
            "label": "tflite-fp32",
            "pass": "tflite",
        },  # fmt: skip
        "runtime": {"name": "litert", "threads": 1, "device": "cpu"},
        "status": status,
        "error": None if ok else "no device here",
        "latency_ms": dict(LATENCY) if ok else None,
        "load_ms": None,
        "cold_start_ms": None,
        "memory_mb": None,
        "size_bytes": {"raw": 1000, "gzip": 900} if ok else None,
        "accuracy": None,
        "accuracy_drop": None,
        "agreement": None,
        "checks": None,
        "samples": f"samples.npz#{rid}" if ok else None,
        "latency_basis": "wall",
    }
    rec.update(fields)
    return rec


def profile(name: str, budgets=()) -> dict:
    return {"name": name, "precision": "fp32", "threads": [1], "runtimes": ["litert"], "pipelines": [],
            "budgets": list(budgets), "peak": {"gops": 10.0}}  # fmt: skip


def results(*records: dict, targets: dict | None = None, **fields) -> dict:
    """A whole results.json around ``records``; ``targets`` defaults to a plain profile per record's target."""
    names = sorted({r["target"] for r in records if r.get("target")})
    out = {
        "schema": "edge-opt/results/2",
        "run_id": "r1",
        "suite": {"name": "s", "tasks": [], "targets": names},
        "created": "2026-12-06T00:00:00Z",
        "duration_s": 1.0,
        "provenance": {
            "machine": {"cpu": "test", "cores_logical": 2},
            "python": "3.11",
            "versions": {},
            "commit": None,
            "options": {},
        },  # fmt: skip
        "targets": targets if targets is not None else {t: profile(t) for t in names},
        "measurements": list(records),
        "checks": {},
    }
    out.update(fields)
    return out


def write(run_dir: Path, results_: dict) -> Path:
    """results.json and a samples.npz holding three times for each record that names samples."""
    run_dir.mkdir(parents=True, exist_ok=True)
    samples = {r["samples"].partition("#")[2]: np.array([0.01, 0.011, 0.012]) for r in results_["measurements"]
               if isinstance(r.get("samples"), str)}  # fmt: skip
    np.savez(run_dir / "samples.npz", **samples)
    (run_dir / "results.json").write_text(json.dumps(results_))
    return run_dir
