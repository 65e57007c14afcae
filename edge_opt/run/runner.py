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
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from edge_opt import __version__
from edge_opt.analysis.checks import attach, pick_artifacts, run_checks
from edge_opt.analysis.roofline import artifact_macs, host_peak
from edge_opt.budgets.grammar import check_profile_budgets
from edge_opt.core.artifacts import Artifact, load_artifact
from edge_opt.core.errors import BadInputError, EdgeOptError
from edge_opt.core.fileio import write_bytes_atomic, write_json_atomic
from edge_opt.core.provenance import provenance
from edge_opt.datasets import load_dataset
from edge_opt.measure.devices import Device, get_device
from edge_opt.measure.harness import HarnessOptions
from edge_opt.measure.ray_engine import RayEngine
from edge_opt.measure.records import OPS_FIELDS, Measurement, build_record, record_id
from edge_opt.measure.service import KERAS_REFERENCE, measure_one, measure_places, places_for
from edge_opt.models import predicted_labels, train_artifact
from edge_opt.nas.executors import make_executor
from edge_opt.nas.space import NasConfig
from edge_opt.passes import PassContext, pass_class
from edge_opt.passes.pipeline import pipeline_names, preflight, run_pipeline
from edge_opt.repair import Repairer, repair
from edge_opt.repair.judge import LabelledRows, pipeline_budget, quick_p50
from edge_opt.report import write_reports
from edge_opt.run.nas_task import nas_json, search_targets, summary, train_chosen
from edge_opt.run.suite import Suite, TaskConfig
from edge_opt.run.user_models import check_task, import_model, load_task_data
from edge_opt.store import append_history, check_history, relative_paths, write_run
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
        saved = json.loads(path.read_text(encoding="utf-8"))
        if set(saved) != {f.name for f in fields(Measurement)}:
            return None  # written by another version of the record: measured again
        rec = Measurement(**saved)
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
        if task.model.kind == "nas":  # per searched target: baseline, trials, the chosen model, its reference
            per = 3 + task.model.trials * (2 if task.model.compare_random else 1)
            steps += per * len(suite.searched_profiles(task, profiles))
        for profile in profiles:
            for pipeline in profile.pipelines:
                steps += 1
                fmt = _output_format(pipeline[-1].pass_)
                steps += sum(len(profile.threads) for rs in profile.runtimes if rs.reads(fmt))
    return steps


def _output_format(pass_name: str) -> str:
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
    profiles = [load_profile(name) for name in suite.targets]  # validate all before any work
    for profile in profiles:
        check_profile_budgets(profile)
    configs = devices if devices is not None else [get_device(name) for name in suite.devices]
    for task in suite.tasks:
        if task.file:
            check_task(task, trust_model)  # a bad model file or data that does not fit it: exit 2 now
    out = Path(out)
    check_history(out / "history.sqlite")  # a corrupt one is exit 2 now, not after the run
    taken, removed, (run_id, stage) = _open_stage(out, suite, profiles, configs, resume)
    journal = Journal(stage)
    started = time.perf_counter()
    harness = HarnessOptions(**suite.harness.model_dump())
    records: list[Measurement] = []
    checks: dict[str, dict] = {}
    searches: dict[str, dict] = {}  # task -> target -> SearchResult (tasks whose model is {kind: nas})
    places = [Device(c) for c in configs]
    ray_engine = None
    if engine == "ray":  # the devices' actors, and the architecture searches' trials as Ray tasks
        ray_engine = RayEngine(configs, address)
    shared = _Shared(suite, profiles, stage, harness, progress, journal, searches, places, trust_model, ray_engine)
    try:
        for task in suite.tasks:
            task_records, checks[task.name] = _TaskRun(task, shared)()
            records += task_records
        results = _results(shared, run_id, records, checks, options, started, resumed=taken is not None)
        final = _land(shared, results, out / run_id)
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


def _land(run: _Shared, results: dict, final: Path) -> Path:
    """Write the run's files into the staging folder, drop its journal, and rename it to ``final``."""
    stage = run.stage
    if run.searches:
        write_json_atomic(stage / "nas.json", relative_paths(_nas_json(run.searches), stage))
    shutil.rmtree(run.journal.dir)
    (stage / ".plan.json").unlink()
    (stage / ".pid").unlink()
    write_run(stage, results)
    write_reports(stage, results)
    os.replace(stage, final)
    return final


def _open_stage(out: Path, suite: Suite, profiles: list, configs: list, resume: bool):
    """The staging folder: the killed run's one taken over (``resume``) or a new one, with the
    run's plan written in it; and the staging folders of dead runs, removed."""
    plan = {**_plan_identity(suite, profiles), "devices": [c.model_dump(mode="json") for c in configs]}
    taken = _take_over(out, suite.name, plan) if resume else None
    removed = _clean_stale(out)
    run_id, stage = taken or _new_stage(out, suite.name)
    write_json_atomic(stage / ".plan.json", plan)
    return taken, removed, (run_id, stage)


def _results(
    run: _Shared,
    run_id: str,
    records: list[Measurement],
    checks: dict,
    options: dict | None,
    started: float,
    resumed: bool,
) -> dict:
    """results.json's content, every path in it relative to the run folder (which is renamed after)."""
    places, ray_engine = run.places or [], run.ray_engine
    if ray_engine is not None and places:  # read on the nodes that reach the devices
        fingerprints = ray_engine.fingerprints()
    else:
        fingerprints = {d.name: d._fingerprint or {"unreachable": d.unreachable()} for d in places}
    results = {
        "schema": "edge-opt/results/2",
        "run_id": run_id,
        "suite": run.suite.model_dump(mode="json"),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - started, 1),
        "provenance": {
            **provenance({**(options or {}), "harness": run.harness.to_dict()}),
            "devices": {d.name: {**d.describe(), "fingerprint": fingerprints[d.name]} for d in places},
        },
        "targets": {p.name: p.to_dict() for p in run.profiles},
        "measurements": [rec.to_json() for rec in records],
        "checks": checks,
        "nas": _nas_summary(run.searches or {}) or None,
        # A resumed run: how much of it the killed run had finished (None for a run in one go).
        "resumed": {"reused": dict(run.journal.reused)} if resumed else None,
    }
    results = relative_paths(results, run.stage)
    results["provenance"]["host_peak"] = host_peak()  # the peak host rows are held to (report.html)
    results["roofline"] = artifact_macs(run.stage, results["measurements"])
    return results


def _nas_summary(searches: dict[str, dict]) -> dict:
    return {task: {target: summary(res) for target, res in by.items()} for task, by in searches.items()}


def _nas_json(searches: dict[str, dict]) -> dict:
    return nas_json(searches)


def _plan_identity(suite: Suite, profiles: list[TargetProfile]) -> dict:
    """What a resumed run must share with the killed one: the suite and the profiles as loaded."""
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


@dataclass
class _Shared:
    """What every task of a run shares: the suite, its profiles, the staging folder and the harness."""

    suite: Suite
    profiles: list[TargetProfile]
    stage: Path
    harness: HarnessOptions
    progress: Progress
    journal: Journal
    searches: dict[str, dict] | None = None
    places: list | None = None
    trust: bool = False
    ray_engine: object | None = None


class _TaskRun:
    """One task of a suite: its float model (trained, searched or the user's), the artifacts of
    every target's pipelines measured on every runtime, device and thread count, then the trust
    checks on each target's chosen file. Finished steps come from the journal."""

    def __init__(self, task: TaskConfig, run: _Shared) -> None:
        self.task, self.run = task, run
        self.artifacts_dir = run.stage / "artifacts"
        self.roots: dict[str, Artifact] = {}  # target -> its float model: the architecture searched for it
        self.refs: dict[str, tuple[float | None, np.ndarray | None]] = {}  # root id -> its accuracy, labels

    def __call__(self) -> tuple[list[Measurement], dict]:
        self.root = self._float_model()
        x_test, y_test = self.data.x_test, self.data.y_test
        if self.task.test_rows:
            x_test, y_test = x_test[: self.task.test_rows], y_test[: self.task.test_rows]
        self.x_test, self.y_test = x_test, y_test
        if self.root.format != "keras":  # a deployed file: measured as it is
            why = "a deployed file has no float model to check it against"
            return self._deployed(), {"float": None, "artifacts": {}, "robustness": None, "skipped": why}
        records = self._references()
        records += self._pipelines()
        records = self._profile_chosen(records)
        self.run.progress(f"{self.task.name}: trust checks on the chosen artifacts")
        return self._checks(records)

    def _float_model(self) -> Artifact:
        """The task's float model (the user's file, or trained), and per searched target the chosen architecture."""
        task, suite, progress = self.task, self.run.suite, self.run.progress
        nas = task.model if isinstance(task.model, NasConfig) else None
        data_config = {"train_rows": task.train_rows}
        if task.file:  # the user's own data
            self.data = load_task_data(task)
        else:
            self.data = load_dataset(task.dataset, seed=suite.seed, train_rows=task.train_rows)
        for profile in self.run.profiles:  # a step that cannot apply to the data: exit 2 before training
            preflight(profile.pipelines, self.data)
        if task.file:  # the user's own model
            progress(f"{task.name}: importing {Path(task.file).name}")
            root = import_model(task, self.artifacts_dir, self.run.trust)
        else:
            progress(f"{task.name}: training the float model")
            model = nas.baseline if nas else task.model
            root = train_artifact(
                model, self.data, task.name, self.artifacts_dir, seed=suite.seed, data_config=data_config
            )
        if nas is not None:
            self._search(nas, data_config)
        return root

    def _search(self, nas, data_config: dict) -> None:
        """The architecture search per target, and the training of each target's chosen architecture."""
        task, run = self.task, self.run
        found = search_targets(
            task.name,
            nas,
            self.data,
            run.suite.searched_profiles(task, run.profiles),
            run.stage / "nas" / task.name,
            run.harness,
            seed=run.suite.seed,
            calibration_rows=task.calibration_rows,
            progress=run.progress,
            executor=make_executor(nas.parallel, "ray") if run.ray_engine is not None else None,
        )
        if run.searches is not None:
            run.searches[task.name] = found
        for target, result in found.items():
            run.progress(f"{task.name}: training the architecture chosen for {target}")
            self.roots[target] = train_chosen(
                result, nas, self.data, task.name, self.artifacts_dir, seed=run.suite.seed, data_config=data_config
            )

    def _measure_on(self, art, rs, target, threads, ref_acc, ref_pred) -> list[Measurement]:
        """One artifact on one runtime entry at ``threads``, on each device serving the target (at
        once under the Ray engine: each device on its own actor); journalled records are re-used."""
        run = self.run
        serving = places_for(target, run.places or [])
        out = [
            run.journal.measurement(record_id(art.id, rs.runtime, rs.device, threads, rs.precision, p and p.name))
            for p in serving
        ]
        todo = [i for i, rec in enumerate(out) if rec is None]
        done = measure_places(
            art,
            rs,
            threads,
            [serving[i] for i in todo],
            x=self.x_test,
            harness=run.harness,
            task=self.task.name,
            trust_model=run.trust,
            ray_engine=run.ray_engine,
        )
        for i, m in zip(todo, done, strict=True):
            rec = _score(m.record, _labels(m.outputs, self.data.n_classes), self.y_test, ref_acc, ref_pred)
            run.journal.save_measurement(rec)
            out[i] = rec
        return out

    def _deployed(self) -> list[Measurement]:
        """A deployed file, measured as it is on every runtime of every profile that reads it."""
        records: list[Measurement] = []
        root = self.root
        for profile in self.run.profiles:
            for rs in (rs for rs in profile.runtimes if rs.reads(root.format)):
                for threads in profile.threads:
                    self.run.progress(
                        f"{self.task.name}: {profile.name}: {root.manifest['label']} on {rs.runtime}, "
                        f"{threads} thread(s)"
                    )
                    for rec in self._measure_on(root, rs, profile.name, threads, None, None):
                        records.append(replace(rec, target=profile.name))
        return records

    def _references(self) -> list[Measurement]:
        """Each float model measured on Keras: its accuracy and predicted labels score the artifacts."""
        records = []
        task, journal = self.task, self.run.journal
        for float_model in [self.root, *self.roots.values()]:
            if float_model.id in self.refs:
                continue
            self.run.progress(f"{task.name}: measuring the float model {float_model.manifest['label']} (keras)")
            key = task.name if float_model is self.root else f"{task.name}.{float_model.id}"
            reference, ref_pred = journal.measurement(record_id(float_model.id, "keras", "cpu", 1)), journal.labels(key)
            if reference is None or (reference.status == "ok" and ref_pred is None):
                m = measure_one(
                    float_model,
                    KERAS_REFERENCE,
                    1,
                    x=self.x_test,
                    harness=self.run.harness,
                    task=task.name,
                    note="float reference",
                    trust_model=self.run.trust,
                )
                ref_pred = _labels(m.outputs, self.data.n_classes)
                reference = _score(m.record, ref_pred, self.y_test, None, None)
                journal.save_labels(key, ref_pred)  # before the record: a record found means its labels are there
                journal.save_measurement(reference)
            records.append(reference)
            self.refs[float_model.id] = (reference.accuracy, ref_pred)
        return records

    def _pipelines(self) -> list[Measurement]:
        """Every profile's pipelines run on its float model (repaired where a budget asks), each
        artifact measured once per (runtime, device, threads, precision); a failed pipeline is a
        record with its reason."""
        task, run = self.task, self.run
        calibration = self.data.calibration(min(task.calibration_rows, len(self.data.x_train)), seed=run.suite.seed)
        records: list[Measurement] = []
        seen: set[tuple] = set()  # one record per (artifact, runtime, device, threads, precision)
        for profile in run.profiles:
            ctx = PassContext(
                target=profile.name,
                calibration=calibration,
                calibration_source=f"{self.data.name} train split",
                data=self.data,
                seed=run.suite.seed,
                trust_model=run.trust,
            )
            float_model = self.roots.get(profile.name, self.root)
            for pipeline in profile.pipelines:
                names = pipeline_names(pipeline)
                run.progress(f"{task.name}: {profile.name}: {names}")
                artifact, failure, repaired = self._pipeline(profile, pipeline, float_model, ctx)
                if artifact is None:  # recorded with the reason; the run goes on
                    records.append(_pipeline_failure(task.name, profile.name, names, *failure))
                    continue
                measured = self._measure_artifact(artifact, profile, float_model, seen)
                records += [replace(rec, repair=repaired) for rec in measured] if repaired else measured
        return records

    def _pipeline(self, profile, pipeline, float_model: Artifact, ctx: PassContext):
        """(the pipeline's file, (why not, status) when none, the repair loop's record or None)."""
        budget = pipeline_budget(profile, pipeline)
        if budget is None:
            done = run_pipeline(float_model, pipeline, self.artifacts_dir, ctx)
            return done.artifact, (done.error, done.status), None
        rows = LabelledRows(
            float_model.model_path, self.data.x_val, self.data.y_val, self.data.n_classes, self.run.trust
        )
        repairer = Repairer(
            self.artifacts_dir,
            ctx,
            evaluate=rows.scorer(budget.metric),
            latency=lambda artifact: quick_p50(artifact, profile, self.run.trust),
            rows=self.data.x_val[:100],
            progress=lambda what: self.run.progress(f"{self.task.name}: {profile.name}: {what}"),
        )
        result = repair(float_model, pipeline, budget, repairer)
        first = result.trials[0]
        artifact = result.chosen.artifact if result.chosen else None
        return artifact, (first.reason, first.status), result.to_dict()

    def _measure_artifact(self, artifact, profile, float_model, seen: set[tuple]) -> list[Measurement]:
        """An artifact on each runtime of the profile that reads it (profiles are checked at load:
        some runtime does), at each thread count; one already measured is not measured again."""
        records = []
        ref_acc, ref_pred = self.refs[float_model.id]
        for rs in [rs for rs in profile.runtimes if rs.reads(artifact.format)]:
            for threads in profile.threads:
                at = f"@{rs.precision}" if rs.precision else ""
                self.run.progress(
                    f"{self.task.name}: {profile.name}: {artifact.manifest['label']} "
                    f"on {rs.runtime}{at}/{rs.device}, {threads} thread(s)"
                )
                key = (artifact.id, rs.runtime, rs.device, threads, rs.precision)
                if key in seen:  # another pipeline ended in the same artifact: measured already
                    continue
                seen.add(key)
                records += self._measure_on(artifact, rs, profile.name, threads, ref_acc, ref_pred)
        return records

    def _profile_chosen(self, records: list[Measurement]) -> list[Measurement]:
        """Each target's chosen artifact measured once more with its per-op profile (``checks.ops``),
        on the runtime, device and threads it was chosen on; the profile joins its record."""
        cfg, run = self.run.suite.checks.ops, self.run
        if cfg is None:
            return records
        index = {rec.id: i for i, rec in enumerate(records)}
        targets = {p.name: p.to_dict() for p in run.profiles}
        for target, pick in pick_artifacts([r.to_json() for r in records], targets).items():
            rec = records[index[pick["record"]["id"]]]
            if rec.status != "ok" or rec.ops_runs is not None or pick["note"] != "chosen artifact":
                continue  # nothing measured, profiled already (a resumed run), or no choice to explain
            profile = next(p for p in run.profiles if p.name == target)
            rt = rec.runtime
            rs = _runtime_spec(profile, rec)
            if rs is None:  # no entry of the profile says how it ran: nothing to profile it with
                continue
            where = (rec.device or {}).get("name")
            place = next((p for p in places_for(target, run.places or []) if p and p.name == where), None)
            run.progress(f"{self.task.name}: {target}: per-op profile of {rec.artifact.get('label')} on {rs.runtime}")
            harness = replace(run.harness, ops_runs=cfg.runs)  # the run's own timing: ops_whole_ms is a real p50
            art = load_artifact(Path(rec.artifact["path"]).parent)
            (measured,) = measure_places(art, rs, rt["threads"], [place], harness=harness, task=self.task.name)
            profiled = replace(rec, **{name: getattr(measured.record, name) for name in OPS_FIELDS})
            run.journal.save_measurement(profiled)
            records[index[rec.id]] = profiled
        return records

    def _checks(self, records: list[Measurement]) -> tuple[list[Measurement], dict]:
        """The trust checks (journalled), each target's files against the float model they came
        from: the chosen architecture for a searched target, the task's model for the others."""
        task, run = self.task, self.run
        checks = run.journal.checks(task.name)
        if checks is None:
            groups: dict[str, tuple[Artifact, list[TargetProfile]]] = {}
            for profile in run.profiles:
                float_model = self.roots.get(profile.name, self.root)
                groups.setdefault(float_model.id, (float_model, []))[1].append(profile)
            as_json = [r.to_json() for r in records]
            for float_model, group in groups.values():
                part = run_checks(
                    self.data,
                    float_model,
                    as_json,
                    group,
                    run.suite.checks,
                    seed=run.suite.seed,
                    rows=task.test_rows,
                    progress=run.progress,
                )
                for entry in part["artifacts"].values():
                    entry["float"] = part["float"]
                if checks is None:  # the first float model's shared figures stay at the top, as before
                    checks = part
                else:
                    checks["artifacts"].update(part["artifacts"])
                    checks.setdefault("floats", {})[float_model.id] = {
                        k: v for k, v in part.items() if k != "artifacts"
                    }
            run.journal.save_checks(task.name, checks)
        return attach(records, checks), checks


def _runtime_spec(profile: TargetProfile, rec: Measurement):
    """The profile's runtime entry a record was measured by: its runtime, device and requested
    precision; on a device whose tool names itself (a phone's benchmark_model), the one entry of
    that device and precision that reads the file."""
    rt = rec.runtime
    same = [
        rs
        for rs in profile.runtimes
        if (rs.device, rs.precision) == (rt.get("device"), rt.get("precision_requested"))
        and rs.reads(rec.artifact.get("format", ""))
    ]
    named = [rs for rs in same if rs.runtime == rt.get("name")]
    return named[0] if named else (same[0] if len(same) == 1 else None)


def _labels(outputs: np.ndarray | None, n_classes: int) -> np.ndarray | None:
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
