"""history.sqlite: one row per measurement of every run in a folder, for trends across runs.

Written in SQLite's WAL mode with a busy timeout, so two runs finishing together both land.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_opt.core.errors import BadInputError

SCHEMA = """
CREATE TABLE IF NOT EXISTS measurements (
    run_id TEXT, created TEXT, suite TEXT, commit_sha TEXT, machine TEXT,
    task TEXT, target TEXT, artifact_id TEXT, label TEXT, format TEXT, precision TEXT,
    runtime TEXT, runtime_version TEXT, device TEXT, threads INTEGER, status TEXT,
    p50_ms REAL, p90_ms REAL, p99_ms REAL, load_ms REAL, peak_rss_mb REAL,
    size_raw INTEGER, size_gzip INTEGER, accuracy REAL, accuracy_drop REAL, error TEXT
)"""
# Columns added since the first schema: (name, type). An older history file gets them.
ADDED = (("record_id", "TEXT"), ("executed_precision", "TEXT"), ("requested_precision", "TEXT"))


def connect(db: Path) -> sqlite3.Connection:
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
    with contextlib.closing(connect(db)) as con, con:  # a transaction: all rows of the run or none
        # One writer at a time from the schema check to the commit: two runs finishing together
        # must not both add the same column (the busy timeout makes the second one wait).
        con.execute("BEGIN IMMEDIATE")
        con.execute(SCHEMA)
        have = {row[1] for row in con.execute("PRAGMA table_info(measurements)")}
        for name, kind in ADDED:
            if name not in have:
                con.execute(f"ALTER TABLE measurements ADD COLUMN {name} {kind}")
        names = [row[1] for row in con.execute("PRAGMA table_info(measurements)")][: 26 + len(ADDED)]
        con.executemany(f"INSERT INTO measurements ({','.join(names)}) VALUES ({','.join('?' * len(names))})", rows)


@dataclass(frozen=True)
class TrendPoint:
    """One measurement of ``history.sqlite``: a run's median for one candidate."""

    run_id: str
    created: str | None
    task: str | None
    target: str | None
    key: str  # label · runtime · threads (what stays the same across runs)
    p50_ms: float


def candidate_key(label: str | None, runtime: str | None, threads: int | None) -> str:
    return f"{label} · {runtime} · {threads}t"


def read_history(db: Path, results: dict[str, Any]) -> tuple[tuple[TrendPoint, ...], str]:
    """Every measured median of the history beside a run, plus this run's (not yet appended while staged)."""
    points: list[TrendPoint] = []
    note = f"{db.name}: none beside this run folder; the trend holds this run only"
    if db.is_file():
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as con:
                have = {row[1] for row in con.execute("PRAGMA table_info(measurements)")}
                requested = "requested_precision" if "requested_precision" in have else "NULL"
                rows = con.execute(
                    f"SELECT run_id, created, task, target, label, runtime, {requested}, threads, p50_ms "
                    "FROM measurements WHERE status = 'ok' AND p50_ms IS NOT NULL"
                ).fetchall()
            for run_id, created, task, target, label, runtime, prec, threads, p50 in rows:
                name = f"{runtime}@{prec}" if prec else runtime
                points.append(TrendPoint(run_id, created, task, target, candidate_key(label, name, threads), p50))
            note = f"{db.name}: {len({p.run_id for p in points})} run(s) with measurements"
        except sqlite3.DatabaseError as exc:
            note = f"{db.name}: not readable ({exc}); the trend holds this run only"
            points = []
    if not any(p.run_id == results["run_id"] for p in points):
        for rec in results["measurements"]:
            p50 = (rec.get("latency_ms") or {}).get("p50")
            if rec.get("status") == "ok" and p50 is not None:
                points.append(
                    TrendPoint(
                        results["run_id"],
                        results.get("created"),
                        rec.get("task"),
                        rec.get("target"),
                        record_key(rec),
                        p50,
                    )
                )
    return tuple(points), note


def record_key(rec: dict[str, Any]) -> str:
    rt = rec.get("runtime") or {}
    name = rt.get("name")
    if rt.get("precision_requested"):
        name = f"{name}@{rt['precision_requested']}"
    return candidate_key((rec.get("artifact") or {}).get("label"), name, rt.get("threads"))
