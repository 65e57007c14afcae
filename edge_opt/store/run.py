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
import math
import os
import re
import zipfile
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from edge_opt.budgets.choose import choose_each
from edge_opt.core.arrays import check_npz
from edge_opt.core.errors import BadInputError, first_line, printable, printable_all, quoted
from edge_opt.core.fileio import write_bytes_atomic, write_json_atomic

RESULTS = "results.json"
LABELS = "by-label"


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


#: The largest results.json read (a real suite's is a few MB).
MAX_RESULTS_BYTES = 256 * 1024**2


def load_run(run_dir: str | Path) -> dict:
    """Read a run's results.json (a run folder or the file itself), validated against the shipped
    JSON Schema before any reader sees it, every string in it made printable."""
    path = Path(run_dir)
    if path.is_dir():
        path = path / RESULTS
    if not path.is_file():
        raise BadInputError(f"{run_dir}: no {RESULTS} here (is it a finished run folder?)")
    if path.stat().st_size > MAX_RESULTS_BYTES:
        raise BadInputError(f"{path}: {path.stat().st_size:,} bytes, more than a results file holds")
    try:
        results = json.loads(
            path.read_text(encoding="utf-8"), parse_constant=_no_constant, parse_float=_finite, parse_int=_bounded
        )
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError among them
        raise BadInputError(f"{path}: corrupt results file: {type(exc).__name__}: {first_line(exc)}") from None
    if not isinstance(results, dict) or "measurements" not in results:
        raise BadInputError(f"{path}: not an edge-opt results file (no 'measurements')")
    _check_schema(results, path)
    return printable_all(results)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} overflows a float")
    return value


def _bounded(text: str) -> int:
    if len(text.lstrip("-")) > 18:
        raise ValueError(f"an integer of {len(text)} digits")
    return int(text)


def _check_schema(results: dict, path: Path) -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    error = best_match(Draft202012Validator(load_schema(RESULTS)).iter_errors(results))
    if error is None:
        return
    where = [str(p) for p in error.absolute_path]
    if error.validator == "required":  # name the missing field itself
        where.append(next((str(k) for k in error.validator_value if k not in error.instance), "?"))
        reason = "missing"
    else:
        reason = _reason(error)
    field = printable(".".join(where) or "(the whole file)")
    raise BadInputError(f"{path}: not a valid results file: field '{field}': {reason}")


_RULES = {
    "type": "is not of type {}",
    "enum": "is not one of {}",
    "const": "is not {}",
    "pattern": "does not match {}",
    "minimum": "is below the minimum {}",
    "maximum": "is above the maximum {}",
    "exclusiveMinimum": "must be above {}",
}


def _reason(error) -> str:
    """What a schema error refuses, without echoing the (perhaps huge or hostile) value."""
    rule = _RULES.get(error.validator, f"fails {error.validator}" + " {}")
    return printable(f"{quoted(error.instance, 40)} {rule.format(quoted(error.validator_value, 60))}")


def check_samples(run_dir: str | Path, results: dict) -> None:
    """Every record's samples read once, so that a reader that draws them (report --html) refuses a
    bad samples file before it writes anything."""
    for rec in results["measurements"]:
        load_samples(run_dir, rec)


def load_samples(run_dir: str | Path, record: dict) -> np.ndarray | None:
    """A record's raw latency samples (ms), from the run folder's own samples.npz only: a file
    elsewhere (a path or a link out of the folder), a corrupt or pickled array, or values that are
    not finite positive times are refused in one line."""
    ref = record.get("samples")
    if not ref:
        return None
    file, _, key = ref.partition("#")
    which = f"record {record.get('id')!s:.40}"
    root = Path(run_dir).resolve()
    path = (root / file).resolve()
    if file != SAMPLES or path.parent != root:
        raise BadInputError(f"{run_dir}: {which}'s samples are not in the run folder's {SAMPLES}")
    try:
        check_npz(path)
        with np.load(path, allow_pickle=False) as npz:
            values = npz[key]
    except BadInputError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise BadInputError(f"{path}: corrupt samples of {which}: {type(exc).__name__}") from None
    if values.ndim != 1 or values.dtype.kind != "f" or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise BadInputError(f"{path}: the samples of {which} are not finite positive times")
    return values
