"""The result store: a run folder (results.json, samples.npz, report.md/.json/.html) and a SQLite history.

Raw latency samples go to ``samples.npz`` (one array per record id) so results.json stays
readable; records name their array in ``samples``.
"""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edge_opt.core.errors import BadInputError, first_line
from edge_opt.core.fileio import write_bytes_atomic, write_json_atomic, write_text_atomic

RESULTS = "results.json"


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class _ArtifactRef(_Loose):
    id: str
    format: str
    precision: str
    label: str | None = None
    path: str | None = None


class _RuntimeRef(_Loose):
    name: str | None = None
    device: str | None = None
    threads: int | None = None


class _Record(_Loose):
    id: str
    status: Literal["ok", "failed", "skipped"]
    target: str | None = None
    task: str | None = None
    artifact: _ArtifactRef
    runtime: _RuntimeRef
    error: str | None = None
    latency_ms: dict[str, Any] | None = None
    size_bytes: dict[str, Any] | None = None


class _Results(_Loose):
    run_id: str
    measurements: list[_Record]
    targets: dict[str, dict[str, Any]] = Field(default_factory=dict)
    checks: dict[str, Any] = Field(default_factory=dict)


SAMPLES = "samples.npz"
#: The JSON Schemas (draft 2020-12) of the files a run writes, shipped in the package.
SCHEMAS = {"results.json": "results.schema.json", "report.json": "report.schema.json"}


def load_schema(file_name: str) -> dict:
    """The JSON Schema of ``results.json`` or ``report.json`` (``edge_opt/schemas/``)."""
    from importlib.resources import files

    return json.loads(files("edge_opt").joinpath("schemas", SCHEMAS[file_name]).read_text(encoding="utf-8"))


def write_run(run_dir: Path, results: dict) -> None:
    from edge_opt.report.markdown import render_json, render_markdown

    samples = {}
    for rec in results["measurements"]:
        values = rec.pop("latency_samples_ms", None)
        if values:
            samples[rec["id"]] = np.asarray(values, dtype=np.float64)
            rec["samples"] = f"{SAMPLES}#{rec['id']}"
        else:
            rec["samples"] = None
    buf = io.BytesIO()
    np.savez_compressed(buf, **samples)
    write_bytes_atomic(run_dir / SAMPLES, buf.getvalue())
    write_json_atomic(run_dir / RESULTS, results)
    from edge_opt.core.lineage import lineage_lines, load_manifests

    lineage = lineage_lines(load_manifests(run_dir)) if (run_dir / "artifacts").is_dir() else None
    write_text_atomic(run_dir / "report.md", render_markdown(results, lineage))
    if results.get("checks"):
        from edge_opt.analysis.checks import checks_markdown

        write_text_atomic(run_dir / "checks.md", checks_markdown(results["checks"]))
    write_json_atomic(run_dir / "report.json", render_json(results))
    from edge_opt.report.html import RunView, read_history, write_html

    history, note = read_history(run_dir.parent / "history.sqlite", results)
    write_html(run_dir / "report.html", [RunView(run_dir, results, lineage, history, note)])


def load_run(run_dir: str | Path) -> dict:
    """Read a run's results.json (a run folder or the file itself)."""
    path = Path(run_dir)
    if path.is_dir():
        path = path / RESULTS
    if not path.is_file():
        raise BadInputError(f"{run_dir}: no {RESULTS} here (is it a finished run folder?)")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadInputError(f"{path}: corrupt results file: {type(exc).__name__}: {first_line(exc)}") from None
    if not isinstance(results, dict) or "measurements" not in results:
        raise BadInputError(f"{path}: not an edge-opt results file (no 'measurements')")
    from edge_opt.core.config import validate

    validate(_Results, results, path)  # the fields every reader relies on, typed
    return results


def load_samples(run_dir: str | Path, record: dict) -> np.ndarray | None:
    ref = record.get("samples")
    if not ref:
        return None
    file, _, key = ref.partition("#")
    with np.load(Path(run_dir) / file) as npz:
        return npz[key]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS measurements (
    run_id TEXT, created TEXT, suite TEXT, commit_sha TEXT, machine TEXT,
    task TEXT, target TEXT, artifact_id TEXT, label TEXT, format TEXT, precision TEXT,
    runtime TEXT, runtime_version TEXT, device TEXT, threads INTEGER, status TEXT,
    p50_ms REAL, p90_ms REAL, p99_ms REAL, load_ms REAL, peak_rss_mb REAL,
    size_raw INTEGER, size_gzip INTEGER, accuracy REAL, accuracy_drop REAL, error TEXT
)"""
# Columns added since the first schema: (name, type). An older history file gets them.
_ADDED = (("record_id", "TEXT"), ("executed_precision", "TEXT"), ("requested_precision", "TEXT"))


def _connect(db: Path) -> sqlite3.Connection:
    """A connection that waits for another run's write instead of failing, in WAL mode."""
    con = sqlite3.connect(db, timeout=60)
    con.execute("PRAGMA journal_mode=WAL")
    return con


def check_history(db: Path) -> None:
    """Before a run: the history file is absent or an edge-opt history SQLite can append to."""
    db = Path(db)
    if not db.exists():
        return
    if not db.is_file():
        raise BadInputError(f"{db}: not a file; move it away so the run can start a history there")
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)
        try:
            tables = {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}
            if tables and "measurements" not in tables:
                raise BadInputError(f"{db}: an SQLite file, but not an edge-opt history (no 'measurements' table)")
            if "measurements" in tables:
                con.execute("select count(*) from measurements").fetchone()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise BadInputError(
            f"{db}: not a readable edge-opt history ({exc}); move it away or delete it to start a new one"
        ) from None


def append_history(db: Path, results: dict) -> None:
    """One row per measurement, for trends across runs and machines."""
    prov = results.get("provenance", {})
    machine = prov.get("machine", {}).get("cpu")
    rows = []
    for r in results["measurements"]:
        lat, mem, size = r.get("latency_ms") or {}, r.get("memory_mb") or {}, r.get("size_bytes") or {}
        rt, art = r["runtime"], r["artifact"]
        rows.append(
            (
                results["run_id"],
                results.get("created"),
                results["suite"]["name"],
                prov.get("commit"),
                machine,
                r.get("task"),
                r.get("target"),
                art["id"],
                art.get("label"),
                art["format"],
                art["precision"],
                rt.get("name"),
                rt.get("version"),
                rt.get("device"),
                rt.get("threads"),
                r["status"],
                lat.get("p50"),
                lat.get("p90"),
                lat.get("p99"),
                r.get("load_ms"),
                mem.get("peak_rss"),
                size.get("raw"),
                size.get("gzip"),
                r.get("accuracy"),
                r.get("accuracy_drop"),
                r.get("error"),
                r.get("id"),
                rt.get("precision"),
                rt.get("precision_requested"),
            )
        )
    with contextlib.closing(_connect(db)) as con, con:  # a transaction: all rows of the run or none
        # One writer at a time from the schema check to the commit: two runs finishing together
        # must not both add the same column (the busy timeout makes the second one wait).
        con.execute("BEGIN IMMEDIATE")
        con.execute(_SCHEMA)
        have = {row[1] for row in con.execute("PRAGMA table_info(measurements)")}
        for name, kind in _ADDED:
            if name not in have:
                con.execute(f"ALTER TABLE measurements ADD COLUMN {name} {kind}")
        names = [row[1] for row in con.execute("PRAGMA table_info(measurements)")][: 26 + len(_ADDED)]
        con.executemany(f"INSERT INTO measurements ({','.join(names)}) VALUES ({','.join('?' * len(names))})", rows)
