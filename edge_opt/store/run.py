"""A run folder's own files: results.json and samples.npz, written and read back.

Raw latency samples go to ``samples.npz`` (one array per record id) so results.json stays
readable; records name their array in ``samples``. ``by-label/`` finds an artifact by its
label: ``by-label/<task>/<target>/<label>`` (``float`` for the float model) and
``by-label/<task>/<target>/chosen``, relative links into ``artifacts/``. Rendering (report.md, report.json,
checks.md, report.html) is the report package's, which the runner calls after storing.
"""

from __future__ import annotations

import io
import json
import os
import re
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edge_opt.budgets.choose import choose_each
from edge_opt.core.config import validate
from edge_opt.core.errors import BadInputError, first_line
from edge_opt.core.fileio import write_bytes_atomic, write_json_atomic

RESULTS = "results.json"
LABELS = "by-label"


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
    return json.loads(files("edge_opt").joinpath("schemas", SCHEMAS[file_name]).read_text(encoding="utf-8"))


def relative_paths(obj: Any, run_dir: str | Path) -> Any:
    """``obj`` (JSON-like) with every string that names a path inside ``run_dir`` made relative to
    it, so that a run's files stay valid after its folder is renamed or moved. Paths may be
    absolute or relative to the working folder (``--out out`` gives ``out/<run>/...``)."""
    return _relative(obj, os.path.abspath(run_dir))


def _relative(obj: Any, root: str) -> Any:
    if isinstance(obj, dict):
        return {k: _relative(v, root) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_relative(v, root) for v in obj]
    if isinstance(obj, str) and (os.path.isabs(obj) or os.sep in obj):
        path = os.path.abspath(obj)
        if path.startswith(root + os.sep):
            return os.path.relpath(path, root)
    return obj


def write_run(run_dir: Path, results: dict) -> None:
    """results.json and samples.npz: each record's raw samples move out of the record into the npz."""
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
    write_label_index(run_dir, results)


def _name(text: Any) -> str:
    """A label or task name as one safe path component."""
    return re.sub(r"[^\w.+@=-]", "_", str(text)).lstrip(".") or "_"


def write_label_index(run_dir: Path, results: dict) -> None:
    """``by-label/``: a relative link per (task, target, label) to its artifact folder, and per
    (task, target) ``chosen`` to the artifact the profile's budgets choose (none when nothing fits)."""
    root = Path(run_dir).resolve()
    links: dict[Path, Path] = {}

    def add(rec: dict, *name: str) -> None:
        path = (rec.get("artifact") or {}).get("path")
        folder = (root / path).resolve().parent if path else None
        if folder is not None and folder.parent == root / "artifacts" and folder.is_dir():
            links.setdefault(Path(LABELS, *map(_name, name)), folder)

    for rec in results["measurements"]:
        add(rec, rec.get("task") or "model", rec.get("target") or "float", rec["artifact"].get("label") or rec["id"])
    for (task, target), sel in choose_each(results).items():
        if sel.chosen is not None:
            add(sel.chosen, task or "model", target, "chosen")
    for link, folder in links.items():
        (root / link).parent.mkdir(parents=True, exist_ok=True)
        (root / link).unlink(missing_ok=True)  # a resumed run writes its index again
        os.symlink(os.path.relpath(folder, (root / link).parent), root / link, target_is_directory=True)


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
    validate(_Results, results, path)  # the fields every reader relies on, typed
    return results


def load_samples(run_dir: str | Path, record: dict) -> np.ndarray | None:
    ref = record.get("samples")
    if not ref:
        return None
    file, _, key = ref.partition("#")
    with np.load(Path(run_dir) / file) as npz:
        return npz[key]
