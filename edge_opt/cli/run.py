"""``edge-opt run`` and ``edge-opt nas``: the long jobs, with their progress bars."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import typer

from edge_opt.cli.common import (
    app,
    devices_option,
    handled,
    make_console,
    native_log,
    native_logs_to,
    print_ship,
    print_table,
    trust_option,
    writable_dir,
)
from edge_opt.core.errors import EXIT_BAD_INPUT, BadInputError, EdgeOptError


@app.command()
@handled
def run(
    suite: str = typer.Argument(None, help="Suite YAML (default: benchmarks/default.yaml) or a suite name."),
    out: Path = typer.Option(
        Path("reports"), "--out", help="Folder for the run folder and history.sqlite.", callback=writable_dir
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the newest unfinished run of this suite in OUT (killed or interrupted), re-using "
        "its finished artifacts, measurements and trust checks; start a new run when there is none.",
    ),
    trust_model: bool = trust_option(),
    device_names: list[str] = typer.Option(
        None,
        "--device-name",
        help="Measure on this device of the inventory (repeat for more; default: the suite's devices:).",
    ),
    devices_dir: Path = devices_option(),
    engine: str = typer.Option(
        "local",
        "--engine",
        help="local: measure here, one device after another; ray: each device's measurements on its own "
        "Ray actor, pinned to the node that offers the resource device:<name>, and the architecture "
        "searches' trials trained as Ray tasks (pip install 'edge-opt[ray]').",
    ),
    address: str = typer.Option(
        None, "--address", help="The Ray cluster to join with --engine ray (default: start a local Ray)."
    ),
) -> None:
    """The main job: train, convert for every target profile, measure, report.

    Writes OUT/<run-id>/results.json (every measurement, with provenance), samples.npz
    (raw latency samples), report.md and report.json, artifacts/ (each with its
    manifest), and appends to OUT/history.sqlite. An interrupted run keeps what it
    finished in OUT/.partial-<run-id>/ for --resume.
    """
    spec, configs, total = _load_run(suite, engine, address, device_names, devices_dir)
    options = _run_options(suite, out, resume, configs, engine, address)
    extra = {"trust_model": trust_model, "devices": configs, "engine": engine, "address": address}
    try:
        result = _run_with_progress(spec, out, options, total, quiet, resume, extra)
    except KeyboardInterrupt:
        again = " ".join(a for a in ("edge-opt run", suite, f"--out {out}", "--resume") if a)
        print(f"edge-opt: what the run finished is kept; `{again}` continues it", file=sys.stderr)
        raise
    _print_run(result, spec.name, out, resume)


def _load_run(suite: str | None, engine: str, address: str | None, device_names: list[str] | None, devices_dir):
    """The suite, the devices to measure on and the run's number of steps; exit 2 for a bad combination."""
    from edge_opt.measure.devices import get_device
    from edge_opt.run.runner import plan_steps
    from edge_opt.run.suite import load_suite
    from edge_opt.targets import load_profile

    _check_engine(engine, address)
    spec = load_suite(suite)
    from edge_opt.budgets.grammar import check_profile_budgets

    profiles = [load_profile(name) for name in spec.targets]
    for profile in profiles:
        check_profile_budgets(profile)
    configs = [get_device(name, devices_dir) for name in (device_names or spec.devices)]
    if engine == "ray" and not configs and not any(getattr(t.model, "kind", None) == "nas" for t in spec.tasks):
        raise BadInputError(
            "--engine ray spreads devices' measurements and architecture searches' trials: this suite has "
            "neither (name devices with --device-name)"
        )
    return spec, configs, plan_steps(spec, profiles)


def _run_options(suite: str | None, out: Path, resume: bool, configs: list, engine: str, address: str | None) -> dict:
    """The command line as the run records it."""
    return {
        "suite": suite or "default",
        "out": str(out),
        "resume": resume,
        "devices": [c.name for c in configs],
        "engine": engine,
        "address": address,
    }


def _check_engine(engine: str, address: str | None) -> None:
    """--engine and --address of run and nas: exit 2 for a bad pair, or Ray asked for and missing."""
    if engine not in ("local", "ray"):
        raise BadInputError(f"--engine {engine}: choose local or ray")
    if address and engine != "ray":
        raise BadInputError("--address is the Ray cluster's: give it with --engine ray")
    if engine == "ray":
        from edge_opt.measure.ray_engine import require_ray

        require_ray()


@contextlib.contextmanager
def _progress_bar(console, total: int):
    """A transient bar of ``total`` steps; yields the callback that starts the next step, named by its text."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("starting", total=total)
        steps = {"n": 0}

        def progress(desc: str) -> None:
            if steps["n"]:
                bar.advance(task)
            steps["n"] += 1
            bar.update(task, description=desc)

        yield progress


def _run_with_progress(spec, out: Path, options: dict, total: int, quiet: bool, resume: bool, extra: dict):
    from edge_opt.run.runner import run_suite

    with native_logs_to(native_log(out)) as (term_out, _):
        console = make_console(file=term_out)
        if quiet:
            return run_suite(spec, out, options=options, resume=resume, **extra)
        with _progress_bar(console, total) as progress:
            return run_suite(spec, out, progress=progress, options=options, resume=resume, **extra)


def _print_run(result, suite_name: str, out: Path, resume: bool) -> None:
    """What a run did with earlier runs' leftovers (on stderr), then its summary table and where it is."""
    if result.resumed:
        reused = result.results["resumed"]["reused"]
        print(
            f"edge-opt: resumed {out / result.resumed}: re-used {reused['measurements']} measurement(s) "
            f"and {reused['checks']} task(s) of trust checks",
            file=sys.stderr,
        )
    elif resume:
        print(f"edge-opt: no unfinished run of suite '{suite_name}' in {out}; ran it anew", file=sys.stderr)
    for name in result.removed:
        print(f"edge-opt: removed {out / name}, left by a run that did not finish", file=sys.stderr)
    console = make_console()
    print_table(console, result.results)
    print_ship(console, result.results, result.run_dir)
    console.print(f"\nRun folder: {result.run_dir}  ({result.results['duration_s']} s)")
    console.print(f"Report: {result.run_dir / 'report.html'} (and report.md)")


@app.command()
@handled
def nas(
    suite_or_space: str = typer.Argument(..., help="A suite (its tasks whose model is {kind: nas}) or a space file."),
    target: str = typer.Option(None, "--target", help="Search for this target profile only."),
    trials: int = typer.Option(None, "--trials", min=1, max=1000, help="Trials per search (default: the nas block's)."),
    oracle: str = typer.Option(None, "--oracle", help="random, bayesian or hyperband (default: the nas block's)."),
    parallel: int = typer.Option(
        None,
        "--parallel",
        min=1,
        max=64,
        help="Trials trained at once, each in a process of its own (default: the nas block's parallel); "
        "measured one at a time.",
    ),
    engine: str = typer.Option(
        "local",
        "--engine",
        help="local: trials train on this machine; ray: as Ray tasks (pip install 'edge-opt[ray]').",
    ),
    address: str = typer.Option(
        None, "--address", help="The Ray cluster to join with --engine ray (default: start a local Ray)."
    ),
    out: Path = typer.Option(
        Path("reports"), "--out", help="Folder for nas-<name>/ (the search state and nas.json).", callback=writable_dir
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Hardware-aware architecture search: each trial trained briefly, deployed and measured on the target.

    Writes OUT/nas-<name>/nas.json (every trial, the Pareto fronts, the efficacy figures).
    The search state lives there too: the same command, killed and run again, continues
    after the last finished trial.
    """
    spec, profiles = _load_search(suite_or_space, target, trials, oracle, parallel, engine, address)
    new = not (out / f"nas-{spec.name}").exists()
    folder = _search_folder(spec, out)
    total = sum(
        (2 + t.model.trials * (2 if t.model.compare_random else 1)) * len(spec.searched_profiles(t, profiles))
        for t in spec.tasks
    )
    try:
        with native_logs_to(native_log(out)) as (term_out, _):
            console = make_console(file=term_out)
            searches = _nas_with_progress(spec, profiles, folder, total, quiet, console, engine, address)
    except EdgeOptError as exc:
        if new and exc.exit_code == EXIT_BAD_INPUT:  # refused (a space whose corner cannot build): no leftover
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
        raise
    from edge_opt.core.fileio import write_json_atomic
    from edge_opt.run.nas_task import nas_json

    write_json_atomic(folder / "nas.json", nas_json(searches))
    from edge_opt.core.fileio import write_text_atomic
    from edge_opt.report.html import render_search_html

    write_text_atomic(folder / "report.html", render_search_html(folder, spec.name))
    _print_searches(searches, folder)


def _load_search(suite_or_space: str, target, trials, oracle, parallel, engine: str, address: str | None):
    """The search and its target profiles; exit 2 for a bad oracle or engine."""
    from edge_opt.core.errors import ConfigError

    if oracle is not None and oracle not in ("random", "bayesian", "hyperband"):
        raise ConfigError(f"--oracle {oracle!r}: choose random, bayesian or hyperband")
    _check_engine(engine, address)
    from edge_opt.run.nas_task import load_search

    spec = load_search(suite_or_space, target=target, trials=trials, oracle=oracle, parallel=parallel)
    from edge_opt.budgets.grammar import check_profile_budgets
    from edge_opt.targets import load_profile

    profiles = [load_profile(name) for name in spec.targets]
    for profile in profiles:
        check_profile_budgets(profile)
    return spec, profiles


def _search_folder(spec, out: Path) -> Path:
    """OUT/nas-<name>/ with the search's plan.json; exit 2 when it holds another search."""
    import json

    from edge_opt.core.errors import ConfigError
    from edge_opt.core.fileio import write_json_atomic

    folder = out / f"nas-{spec.name}"
    plan = spec.model_dump(mode="json")
    plan_file = folder / "plan.json"
    if plan_file.is_file() and json.loads(plan_file.read_text(encoding="utf-8")) != plan:
        raise ConfigError(
            f"{folder}: holds a search of another space or settings; remove it or choose another --out to start anew"
        )
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(plan_file, plan)
    return folder


def _nas_with_progress(
    spec, profiles, folder: Path, total: int, quiet: bool, console, engine: str = "local", address: str | None = None
) -> dict:
    from edge_opt.measure.harness import HarnessOptions

    harness = HarnessOptions(**spec.harness.model_dump())
    ray_engine = None
    if engine == "ray":
        from edge_opt.measure.ray_engine import RayEngine

        ray_engine = RayEngine([], address)
    try:
        if quiet:
            return _search_tasks(spec, profiles, folder, harness, ray_engine, lambda _: None)
        with _progress_bar(console, total) as progress:
            return _search_tasks(spec, profiles, folder, harness, ray_engine, progress)
    finally:
        if ray_engine is not None:
            ray_engine.close()


def _search_tasks(spec, profiles, folder: Path, harness, ray_engine, progress) -> dict:
    """Every task's search, per target: {task: {target: result}}."""
    from edge_opt.datasets import load_dataset
    from edge_opt.nas.executors import make_executor
    from edge_opt.run.nas_task import search_targets

    found = {}
    for task in spec.tasks:
        data = load_dataset(task.dataset, seed=spec.seed, train_rows=task.train_rows)
        found[task.name] = search_targets(
            task.name,
            task.model,
            data,
            spec.searched_profiles(task, profiles),
            folder / task.name,
            harness,
            seed=spec.seed,
            calibration_rows=task.calibration_rows,
            progress=progress,
            executor=make_executor(task.model.parallel, "ray") if ray_engine is not None else None,
        )
    return found


def _print_searches(searches: dict, folder: Path) -> None:
    """Each search's trials, the accuracy-latency front marked, its efficacy figures, and where nas.json is."""
    from rich.table import Table

    from edge_opt.run.nas_task import efficacy_lines, summary_rows

    console = make_console()
    for task, by_target in searches.items():
        for result in by_target.values():
            table = Table(title=f"edge-opt nas · {task} · {result.target} (* on the accuracy-latency front)")
            for col in ("trial", "architecture", "status", "accuracy", "p50", "p90", "size", "score", ""):
                table.add_column(col, justify="right" if col in ("accuracy", "p50", "p90", "size", "score") else "left")
            for cells in summary_rows(result):
                table.add_row(*cells)
            console.print(table)
            for line in efficacy_lines(result):
                console.print(line)
    console.print(f"\nnas.json: {folder / 'nas.json'}\nReport: {folder / 'report.html'}")
