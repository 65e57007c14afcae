"""The search: keras-tuner proposes, edge-opt trains briefly, deploys and measures each trial.

A trial trains the candidate for a few epochs on a few rows, publishes it as an artifact,
runs the target profile's pipeline on it (``run_pipeline``), and measures the deployed file
with the harness (a fresh process, the target's runtime and threads). Its latency is that
harness record's, never a Keras timing. Every trial is kept as a typed ``TrialRecord``
(written as it finishes, so a killed search re-runs none); the front and the efficacy
figures are computed by ``pareto``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_opt.analysis.edgetpu import analyze
from edge_opt.budgets.grammar import Check
from edge_opt.core.artifacts import load_artifact
from edge_opt.core.errors import ConfigError, first_line
from edge_opt.core.fileio import write_json_atomic
from edge_opt.core.tfkeras import keras
from edge_opt.datasets.base import subsample
from edge_opt.measure.service import measure_first
from edge_opt.models import fit_classifier, keras_root, label_array, one_unit, predicted_labels
from edge_opt.nas import pareto
from edge_opt.nas.executors import LocalExecutor, WorkerLost, where
from edge_opt.nas.predictor import OpTypePredictor, features, fit_predictor, held_out_accuracy, split_by_kind
from edge_opt.nas.space import Architecture, NasConfig, architecture, baseline_architecture, build, fit_pca, hypermodel
from edge_opt.passes import PassContext
from edge_opt.passes.pipeline import run_pipeline

STATUSES = ("ok", "rejected", "skipped", "failed")  # rejected: broke a hard constraint; skipped: predicted over
_TRUST_ONLY = ("fairness", "robustness", "explain")  # budgets a trial cannot be checked against


@dataclass(frozen=True)
class TrialRecord:
    trial: str
    hyperparameters: dict[str, Any]
    architecture: dict[str, Any]
    label: str
    status: str  # ok | rejected | skipped | failed
    reason: str | None
    score: float | None  # the objective (None unless ok)
    metrics: dict[str, float | None]  # accuracy, keras_accuracy, latency_p50_ms/p90, size_raw/gzip, peak_rss_mb, ...
    seconds: dict[str, float]  # train, convert, measure
    artifact: str | None = None  # the deployed file's artifact id
    root: str | None = None  # the trained trial model's artifact id
    record: dict[str, Any] | None = None  # the harness's measurement record (samples left out)
    features: dict[str, float] | None = None  # what the latency predictor sees
    predicted_latency_ms: float | None = None  # a prediction, when the predictor was fitted
    worker: dict[str, Any] | None = None  # what trained it: executor (local, process, ray), pid, node

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Prepared:
    """A candidate trained and deployed by an executor's worker, waiting for its measurement."""

    trial: str
    status: str  # ready | skipped | failed
    reason: str | None
    seconds: dict[str, float]
    root: str | None = None  # the trained model's artifact id
    artifact: str | None = None  # the deployed file's artifact id
    keras_accuracy: float | None = None
    params: dict[str, int] = field(default_factory=dict)
    features: dict[str, float] | None = None
    predicted_latency_ms: float | None = None
    worker: dict[str, Any] = field(default_factory=dict)  # where it was trained: executor, pid, node
    files: dict[str, dict[str, bytes]] | None = None  # artifact folders, from a worker on another file system


@dataclass(frozen=True)
class TrialJob:
    """What an executor's worker receives for one candidate (it pickles)."""

    ctx: SearchContext  # a portable copy: no progress callback
    trial: str
    values: dict[str, Any]
    arch: Architecture
    own_folder: bool = False  # work in a folder of its own and send the artifacts back (Ray)


def prepare(job: TrialJob) -> Prepared:
    """An executor's unit of work: build, maybe skip (the predictor), train, deploy one candidate."""
    if not job.own_folder:
        return dataclasses.replace(job.ctx.prepare(job.trial, job.values, job.arch), worker=where())
    with tempfile.TemporaryDirectory(prefix="edge-opt-trial-") as tmp:
        local = dataclasses.replace(job.ctx, artifacts_dir=Path(tmp))
        done = local.prepare(job.trial, job.values, job.arch)
        files = {
            d.name: {f.relative_to(d).as_posix(): f.read_bytes() for f in sorted(d.rglob("*")) if f.is_file()}
            for d in Path(tmp).iterdir()
            if d.is_dir() and not d.name.startswith(".")
        }
        return dataclasses.replace(done, worker=where(), files=files)


def land(artifacts_dir: Path, files: dict[str, dict[str, bytes]]) -> None:
    """Artifact folders a worker sent back, written here (once; an id that exists is kept)."""
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        final = artifacts_dir / name
        if final.is_dir():
            continue
        stage = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=artifacts_dir))
        for rel, data in content.items():
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            (stage / rel).write_bytes(data)
        try:
            os.replace(stage, final)
        except OSError:
            shutil.rmtree(stage, ignore_errors=True)


def _silent(_: str) -> None:
    return None


def _here():
    return LocalExecutor()


@dataclass
class SearchContext:
    """Everything a trial needs, resolved once before the first trial."""

    task: str
    cfg: NasConfig
    data: Any  # Dataset
    profile: Any  # TargetProfile
    out_dir: Path  # keras-tuner's project folder and the trial records live here
    artifacts_dir: Path
    harness: Any  # HarnessOptions
    calibration_rows: int = 256
    seed: int = 0
    progress: Callable[[str], None] = _silent
    target_ms: float | None = None  # T of the soft reward
    budgets: list = field(default_factory=list)  # gate Checks (hard objective)
    baseline_accuracy: float | None = None
    predictor: Any = None
    reused: int = 0
    _pcas: dict[int, tuple] = field(default_factory=dict)
    _measured: dict[str, TrialRecord] = field(default_factory=dict)  # architecture -> its first measured trial

    def __post_init__(self) -> None:
        if self.cfg.pipeline >= len(self.profile.pipelines):
            raise ConfigError(
                f"nas: pipeline {self.cfg.pipeline}: profile '{self.profile.name}' has "
                f"{len(self.profile.pipelines)} pipeline(s) (0..{len(self.profile.pipelines) - 1})"
            )
        self.steps = self.profile.pipelines[self.cfg.pipeline]
        self.budgets = [c for c in map(Check.parse, self.profile.budgets) if c.metric.split(".")[0] not in _TRUST_ONLY]
        latency = [c for c in self.budgets if c.metric == "latency.p90" and c.op in ("<=", "<")]
        self.target_ms = self.cfg.latency_target_ms or (latency[0].value if latency else None)
        if self.cfg.objective == "soft" and self.target_ms is None:
            raise ConfigError(
                f"nas: the soft objective needs a latency target T: profile '{self.profile.name}' has no "
                "'latency.p90 <= X' budget; set latency_target_ms or use objective: hard"
            )
        x_tr, y_tr, x_val, y_val = self.data.x_train, self.data.y_train, self.data.x_val, self.data.y_val
        if self.cfg.holdout:  # more validation rows than the val split has: a share of train, not trained on
            order = np.random.default_rng(self.seed).permutation(len(x_tr))
            hold, rest = (
                np.sort(order[: round(self.cfg.holdout * len(x_tr))]),
                np.sort(order[round(self.cfg.holdout * len(x_tr)) :]),
            )
            x_val, y_val = np.concatenate([x_val, x_tr[hold]]), np.concatenate([y_val, y_tr[hold]])
            x_tr, y_tr = x_tr[rest], y_tr[rest]
        idx = subsample(len(x_tr), min(self.cfg.train_rows or 10**12, len(x_tr)), self.seed)
        self.x_train, self.y_train = x_tr[idx], y_tr[idx]
        self.x_val, self.y_val = x_val[: self.cfg.val_rows], y_val[: self.cfg.val_rows]
        self.records_dir = self.out_dir / "baseline"

    def pca(self, components: int):
        if components and components not in self._pcas:
            self._pcas[components] = fit_pca(self.x_train, components, self.seed)
        return self._pcas.get(components)

    def build(self, arch: Architecture):
        return build(arch, self.data.input_shape, self.data.n_classes, self.pca(arch.pca))

    # -- trials ------------------------------------------------------------------------------
    def trial(self, trial_id: str, values: dict[str, Any], arch: Architecture | None = None) -> TrialRecord:
        """Evaluate one candidate here (or return its record when a killed search had finished it)."""
        return self.run_trials([(trial_id, values, arch)], _here())[0]

    def run_trials(self, batch: list[tuple[str, dict[str, Any], Architecture | None]], executor) -> list[TrialRecord]:
        """Evaluate a batch: the executor trains and deploys them (several at once where it can),
        then each is measured here, one after another, and its record written as it is done.

        A trial a killed search had finished is its saved record; an architecture measured already
        in this search (the oracle proposed it again with other inactive hyperparameters) re-uses
        that measurement and says so; neither is trained again.
        """
        records: dict[str, TrialRecord] = {}
        todo: list[TrialJob] = []
        copies: list[tuple[str, dict[str, Any], Architecture]] = []
        pending: dict[str, str] = {}  # identity -> trial sent in this batch
        portable = self.portable()
        for trial_id, values, arch in batch:
            arch = arch or architecture(self.cfg.space, values)
            saved = self._saved(trial_id, values)
            if saved is not None:
                self.reused += 1
                records[trial_id] = saved
                if saved.status in ("ok", "rejected"):
                    self._measured.setdefault(self._identity(values, arch), saved)
                continue
            key = self._identity(values, arch)
            if key in self._measured or key in pending:
                copies.append((trial_id, values, arch))
                continue
            pending[key] = trial_id
            todo.append(TrialJob(portable, trial_id, values, arch, own_folder=executor.name == "ray"))
        say = f"{self.task}: nas {self.profile.name}:"
        for trial_id in [t for t, _, _ in batch if t in records]:
            self.progress(f"{say} trial {trial_id} finished by the killed search")
        if todo:  # one progress step per trial: the first says the batch trains, the others their measurement
            at_once = f", {len(todo)} at once ({executor.name})" if len(todo) > 1 else ""
            self.progress(f"{say} trial {todo[0].trial}: training{at_once}")
        results = executor.map(prepare, todo)
        for i, (job, done) in enumerate(zip(todo, results, strict=True)):
            if i:
                self.progress(f"{say} trial {job.trial}: measuring")
            if isinstance(done, WorkerLost):
                done = Prepared(job.trial, "failed", done.reason, {"train": 0.0, "convert": 0.0, "measure": 0.0})
            if done.files:
                land(self.artifacts_dir, done.files)
            rec = self.finish(job.values, job.arch, done, executor.name)
            self._write(rec)
            records[rec.trial] = rec
            if rec.status in ("ok", "rejected"):  # measured
                self._measured[self._identity(job.values, job.arch)] = rec
        for trial_id, values, arch in copies:
            self.progress(f"{say} trial {trial_id}: an architecture measured already")
            rec = self._copy(trial_id, values, self._measured.get(self._identity(values, arch)))
            if rec is None:  # its twin was not measured: evaluate it on its own
                rec = self.trial(trial_id, values, arch)
            else:
                self._write(rec)
            records[trial_id] = rec
        return [records[trial_id] for trial_id, _, _ in batch]

    def portable(self) -> SearchContext:
        """A copy to send to an executor's worker (it pickles): no progress callback, no records of this search."""
        return dataclasses.replace(self, progress=_silent, _pcas=dict(self._pcas), _measured={})

    def _identity(self, values: dict[str, Any], arch: Architecture) -> str:
        return json.dumps([arch.model_dump(), int(values.get("tuner/epochs", self.cfg.epochs))], sort_keys=True)

    def _saved(self, trial_id: str, values: dict[str, Any]) -> TrialRecord | None:
        path = self.records_dir / f"{trial_id}.json"
        if path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))
            if saved["hyperparameters"] == values:
                return TrialRecord(**saved)
        return None

    def _write(self, rec: TrialRecord) -> None:
        path = self.records_dir / f"{rec.trial}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, rec.to_json())

    def _copy(self, trial_id: str, values: dict[str, Any], twin: TrialRecord | None) -> TrialRecord | None:
        if twin is None:
            return None
        note = f"the same architecture as trial {twin.trial}: its measurement, not trained again"
        reason = f"{twin.reason}; {note}" if twin.reason else note
        return dataclasses.replace(
            twin,
            trial=trial_id,
            hyperparameters=values,
            reason=reason,
            seconds={"train": 0.0, "convert": 0.0, "measure": 0.0},
        )

    def prepare(self, trial_id: str, values: dict[str, Any], arch: Architecture) -> Prepared:
        """Build the candidate; skip it when the predictor says it is far over T; else train and deploy it."""
        seconds = {"train": 0.0, "convert": 0.0, "measure": 0.0}
        try:
            model = self.build(arch)
        except Exception as exc:  # noqa: BLE001 - a point of the space that does not build is recorded
            return Prepared(trial_id, "failed", f"cannot build: {first_line(exc)}", seconds)
        feats = features(model)
        predicted = self.predictor.predict(feats) if self.predictor is not None else None
        if predicted is not None and self.target_ms and predicted > self.cfg.predictor.skip_factor * self.target_ms:
            reason = (
                f"predicted latency {predicted:.3g} ms > {self.cfg.predictor.skip_factor:g} x T "
                f"({self.target_ms:g} ms): not trained (a prediction, not a measurement)"
            )
            return Prepared(trial_id, "skipped", reason, seconds, features=feats, predicted_latency_ms=predicted)
        epochs = int(values.get("tuner/epochs", self.cfg.epochs))
        t0 = time.perf_counter()
        root, keras_acc, params = self._train(model, arch, epochs)
        seconds["train"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        artifact, error = self._deploy(root)
        seconds["convert"] = round(time.perf_counter() - t0, 3)
        common = {"root": root.id, "keras_accuracy": keras_acc, "params": params, "features": feats}
        if error:
            return Prepared(trial_id, "failed", error, seconds, **common, predicted_latency_ms=predicted)
        return Prepared(trial_id, "ready", None, seconds, artifact=artifact, **common, predicted_latency_ms=predicted)

    def finish(self, values: dict[str, Any], arch: Architecture, p: Prepared, executor: str) -> TrialRecord:
        """Measure a prepared trial here (the harness, the target's runtime) and score it."""
        base = {
            "trial": p.trial,
            "hyperparameters": values,
            "architecture": arch.model_dump(),
            "label": arch.describe(),
            "features": p.features,
            "predicted_latency_ms": p.predicted_latency_ms,
            "root": p.root,
            "worker": {"executor": executor, **p.worker},
        }
        seconds = dict(p.seconds)
        if p.status != "ready":
            metrics = {"keras_accuracy": p.keras_accuracy, **p.params} if p.root else {}
            return TrialRecord(
                **base,
                status=p.status,
                reason=p.reason,
                score=None,
                metrics=metrics,
                seconds=seconds,
                artifact=p.artifact,
            )
        t0 = time.perf_counter()
        out = self._measure(p.artifact)
        seconds["measure"] = round(time.perf_counter() - t0, 3)
        metrics = {"keras_accuracy": p.keras_accuracy, **p.params, **out["metrics"]}
        status, reason, score = out["status"], out["reason"], None
        if status == "ok":
            status, reason, score = self._score(out["record"], metrics)
        return TrialRecord(
            **base,
            status=status,
            reason=reason,
            score=score,
            metrics=metrics,
            seconds=seconds,
            artifact=p.artifact,
            record=out["record"],
        )

    def _train(self, model, arch: Architecture, epochs: int):
        """Train briefly and publish the trial's model as an artifact (re-used when it exists)."""
        config = {
            "task": self.task,
            "dataset": self.data.name,
            "architecture": arch.model_dump(),
            "epochs": epochs,
            "train_rows": len(self.x_train),
            "learning_rate": self.cfg.learning_rate,
            "batch_size": self.cfg.batch_size,
            "seed": self.seed,
        }

        def make(notes: dict):
            keras().utils.set_random_seed(self.seed)
            model = self.build(arch)  # rebuilt after seeding: the same candidate gets the same weights
            fit_classifier(
                model,
                self.x_train,
                self.y_train,
                self.data.n_classes,
                learning_rate=self.cfg.learning_rate,
                batch_size=self.cfg.batch_size,
                epochs=epochs,
                seed=self.seed,
            )
            sigmoid = self.data.n_classes == 2 and one_unit(model)
            _, acc = model.evaluate(self.x_val, label_array(self.y_val, sigmoid), verbose=0)
            notes.update(keras_accuracy=float(acc), **parameter_counts(model))
            return model

        root = keras_root(
            self.artifacts_dir, pass_name="nas-trial", config=config, label=f"trial {arch.describe()}", make=make
        )
        return root, root.manifest["notes"]["keras_accuracy"], _params(root.manifest["notes"])

    def _deploy(self, root) -> tuple[str | None, str | None]:
        """The profile's pipeline on a trained trial: (the deployed artifact's id, None) or (None, why not)."""
        ctx = PassContext(
            target=self.profile.name,
            calibration=self.data.calibration(min(self.calibration_rows, len(self.data.x_train)), seed=self.seed),
            calibration_source=f"{self.data.name} train split",
            data=self.data,
            seed=self.seed,
        )
        done = run_pipeline(root, self.steps, self.artifacts_dir, ctx)
        if done.status != "ok":
            return None, f"pipeline {done.names}: {done.error}"
        return done.artifact.id, None

    def _measure(self, artifact_id: str) -> dict:
        """The deployed file measured by the harness on the profile's first runtime that reads it."""
        artifact = load_artifact(self.artifacts_dir / artifact_id)
        # No EdgeTPU here: the next runtime (the labelled host proxy); profiles are checked at
        # load, so some entry reads the file.
        harness = self.harness
        if self.cfg.predictor is not None and self.cfg.predictor.ops_runs:  # the trial keeps its op profile
            harness = dataclasses.replace(harness, ops_runs=self.cfg.predictor.ops_runs)
        measured, _ = measure_first(artifact, self.profile, x=self.x_val, harness=harness, task=self.task)
        rec, outputs = measured.record, measured.outputs
        record = {k: v for k, v in rec.to_json().items() if k != "latency_samples_ms"}
        if rec.status != "ok":
            return {
                "status": "failed",
                "reason": f"measurement {rec.status}: {rec.error}",
                "metrics": {},
                "artifact": artifact.id,
                "record": record,
            }
        acc = float(np.mean(predicted_labels(outputs, self.data.n_classes) == self.y_val))
        record["accuracy"] = acc
        if self.baseline_accuracy is not None:
            record["accuracy_drop"] = self.baseline_accuracy - acc
        metrics = {
            "accuracy": acc,
            "latency_p50_ms": rec.latency_ms["p50"],
            "latency_p90_ms": rec.latency_ms["p90"],
            "size_raw": rec.size_bytes["raw"],
            "size_gzip": rec.size_bytes["gzip"],
            "peak_rss_mb": (rec.memory_mb or {}).get("peak_rss"),
        }
        if any(r.device == "edgetpu" for r in self.profile.runtimes) and artifact.format == "tflite":
            metrics["edgetpu_fraction_ops"] = analyze(artifact.model_path, self.profile)["fraction_ops"]
            record["checks"] = {"edgetpu": {"fraction_ops": metrics["edgetpu_fraction_ops"]}}
        return {"status": "ok", "reason": None, "metrics": metrics, "artifact": artifact.id, "record": record}

    def _score(self, record: dict, metrics: dict) -> tuple[str, str | None, float | None]:
        """(status, reason, score): the soft reward, or accuracy under the profile's budgets as hard constraints."""
        acc, lat = metrics["accuracy"], metrics["latency_p90_ms"]
        if self.cfg.objective == "soft":
            return "ok", None, pareto.mnas_reward(acc, lat, self.target_ms, self.cfg.weight)
        broken = [r.message for r in (c.evaluate(record) for c in self.budgets) if r.passed is False]
        if broken:
            return "rejected", "; ".join(broken), None
        return "ok", None, acc


def parameter_counts(model) -> dict[str, int]:
    """What training learned: trainable and non-trainable parameter counts."""
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return {"params_trainable": trainable, "params_non_trainable": int(model.count_params()) - trainable}


def _params(notes: dict) -> dict[str, int]:
    return {k: notes[k] for k in ("params_trainable", "params_non_trainable")}


# -- the keras-tuner side ------------------------------------------------------------------
def make_oracle(name: str, trials: int, seed: int, epochs: int, identity: Callable[[dict], str] | None = None):
    """keras-tuner's oracle by name. With ``identity`` (values -> the architecture they build),
    RandomSearch and BayesianOptimization propose a new architecture while one is left: keras-tuner
    tells points apart by every hyperparameter, inactive ones too, and its Bayesian oracle returns
    to the optimum of its Gaussian process again and again (20 trials on digits measured one
    architecture 13 times). A repeat is replaced by a random point not tried yet."""
    import keras_tuner as kt

    objective = kt.Objective("score", direction="max")
    kt_seed = seed + 1  # keras-tuner draws a random seed for a falsy one (0)
    if name == "hyperband":
        oracle = kt.oracles.HyperbandOracle(objective=objective, max_epochs=max(2, 3 * epochs), factor=3, seed=kt_seed)
        oracle.max_trials = trials  # Hyperband has no trial budget of its own
        return oracle
    base = kt.oracles.RandomSearchOracle if name == "random" else kt.oracles.BayesianOptimizationOracle

    class NewArchitectures(base):
        def populate_space(self, trial_id):
            response = super().populate_space(trial_id)
            if identity is None or response["status"] != "RUNNING":
                return response
            tried = {identity(dict(t.hyperparameters.values)) for t in self.trials.values()}
            values = response["values"]
            for _ in range(100):  # a few random draws; the space may have no new architecture left
                if identity(values) not in tried:
                    return {**response, "values": values}
                values = self._random_values()
                if values is None:
                    break
            return response

    extra = {"num_initial_points": max(2, min(3, trials - 1))} if name == "bayesian" else {}
    return NewArchitectures(objective=objective, max_trials=trials, seed=kt_seed, **extra)


def make_tuner(ctx: SearchContext, oracle_name: str, project: str):
    """A keras-tuner Tuner over the space: its oracle proposes, ``search`` runs the trials."""
    import keras_tuner as kt

    class EdgeTuner(kt.engine.base_tuner.BaseTuner):
        def run_trial(self, trial, *args, **kwargs):  # ``search`` runs the trials, in batches
            raise NotImplementedError("edge-opt's search runs the trials itself (see search())")

        def save_model(self, trial_id, model, step=0) -> None:  # the trial's artifact is the saved model
            return None

        def load_model(self, trial):
            raise NotImplementedError("a trial's model is its artifact (nas.json names it)")

    def identity(values: dict) -> str:
        return ctx._identity(values, architecture(ctx.cfg.space, values))

    oracle = make_oracle(oracle_name, ctx.cfg.trials, ctx.seed, ctx.cfg.epochs, identity)
    model = hypermodel(ctx.cfg.space, ctx.data.input_shape, ctx.data.n_classes, _PcaView(ctx))
    return EdgeTuner(oracle, model, directory=str(ctx.out_dir), project_name=project)


def metrics_for_oracle(rec: TrialRecord) -> dict[str, float]:
    """What the oracle learns from a trial: its score (0 for a trial that is not ok) and its numbers."""
    metrics = {"score": rec.score if rec.score is not None else 0.0}
    metrics.update({k: float(v) for k, v in rec.metrics.items() if isinstance(v, int | float)})
    return metrics


class _PcaView:
    """The hypermodel's view of the fitted PCAs: ``get(k)`` fits on first use."""

    def __init__(self, ctx: SearchContext) -> None:
        self.ctx = ctx

    def get(self, k: int):
        return self.ctx.pca(k)


def _refit_predictor(self: SearchContext, records) -> None:
    if self.cfg.predictor is None:
        return
    measured = [r for r in records if r.features and r.metrics.get("latency_p50_ms")]
    if len(measured) >= self.cfg.predictor.after:
        self.predictor = fit_predictor(*_predictor_data(measured))


def _predictor_data(measured: list[TrialRecord]) -> tuple[list, list, list]:
    """(features, measured p50s, each p50 split by its op profile's shares) of measured trials."""
    return (
        [r.features for r in measured],
        [r.metrics["latency_p50_ms"] for r in measured],
        [split_by_kind(r.record) for r in measured],
    )


SearchContext.refit_predictor = _refit_predictor


def search(ctx: SearchContext, oracle_name: str, project: str = "tuner", executor=None) -> list[TrialRecord]:
    """Run (or continue) one search; returns every trial's record in trial order.

    keras-tuner's own loop runs one trial at a time; this one asks the oracle for as many trials
    as the executor has workers (one "tuner id" each, as keras-tuner's distributed mode does),
    has them trained at once, measures them one by one, and reports each back to the oracle.
    """
    import contextlib
    import io

    import keras_tuner as kt

    executor = executor or _here()
    ctx.records_dir = ctx.out_dir / project / "records"
    ctx.records_dir.mkdir(parents=True, exist_ok=True)
    RUNNING, STOPPED = kt.engine.trial.TrialStatus.RUNNING, kt.engine.trial.TrialStatus.STOPPED
    # keras-tuner prints its own tables on stdout; edge-opt shows its progress and summary instead.
    with contextlib.redirect_stdout(io.StringIO()):
        tuner = make_tuner(ctx, oracle_name, project)
        oracle = tuner.oracle
        seen = [t for t in oracle.trials.values() if t.status not in (RUNNING,)]  # a resumed search's finished trials
        ctx.refit_predictor([r for t in seen if (r := ctx._saved(t.trial_id, dict(t.hyperparameters.values)))])
        while True:
            batch = []
            for worker in range(executor.workers):
                trial = oracle.create_trial(f"edge-opt-{worker}")
                if trial.status == RUNNING:
                    batch.append(trial)
                elif trial.status == STOPPED:
                    break  # the trial budget is spent (IDLE: the oracle has nothing more for now)
            if not batch:
                break
            records = ctx.run_trials([(t.trial_id, dict(t.hyperparameters.values), None) for t in batch], executor)
            for trial, rec in zip(batch, records, strict=True):
                oracle.update_trial(trial.trial_id, metrics_for_oracle(rec))
                trial.status = kt.engine.trial.TrialStatus.COMPLETED
                oracle.end_trial(trial)
            tuner.save()
            done = [r for t in oracle.trials.values() if (r := ctx._saved(t.trial_id, dict(t.hyperparameters.values)))]
            ctx.refit_predictor(done)
    records = []
    for trial_id in sorted(oracle.trials):
        rec = ctx._saved(trial_id, dict(oracle.trials[trial_id].hyperparameters.values))
        if rec is not None:
            records.append(rec)
    return records


# -- one target's search, with its baseline and figures --------------------------------------
@dataclass(frozen=True)
class SearchResult:
    target: str
    trials: list[TrialRecord]
    baseline: TrialRecord
    chosen: TrialRecord | None  # the best-scoring ok trial (None: no trial was ok)
    figures: dict[str, Any]  # front, hypervolume, efficacy, headline, predictor
    random: dict[str, Any] | None = None  # the same search with RandomSearch at equal trials

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "baseline": self.baseline.to_json(),
            "chosen": self.chosen.trial if self.chosen else None,
            "trials": [t.to_json() for t in self.trials],
            **self.figures,
            "random_search": self.random,
        }


def run_search(ctx: SearchContext, executor=None) -> SearchResult:
    """Measure the hand-designed baseline, search, and compute the front and the efficacy figures."""
    started = time.perf_counter()
    baseline = ctx.run_trials([("baseline", {}, baseline_architecture(ctx.cfg.baseline))], executor or _here())[0]
    if baseline.status in ("ok", "rejected"):
        ctx.baseline_accuracy = baseline.metrics["accuracy"]
    trials = search(ctx, ctx.cfg.oracle, "tuner", executor)
    wall = time.perf_counter() - started
    reference = reference_point(ctx, baseline)
    figures = efficacy(trials, baseline, reference, ctx)
    figures["wall_s"] = round(wall, 1)
    figures["headline"] = confirm(ctx, figures["headline"], baseline, trials)
    random = None
    if ctx.cfg.compare_random and ctx.cfg.oracle != "random":
        saved, ctx.predictor = ctx.predictor, None
        rtrials = search(ctx, "random", "random", executor)
        ctx.predictor = saved
        rfig = efficacy(rtrials, baseline, reference, ctx)
        random = {"trials": [t.to_json() for t in rtrials], **{k: v for k, v in rfig.items() if k != "predictor"}}
    ok = [t for t in trials if t.status == "ok" and t.score is not None]
    chosen = max(ok, key=lambda t: t.score) if ok else None
    return SearchResult(ctx.profile.name, trials, baseline, chosen, figures, random)


def reference_point(ctx: SearchContext, baseline: TrialRecord) -> dict[str, float]:
    """The hypervolume's reference, fixed before the trials: accuracy 0 and 2 x T (or 2 x the baseline's latency)."""
    base_lat = baseline.metrics.get("latency_p50_ms")
    latency = 2 * (ctx.target_ms or base_lat or 1.0)
    size = 2 * (baseline.metrics.get("size_raw") or 1_000_000)
    return {"accuracy": 0.0, "latency_ms": latency, "size_bytes": float(size)}


def efficacy(trials: list[TrialRecord], baseline: TrialRecord, reference: dict, ctx: SearchContext) -> dict[str, Any]:
    """Fronts, hypervolume per trial, best-so-far per trial and per second, trials-to-target, cost, headline."""
    ok = [t for t in trials if t.status in ("ok", "rejected") and t.metrics.get("latency_p50_ms") is not None]
    lat = [(t.metrics["accuracy"], t.metrics["latency_p50_ms"]) for t in ok]
    size = [(t.metrics["accuracy"], float(t.metrics["size_raw"])) for t in ok]
    scores = [t.score for t in trials]
    hv_curve, seen = [], []
    for t in trials:
        if t in ok:
            seen.append((t.metrics["accuracy"], t.metrics["latency_p50_ms"]))
        hv_curve.append(round(pareto.hypervolume(seen, (reference["accuracy"], reference["latency_ms"])), 6))
    elapsed, per_second = 0.0, []
    for t, best in zip(trials, pareto.best_so_far(scores), strict=True):
        elapsed += sum(t.seconds.values())
        per_second.append([round(elapsed, 2), best])
    cost = {k: round(sum(t.seconds[k] for t in trials), 2) for k in ("train", "convert", "measure")}
    measured = [t for t in trials if t.features and t.metrics.get("latency_p50_ms")]
    predictor = None
    if ctx.cfg.predictor is not None:
        rows, p50s, split = _predictor_data(measured)
        per_op = held_out_accuracy(rows, p50s, split, OpTypePredictor) if split and all(split) else None
        predictor = {
            "label": "prediction",
            "fitted_after": ctx.cfg.predictor.after,
            "used": fit_predictor(rows, p50s, split).method if len(rows) >= 3 else None,
            "trainings_saved": sum(1 for t in trials if t.status == "skipped" and t.predicted_latency_ms is not None),
            "accuracy": held_out_accuracy(rows, p50s),  # the whole-model predictor, for comparison
            "accuracy_per_op_type": per_op,
        }
    return {
        "objective": ctx.cfg.objective,
        "oracle": ctx.cfg.oracle,
        "latency_target_ms": ctx.target_ms,
        "weight": ctx.cfg.weight,
        "grid_size": ctx.cfg.space.grid_size(),
        "trials_used": len(trials),
        "statuses": {s: sum(1 for t in trials if t.status == s) for s in STATUSES},
        "front_latency": [ok[i].trial for i in pareto.pareto_front(lat)],
        "front_size": [ok[i].trial for i in pareto.pareto_front(size)],
        "reference": reference,
        "hypervolume": hv_curve[-1] if hv_curve else 0.0,
        "hypervolume_per_trial": hv_curve,
        "best_so_far": pareto.best_so_far(scores),
        "best_so_far_per_second": per_second,
        "trials_to_target": pareto.trials_to_target(scores, ctx.cfg.target_distance),
        "target_distance": ctx.cfg.target_distance,
        "cost_s": cost,
        "reused_trials": ctx.reused,
        "headline": headline([ok[i] for i in pareto.pareto_front(lat)], baseline),
        "predictor": predictor,
    }


def confirm(ctx: SearchContext, head: dict[str, Any] | None, baseline: TrialRecord, trials, rounds: int = 3):
    """The headline's speed-up measured again, paired: the baseline's file and the front member's,
    alternating (ABBA) ``rounds`` times each, the median p50 of each. The search measured them
    minutes apart; a tiny model's latency drifts more than that between two moments on a shared
    machine, so the paired figure is the one to quote."""
    if not head or head.get("trial") is None or baseline.artifact is None:
        return head
    member = next(t for t in trials if t.trial == head["trial"])
    p50 = {baseline.artifact: [], member.artifact: []}
    for r in range(rounds):
        pair = (baseline.artifact, member.artifact) if r % 2 == 0 else (member.artifact, baseline.artifact)
        for artifact in pair:
            out = ctx._measure(artifact)
            if out["status"] != "ok":
                return {**head, "confirmed": None, "confirm_note": f"re-measurement failed: {out['reason']}"}
            p50[artifact].append(out["metrics"]["latency_p50_ms"])
    base, cand = float(np.median(p50[baseline.artifact])), float(np.median(p50[member.artifact]))
    return {
        **head,
        "confirmed": {
            "rounds": rounds,
            "order": "alternating (ABBA)",
            "latency_p50_ms": cand,
            "baseline_latency_p50_ms": base,
            "speedup": base / cand,
            "samples_p50_ms": {"member": p50[member.artifact], "baseline": p50[baseline.artifact]},
        },
    }


def headline(front: list[TrialRecord], baseline: TrialRecord, points: float = 0.5) -> dict[str, Any] | None:
    """The fastest front member within ``points`` accuracy points of the baseline, and its speed-up."""
    base_acc, base_lat = baseline.metrics.get("accuracy"), baseline.metrics.get("latency_p50_ms")
    if base_acc is None or not base_lat:
        return None
    close = [t for t in front if t.metrics["accuracy"] >= base_acc - points / 100]
    if not close:
        return {"trial": None, "within_points": points, "note": "no front member within reach of the baseline"}
    best = min(close, key=lambda t: t.metrics["latency_p50_ms"])
    return {
        "trial": best.trial,
        "label": best.label,
        "within_points": points,
        "accuracy": best.metrics["accuracy"],
        "baseline_accuracy": base_acc,
        "latency_p50_ms": best.metrics["latency_p50_ms"],
        "baseline_latency_p50_ms": base_lat,
        "speedup": base_lat / best.metrics["latency_p50_ms"],
    }
