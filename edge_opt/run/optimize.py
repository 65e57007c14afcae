"""``edge-opt optimize``: a target profile's pipelines on the user's own Keras model.

The user's model becomes the root artifact (re-saved as ``.keras``); each pipeline's output
is published beside it with its manifest. Calibration rows come from ``--calibration``, or
random inputs when asked for (and the manifest says so), else from ``--train``'s rows. Passes that need labels get
them from ``--train`` or are skipped with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from edge_opt.analysis.fidelity import DEFAULT_CHECKS, compare_outputs, output_kind
from edge_opt.analysis.predictor import Predictor
from edge_opt.budgets.grammar import Check
from edge_opt.core.arrays import load_slices, load_xy
from edge_opt.core.artifacts import Artifact, sha256_file
from edge_opt.core.errors import BadInputError, ModelLoadError
from edge_opt.core.fileio import write_json_atomic
from edge_opt.datasets import Dataset
from edge_opt.measure.service import QUICK, measure_first
from edge_opt.models import code_layers, keras_root, load_keras, predicted_labels
from edge_opt.passes import PassContext
from edge_opt.passes.pipeline import fp32_steps, pipeline_names, preflight, run_pipeline
from edge_opt.repair import Repairer, Score, repair
from edge_opt.repair.judge import pipeline_budget
from edge_opt.targets import load_profile

_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
#: Each artifact's speed-up is against your model as a plain fp32 file of its own format
#: (``fp32_steps``), measured on the same runtime (Keras's own latency stays a reference column).
SPEEDUP_BASIS = "against your model as an fp32 file of the same format, on the same runtime"


def load_user_model(path: Path, trust: bool):
    """Load a .keras / .h5 file or a SavedModel folder; no Lambda code unless ``trust``."""
    if not path.exists():
        raise ModelLoadError(f"{path}: file not found")
    if not (path.is_dir() or path.suffix.lower() in _KERAS_SUFFIXES):
        raise ModelLoadError(f"{path}: expected a Keras model (.keras, .h5 or a SavedModel folder)")
    return load_keras(path, trust=trust)


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment
        return "unknown"


def import_artifact(model, source: Path, out: Path, trust: bool = False) -> Artifact:
    digest = sha256_file(source) if source.is_file() else None
    config = {"source": str(source.resolve()), "sha256": digest, "trusted_code": trust}

    def make(notes: dict):
        notes["parameters"] = int(model.count_params())
        if trust:  # a record of who trusted what; it never grants trust to a later command
            notes["trust"] = {
                "granted_by": "--trust-model",
                "user": _user(),
                "source_sha256": digest,
                "code_layers": code_layers(source),
            }
        return model

    return keras_root(out, pass_name="import", config=config, label="input", make=make)


def user_dataset(x: np.ndarray, y: np.ndarray, seed: int, slices: dict[str, np.ndarray] | None = None) -> Dataset:
    """Labelled rows (and their ``slice_<column>`` groups) → a 90/10 train/validation Dataset for
    passes that train."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    cut = max(1, len(x) // 10)
    val, train = order[:cut], order[cut:]
    n_classes = int(y.max()) + 1 if len(y) else 0
    if n_classes < 2:
        raise BadInputError("--train labels must hold at least two classes")
    slices = slices or {}
    for name, groups in slices.items():
        if len(groups) != len(x):
            raise BadInputError(f"--train: slice_{name} has {len(groups)} rows, x has {len(x)}")
    return Dataset(
        name="user",
        task="binary" if n_classes == 2 else "multiclass",
        n_classes=n_classes,
        feature_names=[f"f{i}" for i in range(int(np.prod(x.shape[1:])))],
        x_train=x[train],
        y_train=y[train],
        x_val=x[val],
        y_val=y[val],
        x_test=x[val],
        y_test=y[val],
        slices_train={k: v[train] for k, v in slices.items()},
        slices_val={k: v[val] for k, v in slices.items()},
        slices_test={k: v[val] for k, v in slices.items()},
    )


def optimize(
    model_path: Path,
    target: str,
    out: Path,
    *,
    calibration: Path | None = None,
    random_calibration: bool = False,
    train: Path | None = None,
    eval_rows: Path | None = None,
    trust_model: bool = False,
    seed: int = 0,
    latency: bool = True,
    max_drop: float | None = None,
    progress=lambda _: None,
) -> dict:
    profile = load_profile(target)
    checks = fidelity_checks(profile)
    user = _load_user_inputs(model_path, calibration, random_calibration, train, eval_rows, trust_model, seed, progress)
    labelled, held_out = user.fidelity_labels is not None, bool(train or eval_rows)
    rows = user.fidelity_rows is not None
    budgets = repair_budgets(profile, max_drop, labelled=labelled, held_out=held_out, rows=rows)
    preflight(profile.pipelines, user.data, user.model)  # a step that cannot apply: exit 2 before any work

    out.mkdir(parents=True, exist_ok=True)
    artifacts_dir = out / "artifacts"
    root = import_artifact(user.model, model_path, artifacts_dir, trust_model)
    ctx = PassContext(
        target=profile.name,
        calibration=user.calib,
        calibration_source=user.source,
        data=user.data,
        seed=seed,
        trust_model=trust_model,
        calibration_hint="--calibration FILE (or --train FILE, or --random-calibration)",
    )
    fidelity = _fidelity(root, user, checks, trust_model)
    measured = _latency(root, profile, trust_model) if latency else None
    judge = _Judge(profile, ctx, fidelity, latency, trust_model, progress)
    rows = _run_pipelines(profile, root, artifacts_dir, judge, budgets)
    baselines = _baselines(rows, root, artifacts_dir, judge) if latency else {}
    _speedups(rows, baselines)
    summary = {
        "model": str(model_path),
        "target": profile.name,
        "calibration": user.source,
        "train": str(train) if train else None,
        "fidelity_rows": user.fidelity_source,
        "fidelity_checks": [c.spec for c in checks] or "default: agreement >= 0.95 (classifiers), correlation >= 0.95",
        "root": root.id,
        "input_size_bytes": root.manifest["size_bytes"],
        "input_accuracy": fidelity.base_accuracy if fidelity is not None else None,
        "input_latency": measured,  # Keras's own, a reference: speed-ups are against fp32 files (SPEEDUP_BASIS)
        "speedup_basis": SPEEDUP_BASIS,
        "baselines": baselines,  # per format: the fp32 file's label, artifact and latency (or why none)
        "artifacts": rows,
    }

    write_json_atomic(out / "summary.json", summary)
    return summary


def _fidelity(root: Artifact, user, checks: list, trust_model: bool) -> _Fidelity | None:
    """Your model's outputs on the fidelity rows, to judge each file against (None without rows)."""
    if user.fidelity_rows is None:
        return None
    reference = Predictor(root.model_path, trust_model=trust_model).outputs(user.fidelity_rows)
    labels = user.fidelity_labels if output_kind(reference) == "classifier" else None
    return _Fidelity(reference, user.fidelity_rows, user.fidelity_source, checks, labels)


@dataclass(frozen=True)
class _UserInputs:
    """The user's model and rows, checked against its input shape (see ``_load_user_inputs``)."""

    model: Any
    calib: np.ndarray | None
    source: str  # where the calibration rows came from
    data: Dataset | None
    fidelity_rows: np.ndarray | None
    fidelity_source: str
    fidelity_labels: np.ndarray | None = None  # labels of the fidelity rows (--eval's, or --train's held out)


def _load_user_inputs(
    model_path: Path,
    calibration: Path | None,
    random_calibration: bool,
    train: Path | None,
    eval_rows: Path | None,
    trust_model: bool,
    seed: int,
    progress,
) -> _UserInputs:
    """Load the rows files and the model, check the rows' shape; calibration and fidelity rows."""
    calib, source = None, "none"
    if calibration is not None:
        calib, _, _ = load_xy(calibration)
        source = f"file {calibration}"
    data = None
    if train is not None:
        x, y, _ = load_xy(train)
        if y is None:
            raise BadInputError(f"{train}: --train needs labels (an array 'y' in .npz, or a 'label' column in .csv)")
        data = user_dataset(x, y, seed, load_slices(train))
    held, held_y, _ = load_xy(eval_rows) if eval_rows is not None else (None, None, None)
    progress("loading the model")
    model = load_user_model(model_path, trust_model)
    input_shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    named = (("--calibration", calib), ("--train", data.x_train if data else None), ("--eval", held))
    for name, arr in named:
        if arr is not None and tuple(arr.shape[1:]) != input_shape:
            raise BadInputError(f"{name} rows have shape {tuple(arr.shape[1:])}, the model takes {input_shape}")
    if calib is None and random_calibration:
        calib = np.random.default_rng(seed).standard_normal((256, *input_shape)).astype(np.float32)
        source = "random inputs (--random-calibration): quantization ranges may not match real data"
    if calib is None and data is not None:  # real rows the user gave: better than none
        calib = data.calibration(min(256, len(data.x_train)), seed)
        source = f"--train ({len(calib)} of its training rows; no --calibration given)"
    calib, fidelity_rows, fidelity_source = _fidelity_rows(calib, data, held, random_calibration, input_shape, seed)
    labels = held_y if held is not None else (data.y_test if data is not None else None)
    if labels is not None:
        _check_labels(labels, model, "--eval" if held is not None else "--train")
    if data is not None:  # the rows the passes train on, too (labels of 10^12 trained before)
        _check_labels(data.y_train, model, "--train")
    return _UserInputs(model, calib, source, data, fidelity_rows, fidelity_source, labels)


def _check_labels(labels: np.ndarray, model, option: str) -> None:
    """Labels must be class indices of the model's output (one sigmoid unit: 0 and 1)."""
    width = int(model.outputs[0].shape[-1] or 1)
    n_classes = 2 if width == 1 else width
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise BadInputError(
            f"{option} labels run from {int(labels.min())} to {int(labels.max())}, and the model's output "
            f"has {n_classes} classes (labels 0..{n_classes - 1})"
        )


@dataclass(frozen=True)
class _Fidelity:
    """The root's outputs on the fidelity rows, where those rows came from, and the target's fidelity checks."""

    reference: np.ndarray
    rows: np.ndarray
    source: str
    checks: list
    labels: np.ndarray | None = None  # the rows' labels, for a classifier: accuracy beside agreement

    def accuracy(self, outputs: np.ndarray) -> float | None:
        """Top-1 accuracy of ``outputs`` on the rows' labels; None without labels."""
        if self.labels is None:
            return None
        out = np.asarray(outputs).reshape(len(outputs), -1)
        return float(np.mean(predicted_labels(out, 2 if out.shape[1] == 1 else out.shape[1]) == self.labels))

    @cached_property
    def base_accuracy(self) -> float | None:
        """Your model's accuracy on the rows (None without labels)."""
        return self.accuracy(self.reference)

    def score(self, artifact: Artifact, metric: str, trust_model: bool) -> Score:
        """The file's accuracy (or agreement) on the rows and its drop against your model's."""
        got = Predictor(artifact.model_path, trust_model=trust_model).outputs(self.rows)
        if metric == "accuracy":
            accuracy = self.accuracy(got)
            return Score(accuracy, self.base_accuracy - accuracy)
        agreement = compare_outputs(self.reference, got, self.source).agreement
        if agreement is None:
            raise BadInputError("max_drop budgets a classifier's agreement; this model's outputs have no classes")
        return Score(agreement, 1.0 - agreement)

    def judge(self, row: dict, artifact: Artifact, trust_model: bool) -> None:
        """Put the artifact's agreement, fidelity and accuracy (and its drop against your model's) in
        its row; low-fidelity when it fails a check."""
        got = Predictor(artifact.model_path, trust_model=trust_model).outputs(self.rows)
        fid = compare_outputs(self.reference, got, self.source)
        row["agreement"], row["fidelity"] = fid.agreement, fid.to_dict()
        row["accuracy"] = self.accuracy(got)
        if row["accuracy"] is not None:
            row["accuracy_drop"] = self.base_accuracy - row["accuracy"]
        failed = failed_checks(self.checks, fid)
        if failed:
            row["status"], row["reason"] = "low-fidelity", "; ".join(failed)


@dataclass(frozen=True)
class _Judge:
    """How each pipeline's file is judged: fidelity (and accuracy) on held-out rows, latency."""

    profile: Any
    ctx: PassContext
    fidelity: _Fidelity | None
    latency: bool
    trust_model: bool
    progress: Any
    measured: dict = field(default_factory=dict)  # artifact id -> its quick latency: each file timed once

    def timed(self, artifact: Artifact) -> dict:
        """The file's quick latency (``_latency``), measured once however often it is asked for."""
        if artifact.id not in self.measured:
            self.progress(f"{self.profile.name}: measuring {artifact.manifest['label']}")
            self.measured[artifact.id] = _latency(artifact, self.profile, self.trust_model)
        return self.measured[artifact.id]

    def row(self, names: str, artifact: Artifact) -> dict:
        row = _artifact_row(names, artifact)
        if self.fidelity is not None:
            self.fidelity.judge(row, artifact, self.trust_model)
        if self.latency:
            row["latency"] = self.timed(artifact)
        return row

    def repairer(self, out_dir: Path, metric: str) -> Repairer:
        fid = self.fidelity
        return Repairer(
            out_dir,
            self.ctx,
            evaluate=lambda artifact: fid.score(artifact, metric, self.trust_model),
            latency=lambda artifact: self.timed(artifact).get("p50_ms") if self.latency else None,
            rows=fid.rows[:100],
            progress=lambda what: self.progress(f"{self.profile.name}: {what}"),
        )


def _run_pipelines(profile, root: Artifact, artifacts_dir: Path, judge: _Judge, budgets: list) -> list[dict]:
    """Run each of the target's pipelines from the root (repaired where it has a budget): a row per
    pipeline, failed ones with the reason."""
    rows = []
    for pipeline, budget in zip(profile.pipelines, budgets, strict=True):
        names = pipeline_names(pipeline)
        judge.progress(f"{profile.name}: {names}")
        result = None
        if budget is not None:
            result = repair(root, pipeline, budget, judge.repairer(artifacts_dir, budget.metric))
            first = result.trials[0]
            done_status, done_error = first.status, first.reason
            artifact = result.chosen.artifact if result.chosen else None
        else:
            done = run_pipeline(root, pipeline, artifacts_dir, judge.ctx)
            done_status, done_error, artifact = done.status, done.error, done.artifact
        if artifact is None:  # one pipeline failing does not stop the others
            rows.append({"pipeline": names, "status": done_status, "reason": done_error})
            continue
        row = judge.row(names, artifact)
        if result is not None:
            row["repair"] = result.to_dict()
            if not result.within:
                row["status"], row["reason"] = "low-fidelity", result.summary()
        rows.append(row)
    return rows


def repair_budgets(profile, max_drop: float | None, *, labelled: bool, held_out: bool, rows: bool) -> list:
    """Per pipeline of ``profile``: the repair loop's budget, or None (see ``pipeline_budget``).
    ``--max-drop`` needs rows held out of the data the files are made from (``--eval`` or
    ``--train``): BadInputError before any work. A profile's or a step's budget is judged on the
    fidelity rows there are (agreement where they have no labels), and not at all without them."""
    if max_drop is not None and not held_out:
        raise BadInputError(
            "--max-drop is measured on held-out rows: give --eval FILE (labelled for accuracy) or --train FILE"
        )
    out = [pipeline_budget(profile, p, max_drop, labelled=labelled) if rows else None for p in profile.pipelines]
    if any(b and b.metric == "accuracy" for b in out) and not labelled:
        raise BadInputError(
            f"profile '{profile.name}' budgets accuracy (accuracy_aware.metric), and the held-out rows have no "
            "labels: give --eval with labels or --train, or set metric: agreement"
        )
    return out


def _baselines(rows: list[dict], root: Artifact, artifacts_dir: Path, judge: _Judge) -> dict[str, dict]:
    """Per format of the measured rows: your model as an fp32 file of that format, and its latency
    (timed once: a pipeline, or the repair loop, that made the same file timed it already)."""
    out: dict[str, dict] = {}
    for fmt in dict.fromkeys(r["format"] for r in rows if (r.get("latency") or {}).get("status") == "ok"):
        steps = fp32_steps(fmt)
        if steps is None:
            continue
        judge.progress(f"{judge.profile.name}: your model as an fp32 {fmt} file")
        done = run_pipeline(root, steps, artifacts_dir, judge.ctx)
        if done.status != "ok":
            out[fmt] = {"status": "not measured", "reason": done.error}
            continue
        art = done.artifact
        out[fmt] = {**judge.timed(art), "label": art.manifest["label"], "artifact": art.id}
    return out


def _speedups(rows: list[dict], baselines: dict[str, dict]) -> None:
    """Each measured row's ``speedup``: the fp32 file's p50 of its format over its own, on one runtime."""
    for row in rows:
        lat = row.get("latency") or {}
        base = baselines.get(row.get("format"), {})
        if lat.get("status") != "ok" or base.get("status") != "ok" or base.get("runtime") != lat.get("runtime"):
            continue
        row["speedup"] = {
            "ratio": base["p50_ms"] / lat["p50_ms"],
            "against": base["label"],
            "against_artifact": base["artifact"],
            "runtime": lat["runtime"],
        }


def _artifact_row(names, artifact: Artifact) -> dict:
    """A pipeline's row for the file it made, before fidelity and latency."""
    return {
        "pipeline": names,
        "status": "ok",
        "reason": None,
        "artifact": artifact.id,
        "label": artifact.manifest["label"],
        "format": artifact.format,
        "precision": artifact.precision,
        "path": str(artifact.model_path),
        "size_bytes": artifact.manifest["size_bytes"],
        "agreement": None,
        "accuracy": None,  # on labelled fidelity rows (--eval with labels, or held out of --train)
        "accuracy_drop": None,  # your model's accuracy minus this file's, a fraction (as accuracy.drop)
        "fidelity": None,
        "speedup": None,  # against your model as an fp32 file of the same format on the same runtime
    }


def _fidelity_rows(calib, data, held, random_calibration: bool, input_shape: tuple, seed: int):
    """(calibration rows for the passes, rows for the fidelity check, where those came from).

    Fidelity is measured on rows the artifact was not made from: ``--eval``; else the
    validation rows held out of ``--train``; else a quarter of ``--calibration`` (at most 256
    rows), held out of calibration; random rows only when calibration was random too.
    """
    if held is not None:
        return calib, held, f"--eval ({len(held)} rows)"
    if data is not None:
        return calib, data.x_test, f"held out of --train ({len(data.x_test)} rows, not trained on)"
    if calib is None:
        return None, None, "none (give --calibration, --train or --eval)"
    if random_calibration:
        rows = np.random.default_rng(seed + 1).standard_normal((256, *input_shape)).astype(np.float32)
        return calib, rows, "random inputs (no data given): a weak check; give --eval with real rows"
    if len(calib) < 20:
        return calib, calib, f"the {len(calib)} calibration rows themselves (too few to hold any out)"
    n = min(256, max(10, len(calib) // 4))
    return calib[:-n], calib[-n:], f"held out of --calibration ({n} rows, not calibrated on)"


def fidelity_checks(profile) -> list:
    """The target's own ``fidelity.*`` budgets (empty: edge-opt's default for the output kind)."""
    return [c for c in (Check.parse(b) for b in profile.budgets) if c.metric.startswith("fidelity.")]


def failed_checks(own: list, fid) -> list[str]:
    """What a file fails of the target's fidelity budgets, or of the default for its output kind.
    A figure that is undefined here (agreement of a non-classifier, or when the reference
    predicts one class) is not held against the file: the fidelity's note says why."""
    record = {"status": "ok", "agreement": fid.agreement, "fidelity": fid.to_dict()}
    figures = {"fidelity.agreement": fid.agreement, "fidelity.correlation": fid.correlation}
    checks = own or [Check.parse(DEFAULT_CHECKS[fid.kind])]
    results = [c.evaluate(record) for c in checks if figures[c.metric] is not None]
    return [r.message for r in results if r.passed is False]


def _latency(artifact: Artifact, profile, trust_model: bool) -> dict:
    """p50/p90 of the file on the target's first runtime that can run it here (a quick measurement)."""
    measured, reasons = measure_first(artifact, profile, harness=QUICK, trust_model=trust_model)
    if measured is None or measured.record.status != "ok":
        return {"status": "not measured", "reason": "; ".join(reasons) or f"no runtime reads {artifact.format}"}
    rec = measured.record
    return {
        "p50_ms": rec.latency_ms["p50"],
        "p90_ms": rec.latency_ms["p90"],
        "runtime": rec.runtime["name"],
        "device": rec.runtime["device"],
        "threads": rec.runtime["threads"],
        "status": "ok",
    }
