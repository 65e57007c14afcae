"""The search: keras-tuner proposes, edge-opt trains briefly, deploys and measures each trial.

A trial trains the candidate for a few epochs on a few rows, publishes it as an artifact,
runs the target profile's pipeline on it (``run_pipeline``), and measures the deployed file
with the harness (a fresh process, the target's runtime and threads). Its latency is that
harness record's, never a Keras timing. Every trial is kept as a typed ``TrialRecord``
(written as it finishes, so a killed search re-runs none); the front and the efficacy
figures are computed by ``pareto``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge_opt.errors import ConfigError, first_line
from edge_opt.fileio import write_json_atomic
from edge_opt.nas import pareto
from edge_opt.nas.space import Architecture, NasConfig, architecture, baseline_architecture, build, fit_pca

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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class TrialExecutor(Protocol):
    """Where trials run. ``LocalExecutor`` runs them in this process; a distributed engine (Ray)
    implements the same method and runs each job on a worker of its own."""

    def run(self, jobs: list[Callable[[], TrialRecord]]) -> list[TrialRecord]: ...


class LocalExecutor:
    def run(self, jobs: list[Callable[[], TrialRecord]]) -> list[TrialRecord]:
        return [job() for job in jobs]


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
    progress: Callable[[str], None] = lambda _: None
    target_ms: float | None = None  # T of the soft reward
    budgets: list = field(default_factory=list)  # gate Checks (hard objective)
    baseline_accuracy: float | None = None
    predictor: Any = None
    trainings_saved: int = 0
    reused: int = 0
    _pcas: dict[int, tuple] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from edge_opt.datasets.base import subsample
        from edge_opt.gate import Check

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
        idx = subsample(len(self.data.x_train), min(self.cfg.train_rows or 10**12, len(self.data.x_train)), self.seed)
        self.x_train, self.y_train = self.data.x_train[idx], self.data.y_train[idx]
        self.x_val, self.y_val = self.data.x_val[: self.cfg.val_rows], self.data.y_val[: self.cfg.val_rows]
        self.records_dir = self.out_dir / "baseline"

    def pca(self, components: int):
        if components and components not in self._pcas:
            self._pcas[components] = fit_pca(self.x_train, components, self.seed)
        return self._pcas.get(components)

    def build(self, arch: Architecture):
        return build(arch, self.data.input_shape, self.data.n_classes, self.pca(arch.pca))

    # -- one trial -------------------------------------------------------------------------
    def trial(self, trial_id: str, values: dict[str, Any], arch: Architecture | None = None) -> TrialRecord:
        """Evaluate one candidate (or return its record when a killed search had finished it)."""
        path = self.records_dir / f"{trial_id}.json"
        if path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))
            if saved["hyperparameters"] == values:
                self.reused += 1
                return TrialRecord(**saved)
        rec = self._evaluate(trial_id, values, arch or architecture(self.cfg.space, values))
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, rec.to_json())
        return rec

    def _evaluate(self, trial_id: str, values: dict[str, Any], arch: Architecture) -> TrialRecord:
        from edge_opt.nas.predictor import features

        base = {
            "trial": trial_id,
            "hyperparameters": values,
            "architecture": arch.model_dump(),
            "label": arch.describe(),
        }
        seconds = {"train": 0.0, "convert": 0.0, "measure": 0.0}
        try:
            model = self.build(arch)
        except Exception as exc:  # noqa: BLE001 - a point of the space that does not build is recorded
            return TrialRecord(
                **base,
                status="failed",
                reason=f"cannot build: {first_line(exc)}",
                score=None,
                metrics={},
                seconds=seconds,
            )
        feats = features(model)
        predicted = self.predictor.predict(feats) if self.predictor is not None else None
        if predicted is not None and self.target_ms and predicted > self.cfg.predictor.skip_factor * self.target_ms:
            self.trainings_saved += 1
            reason = (
                f"predicted latency {predicted:.3g} ms > {self.cfg.predictor.skip_factor:g} x T "
                f"({self.target_ms:g} ms): not trained (a prediction, not a measurement)"
            )
            return TrialRecord(
                **base,
                status="skipped",
                reason=reason,
                score=None,
                metrics={},
                seconds=seconds,
                features=feats,
                predicted_latency_ms=predicted,
            )
        epochs = int(values.get("tuner/epochs", self.cfg.epochs))
        t0 = time.perf_counter()
        root, keras_acc, params = self._train(model, arch, epochs)
        seconds["train"] = round(time.perf_counter() - t0, 3)
        out = self._deploy_and_measure(root, seconds)
        metrics = {"keras_accuracy": keras_acc, **params, **out["metrics"]}
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
            artifact=out["artifact"],
            root=root.id,
            record=out["record"],
            features=feats,
            predicted_latency_ms=predicted,
        )

    def _train(self, model, arch: Architecture, epochs: int):
        """Train briefly and publish the trial's model as an artifact (re-used when it exists)."""
        from edge_opt._tf import keras
        from edge_opt.artifacts import ArtifactWriter
        from edge_opt.models import dataset_pipeline

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
        with ArtifactWriter(
            self.artifacts_dir,
            parent=None,
            pass_name="nas-trial",
            config=config,
            target=None,
            fmt="keras",
            precision="fp32",
            model_file="model.keras",
            label=f"trial {arch.describe()}",
        ) as w:
            if w.existing:
                return w.existing, w.existing.manifest["notes"]["keras_accuracy"], _params(w.existing.manifest["notes"])
            k = keras()
            k.utils.set_random_seed(self.seed)
            model = self.build(arch)  # rebuilt after seeding: the same candidate gets the same weights
            binary = self.data.n_classes == 2
            model.compile(
                optimizer=k.optimizers.Adam(self.cfg.learning_rate),
                loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
                metrics=["accuracy"],
            )
            cast = (lambda y: y.astype("float32")) if binary else (lambda y: y)
            model.fit(
                dataset_pipeline(self.x_train, cast(self.y_train), self.cfg.batch_size, shuffle=True, seed=self.seed),
                epochs=epochs,
                verbose=0,
            )
            _, acc = model.evaluate(self.x_val, cast(self.y_val), verbose=0)
            model.save(str(w.stage / "model.keras"))
            w.notes.update(keras_accuracy=float(acc), **parameter_counts(model))
            return w.publish(), float(acc), parameter_counts(model)

    def _deploy_and_measure(self, root, seconds: dict) -> dict:
        from edge_opt.models import predicted_labels
        from edge_opt.passes import PassContext
        from edge_opt.pipeline import run_pipeline
        from edge_opt.runner import _measure

        ctx = PassContext(
            target=self.profile.name,
            calibration=self.data.calibration(min(self.calibration_rows, len(self.data.x_train)), seed=self.seed),
            calibration_source=f"{self.data.name} train split",
            data=self.data,
            seed=self.seed,
        )
        t0 = time.perf_counter()
        done = run_pipeline(root, self.steps, self.artifacts_dir, ctx)
        seconds["convert"] = round(time.perf_counter() - t0, 3)
        if done.status != "ok":
            return {
                "status": "failed",
                "reason": f"pipeline {done.names}: {done.error}",
                "metrics": {},
                "artifact": None,
                "record": None,
            }
        artifact = done.artifact
        threads = self.profile.threads[0]
        t0 = time.perf_counter()
        rec = None
        for rs in (r for r in self.profile.runtimes if r.reads(artifact.format)):
            rec, outputs = _measure(
                artifact, rs.runtime, rs.device, threads, self.x_val, self.harness, self.task, rs.note, rs.precision
            )
            if rec.status != "skipped":  # no EdgeTPU here: the next runtime (the labelled host proxy)
                break
        seconds["measure"] = round(time.perf_counter() - t0, 3)
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
            from edge_opt.analysis.edgetpu import analyze

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
def make_oracle(name: str, trials: int, seed: int, epochs: int):
    import keras_tuner as kt

    objective = kt.Objective("score", direction="max")
    kt_seed = seed + 1  # keras-tuner draws a random seed for a falsy one (0)
    if name == "random":
        return kt.oracles.RandomSearchOracle(objective=objective, max_trials=trials, seed=kt_seed)
    if name == "bayesian":
        return kt.oracles.BayesianOptimizationOracle(
            objective=objective, max_trials=trials, seed=kt_seed, num_initial_points=max(2, min(3, trials - 1))
        )
    oracle = kt.oracles.HyperbandOracle(objective=objective, max_epochs=max(2, 3 * epochs), factor=3, seed=kt_seed)
    oracle.max_trials = trials  # Hyperband has no trial budget of its own
    return oracle


def make_tuner(ctx: SearchContext, oracle_name: str, project: str, executor: TrialExecutor):
    """A keras-tuner Tuner whose ``run_trial`` returns the trial's metric dict (objective: ``score``)."""
    import keras_tuner as kt

    from edge_opt.nas.space import hypermodel

    class EdgeTuner(kt.engine.base_tuner.BaseTuner):
        records: dict[str, TrialRecord] = {}

        def run_trial(self, trial, *args, **kwargs) -> dict[str, float]:
            values = dict(trial.hyperparameters.values)
            n = len(self.records) + 1
            ctx.progress(f"{ctx.task}: nas {ctx.profile.name} ({oracle_name}): trial {n}/{ctx.cfg.trials}")
            (rec,) = executor.run([lambda: ctx.trial(trial.trial_id, values)])
            self.records[trial.trial_id] = rec
            ctx.refit_predictor(self.records.values())
            metrics = {"score": rec.score if rec.score is not None else 0.0}  # the oracle learns a bad point
            metrics.update({k: float(v) for k, v in rec.metrics.items() if isinstance(v, int | float)})
            return metrics

        def save_model(self, trial_id, model, step=0) -> None:  # the trial's artifact is the saved model
            return None

        def load_model(self, trial):
            raise NotImplementedError("a trial's model is its artifact (nas.json names it)")

    oracle = make_oracle(oracle_name, ctx.cfg.trials, ctx.seed, ctx.cfg.epochs)
    model = hypermodel(ctx.cfg.space, ctx.data.input_shape, ctx.data.n_classes, _PcaView(ctx))
    tuner = EdgeTuner(oracle, model, directory=str(ctx.out_dir), project_name=project)
    tuner.records = {
        p.stem: TrialRecord(**json.loads(p.read_text(encoding="utf-8"))) for p in sorted(ctx.records_dir.glob("*.json"))
    }  # a resumed search's finished trials
    return tuner


class _PcaView:
    """The hypermodel's view of the fitted PCAs: ``get(k)`` fits on first use."""

    def __init__(self, ctx: SearchContext) -> None:
        self.ctx = ctx

    def get(self, k: int):
        return self.ctx.pca(k)


def _refit_predictor(self: SearchContext, records) -> None:
    from edge_opt.nas.predictor import LatencyPredictor

    if self.cfg.predictor is None:
        return
    measured = [r for r in records if r.features and r.metrics.get("latency_p50_ms")]
    if len(measured) >= self.cfg.predictor.after:
        self.predictor = LatencyPredictor(
            [r.features for r in measured], [r.metrics["latency_p50_ms"] for r in measured]
        )


SearchContext.refit_predictor = _refit_predictor


def search(
    ctx: SearchContext, oracle_name: str, project: str = "tuner", executor: TrialExecutor | None = None
) -> list[TrialRecord]:
    """Run (or continue) one search; returns every trial's record in trial order."""
    import contextlib
    import io

    ctx.records_dir = ctx.out_dir / project / "records"
    ctx.records_dir.mkdir(parents=True, exist_ok=True)
    tuner = make_tuner(ctx, oracle_name, project, executor or LocalExecutor())
    # keras-tuner prints its own tables on stdout; edge-opt shows its progress and summary instead.
    with contextlib.redirect_stdout(io.StringIO()):
        tuner.search(verbose=0)
    records = []
    for trial_id in sorted(tuner.oracle.trials):
        path = ctx.records_dir / f"{trial_id}.json"
        if path.is_file():
            records.append(TrialRecord(**json.loads(path.read_text(encoding="utf-8"))))
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


def run_search(ctx: SearchContext, executor: TrialExecutor | None = None) -> SearchResult:
    """Measure the hand-designed baseline, search, and compute the front and the efficacy figures."""
    started = time.perf_counter()
    ctx.progress(f"{ctx.task}: nas {ctx.profile.name}: the hand-designed baseline")
    baseline = ctx.trial("baseline", {}, baseline_architecture(ctx.cfg.baseline))
    if baseline.status in ("ok", "rejected"):
        ctx.baseline_accuracy = baseline.metrics["accuracy"]
    trials = search(ctx, ctx.cfg.oracle, "tuner", executor)
    wall = time.perf_counter() - started
    reference = reference_point(ctx, baseline)
    figures = efficacy(trials, baseline, reference, ctx)
    figures["wall_s"] = round(wall, 1)
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
    from edge_opt.nas.predictor import held_out_accuracy

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
        predictor = {
            "label": "prediction",
            "fitted_after": ctx.cfg.predictor.after,
            "trainings_saved": sum(1 for t in trials if t.status == "skipped" and t.predicted_latency_ms is not None),
            "accuracy": held_out_accuracy(
                [t.features for t in measured], [t.metrics["latency_p50_ms"] for t in measured]
            ),
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
