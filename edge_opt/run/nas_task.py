"""A suite task whose model is ``{kind: nas, ...}``: search per target, then train the chosen model.

The chosen architecture becomes that target's float model: a root artifact with pass ``nas``
whose manifest notes hold the search summary, so lineage shows the search at the root.
Trial artifacts and keras-tuner's project folder live in ``<run>/nas/<task>/<target>/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_opt.core.artifacts import Artifact
from edge_opt.core.config import Strict, read_yaml, validate
from edge_opt.core.errors import ConfigError
from edge_opt.core.tfkeras import keras
from edge_opt.core.units import fmt_bytes, fmt_ms
from edge_opt.models import fit_classifier, keras_root
from edge_opt.nas.executors import TrialExecutor, make_executor
from edge_opt.nas.predictor import describe_accuracy
from edge_opt.nas.search import SearchContext, SearchResult, parameter_counts, run_search
from edge_opt.nas.space import Architecture, NasConfig, baseline_architecture, build, check_space, fit_pca
from edge_opt.run.suite import HarnessConfig, Suite, TaskConfig, load_suite


def search_targets(
    task: str,
    cfg: NasConfig,
    data,
    profiles: list,
    folder: Path,
    harness,
    *,
    seed: int = 0,
    calibration_rows: int = 256,
    progress=lambda _: None,
    executor: TrialExecutor | None = None,
) -> dict[str, SearchResult]:
    """One search per target profile given (the space is checked once, before any training).

    ``executor``: where the trials train (default: ``cfg.parallel`` local processes, or this one)."""
    check_space(cfg.space, data.input_shape, data.n_classes, f"task {task}: model.space")
    own = executor is None
    executor = executor or make_executor(cfg.parallel)
    try:
        return _search_each(task, cfg, data, profiles, folder, harness, seed, calibration_rows, progress, executor)
    finally:
        if own:
            executor.close()


def _search_each(task, cfg, data, profiles, folder, harness, seed, calibration_rows, progress, executor):
    results = {}
    for profile in profiles:
        where = folder / profile.name
        ctx = SearchContext(
            task=task,
            cfg=cfg,
            data=data,
            profile=profile,
            out_dir=where,
            artifacts_dir=where / "artifacts",
            harness=harness,
            calibration_rows=calibration_rows,
            seed=seed,
            progress=progress,
        )
        results[profile.name] = run_search(ctx, executor)
    return results


def summary(result: SearchResult) -> dict[str, Any]:
    """What the chosen model's manifest notes and results.json say about its search."""
    chosen = result.chosen
    return {
        "target": result.target,
        "chosen": chosen.trial if chosen else None,
        "hyperparameters": {k: v for k, v in (chosen.hyperparameters if chosen else {}).items()},
        "architecture": chosen.label if chosen else result.baseline.label,
        "score": chosen.score if chosen else None,
        "trials": result.figures["trials_used"],
        "grid_size": result.figures["grid_size"],
        "front_latency": result.figures["front_latency"],
        "hypervolume": result.figures["hypervolume"],
        "headline": result.figures["headline"],
        "oracle": result.figures["oracle"],
        "objective": result.figures["objective"],
    }


def train_chosen(
    result: SearchResult, cfg: NasConfig, data, task: str, out_dir: Path, seed: int = 0, data_config: dict | None = None
) -> Artifact:
    """Train the chosen architecture (the baseline's when no trial was ok) as the target's float model."""
    arch = Architecture(**result.chosen.architecture) if result.chosen else baseline_architecture(cfg.baseline)
    epochs = cfg.final_epochs or cfg.baseline.epochs
    config = {
        "task": task,
        "dataset": data.name,
        "data": data_config or {},
        "architecture": arch.model_dump(),
        "epochs": epochs,
        "searched_for": result.target,
        "seed": seed,
    }

    def make(notes: dict):
        keras().utils.set_random_seed(seed)
        pca = fit_pca(data.x_train, arch.pca, seed) if arch.pca else None
        model = build(arch, data.input_shape, data.n_classes, pca)
        fit_classifier(
            model,
            data.x_train,
            data.y_train,
            data.n_classes,
            learning_rate=cfg.baseline.learning_rate,
            batch_size=cfg.baseline.batch_size,
            epochs=epochs,
            seed=seed,
        )
        notes["parameters"] = int(model.count_params())
        notes["input_shape"] = list(data.input_shape)
        notes["nas"] = {**summary(result), **parameter_counts(model)}
        return model

    return keras_root(out_dir, pass_name="nas", config=config, label=f"float (nas {result.target})", make=make)


def nas_json(searches: dict[str, dict[str, SearchResult]]) -> dict[str, Any]:
    """``nas.json``: every trial, the fronts and the efficacy figures, per task and target."""
    return {
        "schema": "edge-opt/nas/1",
        "tasks": {task: {target: res.to_json() for target, res in by.items()} for task, by in searches.items()},
    }


def summary_rows(result: SearchResult) -> list[list[str]]:
    """One row per trial (the baseline first) for the command's summary table."""
    front = set(result.figures["front_latency"])
    rows = []
    for t in [result.baseline, *result.trials]:
        m = t.metrics
        mark = "*" if t.trial in front else ("baseline" if t.trial == "baseline" else "")
        if result.chosen is not None and t.trial == result.chosen.trial:
            mark = "chosen" + (" *" if t.trial in front else "")
        rows.append(
            [
                t.trial,
                t.label,
                t.status,
                _fmt(m.get("accuracy"), ".4f"),
                fmt_ms(m.get("latency_p50_ms")),
                fmt_ms(m.get("latency_p90_ms")),
                fmt_bytes(m.get("size_raw")),
                _fmt(t.score, ".4f"),
                mark if t.status != "rejected" else f"{mark} {t.reason}".strip(),
            ]
        )
    return rows


def _fmt(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def efficacy_lines(result: SearchResult) -> list[str]:
    f = result.figures
    t_ms = f", T = {f['latency_target_ms']:g} ms" if f["latency_target_ms"] else ""
    lines = [
        f"{result.target}: {f['trials_used']} trial(s) of a {f['grid_size']:,}-point grid ({f['oracle']}, "
        f"{f['objective']} objective{t_ms})",
        f"  hypervolume (accuracy x latency, reference {f['reference']['latency_ms']:g} ms): {f['hypervolume']:.4g}; "
        f"trials to target: {f['trials_to_target']}; cost: train {f['cost_s']['train']} s, "
        f"convert {f['cost_s']['convert']} s, measure {f['cost_s']['measure']} s",
    ]
    h = f.get("headline")
    if h and h.get("trial"):
        lines.append(
            f"  headline: {h['label']} at {h['accuracy']:.4f} (baseline {h['baseline_accuracy']:.4f}) is "
            f"{h['speedup']:.2f}x the baseline's speed "
            f"(p50 {h['latency_p50_ms']:.4g} vs {h['baseline_latency_p50_ms']:.4g} ms)"
        )
        c = h.get("confirmed")
        if c:
            lines.append(
                f"  confirmed: {c['speedup']:.2f}x in {c['rounds']} paired re-measurements each, {c['order']} "
                f"(p50 {c['latency_p50_ms']:.4g} vs {c['baseline_latency_p50_ms']:.4g} ms)"
            )
    elif h:
        lines.append(f"  headline: {h['note']}")
    p = f.get("predictor")
    if p and p.get("accuracy"):
        lines.append(
            f"  latency predictor (a prediction): {describe_accuracy(p)}; uses {p.get('used', 'whole-model')}; "
            f"trainings saved: {p['trainings_saved']}"
        )
    if result.random:
        r = result.random
        lines.append(
            f"  random search at equal trials: hypervolume {r['hypervolume']:.4g}, best {r['best_so_far'][-1]}"
        )
    return lines


def load_search(path: str, *, target: str | None, trials: int | None, oracle: str | None, parallel: int | None = None):
    """A suite (its tasks whose model is ``{kind: nas}``) or a space file, as a Suite, with the overrides."""
    suite = _read_search(path)
    tasks = [t for t in suite.tasks if isinstance(t.model, NasConfig)]
    if not tasks:
        raise ConfigError(f"{path}: no task whose model is {{kind: nas, ...}}: nothing to search")
    if target is not None and target not in suite.targets:
        raise ConfigError(f"--target {target}: not among the targets of {path} ({', '.join(suite.targets)})")
    update: dict[str, Any] = {}
    if target:
        update["targets"] = [target]
    if trials:
        update["trials"] = trials
    if oracle:
        update["oracle"] = oracle
    if parallel:
        update["parallel"] = parallel
    tasks = [TaskConfig(**{**t.model_dump(), "model": t.model.model_copy(update=update)}) for t in tasks]
    return suite.model_copy(update={"tasks": tasks})


def _read_search(path: str):
    """The suite at ``path``, or the one-task suite of a space file (a YAML file without ``tasks``)."""
    p = Path(path)
    if p.suffix in (".yaml", ".yml") and p.is_file() and "tasks" not in read_yaml(p):
        return _space_suite(p)
    return load_suite(path)


def _space_suite(p: Path):
    """A space file (``edge-opt nas SPACE.yaml``) as a Suite of its one task."""
    from pydantic import Field

    class SpaceFile(Strict):
        """``edge-opt nas SPACE.yaml``: one dataset, the targets to search for, and the ``nas:`` block."""

        name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
        dataset: str
        seed: int = Field(default=0, ge=0, le=2**32 - 1)
        train_rows: int | None = Field(default=None, ge=100, le=10_000_000)
        calibration_rows: int = Field(default=256, ge=1, le=1_000_000)
        targets: list[str] = Field(default_factory=lambda: ["mobile"], min_length=1)
        harness: HarnessConfig = HarnessConfig()
        nas: NasConfig

    spec = validate(SpaceFile, read_yaml(p), p)
    task = {
        "name": spec.name.lower(),
        "dataset": spec.dataset,
        "train_rows": spec.train_rows,
        "calibration_rows": spec.calibration_rows,
        "model": spec.nas.model_dump(),
    }
    return validate(
        Suite,
        {
            "name": spec.name,
            "seed": spec.seed,
            "tasks": [task],
            "targets": spec.targets,
            "harness": spec.harness.model_dump(),
        },
        p,
    )
