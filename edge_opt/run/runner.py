"""``edge-opt run``: train, convert per target profile, measure, store, report.

One failing pipeline or measurement is recorded and the run goes on. The run is staged in
``OUT/.partial-<run-id>/`` and renamed to ``OUT/<run-id>/`` once complete, so a killed
run never leaves something that looks like a finished result.

A staging folder keeps a journal of what is finished (``.journal/``: each scored
measurement, the float model's predictions, each task's trust checks) next to the
artifacts, which are content-addressed. ``run --resume`` takes over the newest staging
folder of a dead run of the same suite and re-uses all of it: nothing finished is built,
measured or checked again.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from edge_opt.core.artifacts import Artifact
from edge_opt.core.errors import BadInputError, EdgeOptError
from edge_opt.core.fileio import write_bytes_atomic, write_json_atomic
from edge_opt.measure.harness import HarnessOptions
from edge_opt.measure.records import Measurement, build_record, record_id
from edge_opt.measure.service import KERAS_REFERENCE, measure_one, measure_places, places_for
from edge_opt.nas.executors import make_executor
from edge_opt.report import write_reports
from edge_opt.run.suite import Suite, TaskConfig
from edge_opt.store import append_history, check_history, write_run
from edge_opt.targets import TargetProfile, load_profile

Progress = Callable[[str], None]  # called before each step with a description


@dataclass
class RunResult:
    run_dir: Path
    results: dict
    removed: list[str] = field(default_factory=list)  # staging folders of dead runs cleaned at the start
    resumed: str | None = None  # the staging folder this run took over (--resume)


class Journal:
    """What a staged run has finished, written as it finishes, so that a killed run can resume.

    ``.journal/<record-id>.json`` holds a scored measurement (ok or skipped: a failed one is
    measured again), ``<task>.reference.npy`` the float model's predicted labels (the other
    records are scored against them), ``<task>.checks.json`` a task's trust checks.
    """

    def __init__(self, stage: Path) -> None:
        self.dir = stage / ".journal"
        self.dir.mkdir(exist_ok=True)
        self.reused = {"measurements": 0, "checks": 0}

    def measurement(self, rec_id: str) -> Measurement | None:
        path = self.dir / f"{rec_id}.json"
        if not path.is_file():
            return None
        rec = Measurement(**json.loads(path.read_text(encoding="utf-8")))
        self.reused["measurements"] += 1
        return rec

    def save_measurement(self, rec: Measurement) -> None:
        if rec.status in ("ok", "skipped"):
            write_json_atomic(self.dir / f"{rec.id}.json", rec.to_json())

    def labels(self, task: str) -> np.ndarray | None:
        path = self.dir / f"{task}.reference.npy"
        return np.load(path, allow_pickle=False) if path.is_file() else None

    def save_labels(self, task: str, labels: np.ndarray | None) -> None:
        if labels is not None:
            buf = io.BytesIO()
            np.save(buf, labels, allow_pickle=False)
            write_bytes_atomic(self.dir / f"{task}.reference.npy", buf.getvalue())

    def checks(self, task: str) -> dict | None:
        path = self.dir / f"{task}.checks.json"
        if not path.is_file():
            return None
        self.reused["checks"] += 1
        return json.loads(path.read_text(encoding="utf-8"))

    def save_checks(self, task: str, checks: dict) -> None:
        write_json_atomic(self.dir / f"{task}.checks.json", checks)


def plan_steps(suite: Suite, profiles: list[TargetProfile]) -> int:
    """How many progress steps a run takes (train + reference + passes + measurements)."""
    steps = 0
    for task in suite.tasks:
        steps += 3  # train, reference, trust checks
        searched = getattr(task.model, "targets", None)
        if task.model.kind == "nas":  # per searched target: baseline, trials, the chosen model, its reference
            per = 3 + task.model.trials * (2 if task.model.compare_random else 1)
            steps += per * sum(1 for p in profiles if searched is None or p.name in searched)
        for profile in profiles:
            for pipeline in profile.pipelines:
                steps += 1
                fmt = _output_format(pipeline[-1].pass_)
                steps += sum(len(profile.threads) for rs in profile.runtimes if rs.reads(fmt))
    return steps


def _output_format(pass_name: str) -> str:
    from edge_opt.passes import pass_class

    return pass_class(pass_name).output


def run_suite(
    suite: Suite,
    out: Path,
    *,
    progress: Progress = lambda _: None,
    options: dict | None = None,
    resume: bool = False,
    trust_model: bool = False,
    devices: list | None = None,
    engine: str = "local",
    address: str | None = None,
) -> RunResult:
    """``devices``: the DeviceConfigs to measure on (default: the suite's ``devices`` from the
    built-in inventory); ``trust_model``: the command line's --trust-model, for the user's Keras files;
    ``engine``: ``local`` (this process) or ``ray`` (each device's measurements on its Ray actor, at
    the cluster ``address``; None: a local Ray)."""
    from edge_opt.core.provenance import provenance
    from edge_opt.measure.devices import Device, get_device
    from edge_opt.run.user_models import check_task

    profiles = [load_profile(name) for name in suite.targets]  # validate all before any work
    configs = devices if devices is not None else [get_device(name) for name in suite.devices]
    for task in suite.tasks:
        if task.file:
            check_task(task, trust_model)  # a bad model file or data that does not fit it: exit 2 now
    out = Path(out)
    check_history(out / "history.sqlite")  # a corrupt one is exit 2 now, not after the run
    plan = {**_plan_identity(suite, profiles), "devices": [c.model_dump(mode="json") for c in configs]}
    taken = _take_over(out, suite.name, plan) if resume else None
    removed = _clean_stale(out)
    run_id, stage = taken or _new_stage(out, suite.name)
    write_json_atomic(stage / ".plan.json", plan)
    journal = Journal(stage)
    started = time.perf_counter()
    harness = HarnessOptions(**suite.harness.model_dump())
    records: list[Measurement] = []
    checks: dict[str, dict] = {}
    searches: dict[str, dict] = {}  # task -> target -> SearchResult (tasks whose model is {kind: nas})
    places = [Device(c) for c in configs]
    ray_engine = None
    if engine == "ray":  # the devices' actors, and the architecture searches' trials as Ray tasks
        from edge_opt.measure.ray_engine import RayEngine

        ray_engine = RayEngine(configs, address)
    try:
        for task in suite.tasks:
            task_records, checks[task.name] = _run_task(
                task, suite, profiles, stage, harness, progress, journal, searches, places, trust_model, ray_engine
            )
            records += task_records
        if ray_engine is not None and places:  # read on the nodes that reach the devices
            fingerprints = ray_engine.fingerprints()
        else:
            fingerprints = {d.name: d._fingerprint or {"unreachable": d.unreachable()} for d in places}
        results = {
            "schema": "edge-opt/results/1",
            "run_id": run_id,
            "suite": suite.model_dump(mode="json"),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "duration_s": round(time.perf_counter() - started, 1),
            "provenance": {
                **provenance({**(options or {}), "harness": harness.to_dict()}),
                "devices": {d.name: {**d.describe(), "fingerprint": fingerprints[d.name]} for d in places},
            },
            "targets": {p.name: p.to_dict() for p in profiles},
            "measurements": [rec.to_json() for rec in records],
            "checks": checks,
            "nas": _nas_summary(searches) or None,
            # A resumed run: how much of it the killed run had finished (None for a run in one go).
            "resumed": {"reused": dict(journal.reused)} if taken else None,
        }
        for rec in results["measurements"]:  # paths relative to the run folder, which is renamed below
            if rec["artifact"]["path"]:
                rec["artifact"]["path"] = os.path.relpath(rec["artifact"]["path"], stage)
        from edge_opt.analysis.roofline import artifact_macs, host_peak

        results["provenance"]["host_peak"] = host_peak()  # the peak host rows are held to (report.html)
        results["roofline"] = artifact_macs(stage, results["measurements"])
        if searches:
            write_json_atomic(stage / "nas.json", _nas_json(searches))
        shutil.rmtree(journal.dir)
        (stage / ".plan.json").unlink()
        (stage / ".pid").unlink()
        write_run(stage, results)
        write_reports(stage, results)
        final = out / run_id
        os.replace(stage, final)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the staging folder stays, for --resume
        raise
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        for device in places:
            device.close()
        if ray_engine is not None:
            ray_engine.close()
    append_history(out / "history.sqlite", results)
    return RunResult(final, results, removed, stage.name if taken else None)


def _nas_summary(searches: dict[str, dict]) -> dict:
    from edge_opt.run.nas_task import summary

    return {task: {target: summary(res) for target, res in by.items()} for task, by in searches.items()}


def _nas_json(searches: dict[str, dict]) -> dict:
    from edge_opt.run.nas_task import nas_json

    return nas_json(searches)


def _plan_identity(suite: Suite, profiles: list[TargetProfile]) -> dict:
    """What a resumed run must share with the killed one: the suite and the profiles as loaded."""
    from edge_opt import __version__

    return {
        "edge_opt": __version__,
        "suite": suite.model_dump(mode="json"),
        "targets": {p.name: p.to_dict() for p in profiles},
    }


def _take_over(out: Path, name: str, plan: dict) -> tuple[str, Path] | None:
    """The newest staging folder of a dead run of this suite, now this process's (None: none)."""
    for stage in sorted(out.glob(f".partial-*-{name}*"), reverse=True) if out.is_dir() else []:
        run_id = stage.name.removeprefix(".partial-")
        if not _dead(stage) or not _same_suite(run_id, name):
            continue
        try:
            before = json.loads((stage / ".plan.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # killed before it wrote its plan: nothing to re-use
        if before != plan:
            raise BadInputError(
                f"{stage}: the suite, its target profiles or edge-opt changed since that run was killed; "
                "run without --resume to start again"
            )
        (stage / ".pid").write_text(str(os.getpid()), encoding="ascii")
        for leftover in (stage / "artifacts").glob(".*"):  # an artifact the kill interrupted
            shutil.rmtree(leftover, ignore_errors=True)
        return run_id, stage
    return None


def _same_suite(run_id: str, name: str) -> bool:
    """``20261202-101500-quick`` or ``...-quick-2`` is a run of ``quick``; ``...-quick-x`` is not."""
    rest = run_id[len("YYYYmmdd-HHMMSS-") :]
    return rest == name or (rest.startswith(name + "-") and rest[len(name) + 1 :].isdigit())


def _dead(stage: Path) -> bool:
    """Whether the run that staged this folder is gone (killed, or the machine restarted)."""
    import psutil

    try:
        pid = int((stage / ".pid").read_text(encoding="ascii"))
    except (OSError, ValueError):
        return True
    return pid != os.getpid() and not psutil.pid_exists(pid)


def _new_stage(out: Path, name: str) -> tuple[str, Path]:
    """A run id no other run has, even one started in the same second, and its staging folder.

    The folder is created with ``exist_ok=False`` (the file system decides between two runs
    racing for one id) and records this process's pid, so a later run can tell a dead run's
    leftovers from a live one's.
    """
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        run_id = f"{stamp}-{name}" + ("" if n == 1 else f"-{n}")
        stage = out / f".partial-{run_id}"
        if (out / run_id).exists():
            continue
        try:
            stage.mkdir(exist_ok=False)
        except FileExistsError:
            continue
        (stage / ".pid").write_text(str(os.getpid()), encoding="ascii")
        return run_id, stage
    raise EdgeOptError(f"{out}: no free run id for {stamp}-{name} after 999 tries")


def _clean_stale(out: Path) -> list[str]:
    """Remove the staging folders of runs whose process is gone (killed, or the machine restarted)."""
    removed = []
    for stage in sorted(out.glob(".partial-*")) if out.is_dir() else []:
        if not _dead(stage):
            continue  # a run in progress, or the one this process took over
        shutil.rmtree(stage, ignore_errors=True)
        removed.append(stage.name)
    return removed


def _run_task(
    task: TaskConfig,
    suite: Suite,
    profiles,
    stage: Path,
    harness: HarnessOptions,
    progress: Progress,
    journal: Journal,
    searches: dict[str, dict] | None = None,
    places: list | None = None,
    trust: bool = False,
    ray_engine=None,
) -> tuple[list[Measurement], dict]:
    from edge_opt.datasets import load_dataset
    from edge_opt.models import train_artifact
    from edge_opt.passes import PassContext
    from edge_opt.passes.pipeline import pipeline_names, run_pipeline
    from edge_opt.run.user_models import import_model, load_task_data

    artifacts_dir = stage / "artifacts"
    from edge_opt.nas.space import NasConfig

    nas = task.model if isinstance(task.model, NasConfig) else None
    data_config = {"train_rows": task.train_rows}
    if task.file:  # the user's own model and data
        data = load_task_data(task)
        progress(f"{task.name}: importing {Path(task.file).name}")
        root = import_model(task, artifacts_dir, trust)
    else:
        data = load_dataset(task.dataset, seed=suite.seed, train_rows=task.train_rows)
        progress(f"{task.name}: training the float model")
        model = nas.baseline if nas else task.model
        root = train_artifact(model, data, task.name, artifacts_dir, seed=suite.seed, data_config=data_config)
    roots: dict[str, Artifact] = {}  # target -> its float model: the chosen architecture where one was searched
    if nas is not None:
        from edge_opt.run.nas_task import search_targets, train_chosen

        found = search_targets(
            task.name,
            nas,
            data,
            profiles,
            stage / "nas" / task.name,
            harness,
            seed=suite.seed,
            calibration_rows=task.calibration_rows,
            progress=progress,
            executor=make_executor(nas.parallel, "ray") if ray_engine is not None else None,
        )
        if searches is not None:
            searches[task.name] = found
        for target, result in found.items():
            progress(f"{task.name}: training the architecture chosen for {target}")
            roots[target] = train_chosen(
                result, nas, data, task.name, artifacts_dir, seed=suite.seed, data_config=data_config
            )
    x_test, y_test = data.x_test, data.y_test
    if task.test_rows:
        x_test, y_test = x_test[: task.test_rows], y_test[: task.test_rows]

    def measure_on(art, rs, target, threads, ref_acc, ref_pred) -> list[Measurement]:
        """One artifact on one runtime entry at ``threads``, on each device serving the target (at
        once under the Ray engine: each device on its own actor); journalled records are re-used."""
        serving = places_for(target, places or [])
        out = [
            journal.measurement(record_id(art.id, rs.runtime, rs.device, threads, rs.precision, p and p.name))
            for p in serving
        ]
        todo = [i for i, rec in enumerate(out) if rec is None]
        targets = [places_for(target, places or [])[i] for i in todo]
        done = measure_places(
            art,
            rs,
            threads,
            targets,
            x=x_test,
            harness=harness,
            task=task.name,
            trust_model=trust,
            ray_engine=ray_engine,
        )
        for i, m in zip(todo, done, strict=True):
            rec = _score(m.record, _labels(m.outputs, data.n_classes), y_test, ref_acc, ref_pred)
            journal.save_measurement(rec)
            out[i] = rec
        return out

    if root.format != "keras":  # a deployed file: measured as it is, on every runtime of every profile that reads it
        records: list[Measurement] = []
        for profile in profiles:
            for rs in (rs for rs in profile.runtimes if rs.reads(root.format)):
                for threads in profile.threads:
                    progress(
                        f"{task.name}: {profile.name}: {root.manifest['label']} on {rs.runtime}, {threads} thread(s)"
                    )
                    for rec in measure_on(root, rs, profile.name, threads, None, None):
                        records.append(replace(rec, target=profile.name))
        why = "a deployed file has no float model to check it against"
        return records, {"float": None, "artifacts": {}, "robustness": None, "skipped": why}

    records: list[Measurement] = []
    refs: dict[str, tuple[float | None, np.ndarray | None]] = {}  # root id -> its accuracy and predicted labels
    for float_model in [root, *roots.values()]:
        if float_model.id in refs:
            continue
        progress(f"{task.name}: measuring the float model {float_model.manifest['label']} (keras)")
        key = task.name if float_model is root else f"{task.name}.{float_model.id}"
        reference, ref_pred = journal.measurement(record_id(float_model.id, "keras", "cpu", 1)), journal.labels(key)
        if reference is None or (reference.status == "ok" and ref_pred is None):
            m = measure_one(
                float_model,
                KERAS_REFERENCE,
                1,
                x=x_test,
                harness=harness,
                task=task.name,
                note="float reference",
                trust_model=trust,
            )
            ref_pred = _labels(m.outputs, data.n_classes)
            reference = _score(m.record, ref_pred, y_test, None, None)
            journal.save_labels(key, ref_pred)  # before the record: a record found means its labels are there
            journal.save_measurement(reference)
        records.append(reference)
        refs[float_model.id] = (reference.accuracy, ref_pred)

    calibration = data.calibration(min(task.calibration_rows, len(data.x_train)), seed=suite.seed)
    seen: set[tuple] = set()  # one record per (artifact, runtime, device, threads, precision)
    for profile in profiles:
        ctx = PassContext(
            target=profile.name,
            calibration=calibration,
            calibration_source=f"{data.name} train split",
            data=data,
            seed=suite.seed,
            trust_model=trust,
        )
        float_model = roots.get(profile.name, root)
        ref_acc, ref_pred = refs[float_model.id]
        for pipeline in profile.pipelines:
            names = pipeline_names(pipeline)
            progress(f"{task.name}: {profile.name}: {names}")
            done = run_pipeline(float_model, pipeline, artifacts_dir, ctx)
            if done.status != "ok":  # recorded with the reason; the run goes on
                records.append(_pipeline_failure(task.name, profile.name, names, done.error, done.status))
                continue
            artifact = done.artifact
            # Some runtime reads it: profiles are checked at load (targets.check_pipelines).
            runtimes = [rs for rs in profile.runtimes if rs.reads(artifact.format)]
            for rs in runtimes:
                for threads in profile.threads:
                    at = f"@{rs.precision}" if rs.precision else ""
                    progress(
                        f"{task.name}: {profile.name}: {artifact.manifest['label']} "
                        f"on {rs.runtime}{at}/{rs.device}, {threads} thread(s)"
                    )
                    key = (artifact.id, rs.runtime, rs.device, threads, rs.precision)
                    if key in seen:  # another pipeline ended in the same artifact: measured already
                        continue
                    seen.add(key)
                    records += measure_on(artifact, rs, profile.name, threads, ref_acc, ref_pred)
    progress(f"{task.name}: trust checks on the chosen artifacts")
    from edge_opt.analysis.checks import attach, run_checks

    checks = journal.checks(task.name)
    if checks is None:
        # Each target's files are checked against the float model they came from: the chosen
        # architecture for a searched target, the task's model for the others.
        groups: dict[str, tuple[Artifact, list[TargetProfile]]] = {}
        for profile in profiles:
            float_model = roots.get(profile.name, root)
            groups.setdefault(float_model.id, (float_model, []))[1].append(profile)
        as_json = [r.to_json() for r in records]
        for float_model, group in groups.values():
            part = run_checks(
                data, float_model, as_json, group, suite.checks, seed=suite.seed, rows=task.test_rows, progress=progress
            )
            for entry in part["artifacts"].values():
                entry["float"] = part["float"]
            if checks is None:  # the first float model's shared figures stay at the top, as before
                checks = part
            else:
                checks["artifacts"].update(part["artifacts"])
                checks.setdefault("floats", {})[float_model.id] = {k: v for k, v in part.items() if k != "artifacts"}
        journal.save_checks(task.name, checks)
    return attach(records, checks), checks


def _labels(outputs: np.ndarray | None, n_classes: int) -> np.ndarray | None:
    from edge_opt.models import predicted_labels

    return None if outputs is None else predicted_labels(outputs, n_classes)


def _score(
    rec: Measurement, pred: np.ndarray | None, y: np.ndarray, ref_acc: float | None, ref_pred: np.ndarray | None
) -> Measurement:
    """The record with accuracy, the drop against the float model and agreement with it."""
    if pred is None or rec.status != "ok":
        return rec
    accuracy = float(np.mean(pred == y))
    return replace(
        rec,
        accuracy=accuracy,
        accuracy_drop=None if ref_acc is None else ref_acc - accuracy,
        agreement=None if ref_pred is None else float(np.mean(pred == ref_pred)),
    )


def _pipeline_failure(task: str, target: str, names: str, msg: str, status: str = "failed") -> Measurement:
    artifact = {
        "id": f"{status}:{target}:{names}",
        "path": "",
        "format": "-",
        "precision": "-",
        "target": target,
        "pass": names,
        "parent": None,
        "label": names,
    }
    return build_record(
        artifact=artifact,
        runtime="-",
        device="-",
        threads=0,
        size_bytes=None,
        status=status,
        error=f"pipeline {names} {'cannot apply' if status == 'skipped' else 'failed'}: {msg}",
        task=task,
    )
