"""The ``edge-opt`` command line. Heavy modules are imported inside each command.

Exit codes: 0 ok, 1 gate failed, 2 bad input or config, 3 internal error.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from pathlib import Path

import typer

from edge_opt.core.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, BadInputError, EdgeOptError, first_line
from edge_opt.core.units import fmt_bytes, fmt_mib, fmt_ms
from edge_opt.nas.executors import make_executor

app = typer.Typer(
    name="edge-opt",
    help="Optimize ML models for edge targets and prove, with measurements, that each artifact is fit to ship.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that clean-up runs as for Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise _Terminated()


def _handled(fn):
    """EdgeOptError → one line on stderr and its exit code; anything else → exit 3. No traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EdgeOptError as exc:
            print(f"edge-opt: error: {exc}", file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: clean-up has run on the way here
            why = "terminated" if isinstance(exc, _Terminated) else "interrupted"
            print(f"edge-opt: {why}; nothing half-written was left", file=sys.stderr)
            raise typer.Exit(143 if isinstance(exc, _Terminated) else 130) from None
        except Exception as exc:  # noqa: BLE001 - last resort: one line, exit 3
            if os.environ.get("EDGE_OPT_DEBUG"):
                raise
            print(
                f"edge-opt: internal error: {type(exc).__name__}: {first_line(exc)} "
                "(set EDGE_OPT_DEBUG=1 for the traceback)",
                file=sys.stderr,
            )
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper


def _trust_option():
    """``--trust-model``: the command line's decision, the only one, to let a model's code run."""
    return typer.Option(
        False, "--trust-model", help="Let Keras Lambda code in the model files run (only for files you trust)."
    )


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _writable_dir(value: Path | None) -> Path | None:
    """``--out``: a folder (or a path where one can be made) this user may write."""
    if value is None:
        return value
    if value.exists() and not value.is_dir():
        raise typer.BadParameter(f"{value} exists and is not a folder", param_hint="'--out'")
    base = _nearest_existing(value)
    if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
        raise typer.BadParameter(f"{base} is not writable, so {value} cannot hold results", param_hint="'--out'")
    return value


def _writable_file_for(option: str):
    """A check for a file option (``--json PATH``): a file path, not a folder, whose folder this user may write."""

    def check(value: Path | None) -> Path | None:
        if value is None:
            return value
        if value.is_dir():
            raise typer.BadParameter(f"{value} is a folder; give a file path", param_hint=f"'{option}'")
        base = _nearest_existing(value.parent)
        if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
            raise typer.BadParameter(f"{base} is not writable, so {value} cannot be written", param_hint=f"'{option}'")
        return value

    return check


_writable_file = _writable_file_for("--json")


def _console(stderr: bool = False, file=None):
    from rich.console import Console

    stream = file or (sys.stderr if stderr else sys.stdout)
    # Logs and CI get the full table instead of an 80-column squeeze.
    width = None if stream.isatty() else 200
    return Console(file=stream, highlight=False, width=width)


def _devices_option():
    return typer.Option(
        None, "--devices", help="The device inventory folder (default: devices/ of the checkout or the package)."
    )


@app.command()
@_handled
def run(
    suite: str = typer.Argument(None, help="Suite YAML (default: benchmarks/default.yaml) or a suite name."),
    out: Path = typer.Option(
        Path("reports"), "--out", help="Folder for the run folder and history.sqlite.", callback=_writable_dir
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the newest unfinished run of this suite in OUT (killed or interrupted), re-using "
        "its finished artifacts, measurements and trust checks; start a new run when there is none.",
    ),
    trust_model: bool = _trust_option(),
    device_names: list[str] = typer.Option(
        None,
        "--device-name",
        help="Measure on this device of the inventory (repeat for more; default: the suite's devices:).",
    ),
    devices_dir: Path = _devices_option(),
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
    from edge_opt.measure.devices import get_device
    from edge_opt.run.runner import plan_steps
    from edge_opt.run.suite import load_suite
    from edge_opt.targets import load_profile

    _check_engine(engine, address)
    spec = load_suite(suite)
    profiles = [load_profile(name) for name in spec.targets]
    configs = [get_device(name, devices_dir) for name in (device_names or spec.devices)]
    if engine == "ray" and not configs and not any(getattr(t.model, "kind", None) == "nas" for t in spec.tasks):
        raise BadInputError(
            "--engine ray spreads devices' measurements and architecture searches' trials: this suite has "
            "neither (name devices with --device-name)"
        )
    total = plan_steps(spec, profiles)
    options = {
        "suite": suite or "default",
        "out": str(out),
        "resume": resume,
        "devices": [c.name for c in configs],
        "engine": engine,
        "address": address,
    }
    extra = {"trust_model": trust_model, "devices": configs, "engine": engine, "address": address}
    try:
        result = _run_with_progress(spec, out, options, total, quiet, resume, extra)
    except KeyboardInterrupt:
        again = " ".join(a for a in ("edge-opt run", suite, f"--out {out}", "--resume") if a)
        print(f"edge-opt: what the run finished is kept; `{again}` continues it", file=sys.stderr)
        raise
    if result.resumed:
        reused = result.results["resumed"]["reused"]
        print(
            f"edge-opt: resumed {out / result.resumed}: re-used {reused['measurements']} measurement(s) "
            f"and {reused['checks']} task(s) of trust checks",
            file=sys.stderr,
        )
    elif resume:
        print(f"edge-opt: no unfinished run of suite '{spec.name}' in {out}; ran it anew", file=sys.stderr)
    for name in result.removed:
        print(f"edge-opt: removed {out / name}, left by a run that did not finish", file=sys.stderr)
    console = _console()
    _print_table(console, result.results)
    console.print(f"\nRun folder: {result.run_dir}  ({result.results['duration_s']} s)")
    console.print(f"Report: {result.run_dir / 'report.md'}")


def _run_with_progress(spec, out: Path, options: dict, total: int, quiet: bool, resume: bool, extra: dict):
    from edge_opt.run.runner import run_suite

    with _native_logs_to(_native_log(out)) as (term_out, _):
        console = _console(file=term_out)
        if quiet:
            return run_suite(spec, out, options=options, resume=resume, **extra)
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

            return run_suite(spec, out, progress=progress, options=options, resume=resume, **extra)


def _open_device(name: str, folder: Path | None):
    """The inventory's device ``name``, reachable (an unreachable one is exit 2 with the reason)."""
    from edge_opt.measure.devices import Device, get_device

    device = Device(get_device(name, folder))
    reason = device.unreachable()
    if reason:
        raise BadInputError(f"device '{name}' is unreachable: {reason}")
    return device


def _check_engine(engine: str, address: str | None) -> None:
    """--engine and --address of run and nas: exit 2 for a bad pair, or Ray asked for and missing."""
    if engine not in ("local", "ray"):
        raise BadInputError(f"--engine {engine}: choose local or ray")
    if address and engine != "ray":
        raise BadInputError("--address is the Ray cluster's: give it with --engine ray")
    if engine == "ray":
        from edge_opt.measure.ray_engine import require_ray

        require_ray()


@app.command()
@_handled
def nas(
    suite_or_space: str = typer.Argument(..., help="A suite (its tasks whose model is {kind: nas}) or a space file."),
    target: str = typer.Option(None, "--target", help="Search for this target profile only."),
    trials: int = typer.Option(None, "--trials", min=1, help="Trials per search (default: the nas block's)."),
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
        Path("reports"), "--out", help="Folder for nas-<name>/ (the search state and nas.json).", callback=_writable_dir
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Hardware-aware architecture search: each trial trained briefly, deployed and measured on the target.

    Writes OUT/nas-<name>/nas.json (every trial, the Pareto fronts, the efficacy figures).
    The search state lives there too: the same command, killed and run again, continues
    after the last finished trial.
    """
    import json

    from edge_opt.core.errors import ConfigError

    if oracle is not None and oracle not in ("random", "bayesian", "hyperband"):
        raise ConfigError(f"--oracle {oracle!r}: choose random, bayesian or hyperband")
    _check_engine(engine, address)
    from edge_opt.run.nas_task import load_search

    spec = load_search(suite_or_space, target=target, trials=trials, oracle=oracle, parallel=parallel)
    from edge_opt.core.fileio import write_json_atomic
    from edge_opt.targets import load_profile

    profiles = [load_profile(name) for name in spec.targets]
    folder = out / f"nas-{spec.name}"
    plan = spec.model_dump(mode="json")
    plan_file = folder / "plan.json"
    if plan_file.is_file() and json.loads(plan_file.read_text(encoding="utf-8")) != plan:
        raise ConfigError(
            f"{folder}: holds a search of another space or settings; remove it or choose another --out to start anew"
        )
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(plan_file, plan)
    total = sum(
        (2 + t.model.trials * (2 if t.model.compare_random else 1))
        * sum(1 for p in profiles if t.model.targets is None or p.name in t.model.targets)
        for t in spec.tasks
    )
    with _native_logs_to(_native_log(out)) as (term_out, _):
        searches = _nas_with_progress(spec, profiles, folder, total, quiet, _console(file=term_out), engine, address)
    from edge_opt.run.nas_task import efficacy_lines, nas_json, summary_rows

    write_json_atomic(folder / "nas.json", nas_json(searches))
    from rich.table import Table

    console = _console()
    for task, by_target in searches.items():
        for result in by_target.values():
            table = Table(title=f"edge-opt nas · {task} · {result.target} (* on the accuracy-latency front)")
            for col in ("trial", "architecture", "status", "accuracy", "p50 ms", "p90 ms", "size B", "score", ""):
                table.add_column(col, justify="right" if col in ("accuracy", "p50 ms", "p90 ms", "score") else "left")
            for cells in summary_rows(result):
                table.add_row(*cells)
            console.print(table)
            for line in efficacy_lines(result):
                console.print(line)
    console.print(f"\nnas.json: {folder / 'nas.json'}")


def _nas_with_progress(
    spec, profiles, folder: Path, total: int, quiet: bool, console, engine: str = "local", address: str | None = None
) -> dict:
    from edge_opt.datasets import load_dataset
    from edge_opt.measure.harness import HarnessOptions
    from edge_opt.run.nas_task import search_targets

    harness = HarnessOptions(**spec.harness.model_dump())
    ray_engine = None
    if engine == "ray":
        from edge_opt.measure.ray_engine import RayEngine

        ray_engine = RayEngine([], address)

    def each(progress) -> dict:
        try:
            return _search_tasks(progress)
        finally:
            if ray_engine is not None:
                ray_engine.close()

    def _search_tasks(progress) -> dict:
        found = {}
        for task in spec.tasks:
            data = load_dataset(task.dataset, seed=spec.seed, train_rows=task.train_rows)
            found[task.name] = search_targets(
                task.name,
                task.model,
                data,
                profiles,
                folder / task.name,
                harness,
                seed=spec.seed,
                calibration_rows=task.calibration_rows,
                progress=progress,
                executor=make_executor(task.model.parallel, "ray") if ray_engine is not None else None,
            )
        return found

    if quiet:
        return each(lambda _: None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task_id = bar.add_task("starting", total=total)
        steps = {"n": 0}

        def progress(desc: str) -> None:
            if steps["n"]:
                bar.advance(task_id)
            steps["n"] += 1
            bar.update(task_id, description=desc)

        return each(progress)


@app.command()
@_handled
def bench(
    model: Path = typer.Argument(
        ..., help="A .tflite, .onnx or OpenVINO .xml file (any origin), a Keras file, or an artifact folder."
    ),
    runtime: str = typer.Option(
        None,
        "--runtime",
        "-r",
        help="litert | litert-compiled | onnxruntime | openvino | keras (default: by format; "
        "openvino also reads .onnx and .tflite).",
    ),
    threads: int = typer.Option(1, "--threads", "-t", min=1, help="Threads for the runtime."),
    shape: list[str] = typer.Option(
        None, "--shape", help="Input shape, NAME:1,3,224,224 or 1,3,224,224; repeat per input."
    ),
    inputs: Path = typer.Option(
        None, "--input", help="Real inputs: an .npz with one array per model input, by input name (shapes follow)."
    ),
    input_range: list[str] = typer.Option(
        None, "--input-range", help="Random values of an input within LO..HI: NAME:LO,HI (or LO,HI); repeat."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu | gpu | edgetpu."),
    runs: int = typer.Option(50, "--runs", min=1, help="Minimum timed runs."),
    min_time: float = typer.Option(1.0, "--min-time", min=0, help="Minimum seconds of timed runs."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Warm-up runs before timing."),
    max_time: float = typer.Option(
        60.0, "--max-time", min=0.001, help="Stop warm-up and timing after this many seconds each."
    ),
    json_out: Path = typer.Option(None, "--json", help="Write the measurement record here.", callback=_writable_file),
    trust_model: bool = _trust_option(),
    device_name: str = typer.Option(
        None, "--device-name", help="Measure on this device of the inventory (devices/*.yaml; see `edge-opt devices`)."
    ),
    devices_dir: Path = _devices_option(),
) -> None:
    """Benchmark one model file in a fresh process, on real inputs (--input) or random ones of
    each input's dtype. An edge-opt artifact (its folder, or a file with its manifest.json
    beside it) keeps its id, precision and lineage in the record."""
    from edge_opt.core.arrays import load_feeds
    from edge_opt.core.fileio import write_json_atomic
    from edge_opt.core.provenance import provenance
    from edge_opt.measure.harness import HarnessOptions, measure
    from edge_opt.measure.records import build_record
    from edge_opt.runtimes import DEFAULT_RUNTIME, detect_format, formats_of, runtime_names

    artifact = _bench_subject(model)
    model = Path(artifact["path"])
    fmt = detect_format(model)
    runtime = runtime or DEFAULT_RUNTIME[fmt]
    if fmt not in formats_of(runtime):
        readers = ", ".join(n for n in runtime_names() if fmt in formats_of(n))
        raise BadInputError(f"runtime '{runtime}' does not read {fmt} files ({model}); runtimes that do: {readers}")
    shapes = parse_shapes(shape or [])
    feeds = load_feeds(inputs) if inputs else None
    ranges = parse_ranges(input_range or [])
    options = HarnessOptions(min_runs=runs, min_time_s=min_time, warmup_runs=warmup, max_time_s=max_time)
    target = _open_device(device_name, devices_dir) if device_name else None
    where = f" on device {device_name}" if device_name else ""
    with _console(stderr=True).status(f"measuring {model.name} on {runtime}, {threads} thread(s){where}"):
        result = (target.measure if target else measure)(
            model,
            runtime,
            threads=threads,
            device=device,
            shapes=shapes,
            # An edge-opt artifact's only dynamic dimension is its batch: measured at 1, as ``run`` does.
            default_batch=1 if artifact["pass"] is not None else None,
            file_precision=None if artifact["precision"] == "unknown" else artifact["precision"],
            options=options,
            trust_model=trust_model,
            feeds=feeds,
            input_ranges=ranges,
        )
    if result.status == "failed" and (result.exit_code == 2 or result.raw.get("signal")):
        # The user's file, inputs or option is at fault, or the runtime died on it.
        raise BadInputError(
            result.error
            if not result.raw.get("signal")
            else f"{model}: {runtime} {result.error} while loading or running it (corrupt model?)"
        )
    size = artifact.pop("size")
    record = build_record(
        artifact=artifact, runtime=runtime, device=device, threads=threads, size_bytes=size, result=result
    ).to_json()
    record["provenance"] = provenance({"command": "bench", "harness": options.to_dict()})
    if target is not None:
        record["provenance"]["device"] = {**target.describe(), "fingerprint": target._fingerprint}
        target.close()
    for warning in record.get("warnings") or []:
        print(f"edge-opt: warning: {warning}", file=sys.stderr)
    console = _console()
    _print_table(console, {"measurements": [record]})
    summary = record.get("latency_summary_ms")
    if result.status == "ok" and summary:  # a device's own tool (adb: benchmark_model) printed only this
        console.print(
            f"{record['runtime']['name']}: mean {fmt_ms(summary['mean'])}, std {fmt_ms(summary.get('std'))}, "
            f"n={summary['n']} (its summary; per-run samples {summary['samples']}), "
            f"load {fmt_ms(record['load_ms'])}, first inference {fmt_ms(record['cold_start_ms'])}"
        )
    elif result.status == "ok":
        lat = record["latency_ms"]
        console.print(
            f"p50 {fmt_ms(lat['p50'])} (95% CI {fmt_ms(lat['median_ci'][0])}–{fmt_ms(lat['median_ci'][1])}), "
            f"p99 {fmt_ms(lat['p99'])}, n={lat['n']}, outliers {lat['outliers']}, "
            f"cold {fmt_ms(record['cold_start_ms'])}, peak USS {fmt_mib(record['memory_mb']['peak_uss'])}"
        )
    if json_out:
        write_json_atomic(json_out, record)
    if result.status == "failed":
        raise EdgeOptError(f"measurement failed: {result.error}")
    if result.status == "skipped":
        raise BadInputError(f"not measured: {result.error}")


@app.command()
@_handled
def devices(
    devices_dir: Path = _devices_option(),
    json_out: Path = typer.Option(
        None, "--json", help="Write the devices and fingerprints here.", callback=_writable_file
    ),
) -> None:
    """List the devices of the inventory, whether each is reachable now, and its fingerprint
    (CPU, cores, governor and frequency, memory, OS, runtime versions found)."""
    from edge_opt.core.fileio import write_json_atomic
    from edge_opt.measure.devices import Device, load_inventory

    console = _console()
    rows = []
    for cfg in load_inventory(devices_dir).values():
        device = Device(cfg)
        reason = device.unreachable()
        fp = device._fingerprint or {}
        device.close()
        rows.append(
            {"device": cfg.model_dump(mode="json"), "reachable": reason is None, "reason": reason, "fingerprint": fp}
        )
        where = cfg.address or "this machine"
        console.print(f"{cfg.name:12} {cfg.transport:5} {where:20} serves {', '.join(cfg.targets) or '-'}")
        if reason:
            console.print(f"    unreachable: {reason}")
            continue
        conds = fp.get("conditions") or {}
        govs = sorted({c["governor"] for c in conds.values() if c.get("governor")})
        freqs = sorted({c.get("freq_mhz") for c in conds.values() if c.get("freq_mhz")})
        found = ", ".join(f"{k} {v}" for k, v in (fp.get("versions") or {}).items() if v) or "no runtime"
        console.print(
            f"    {fp.get('cpu')} · {fp.get('cores')} cores · governor {'/'.join(govs) or '?'}"
            f" · {'/'.join(map(str, freqs)) or '?'} MHz · {fp.get('memory_gb')} GB · {fp.get('os')} ({fp.get('arch')})"
        )
        console.print(f"    Python {fp.get('python')}: {found}")
    if json_out:
        write_json_atomic(json_out, {"devices": rows})


def _bench_subject(model: Path) -> dict:
    """The record's artifact fields for a file to bench: an edge-opt artifact's own (its folder,
    or a file with its manifest beside it), else the file's hash as its id, precision unknown."""
    from edge_opt.core.artifacts import MANIFEST, gzip_size, load_artifact, sha256_file
    from edge_opt.runtimes import detect_format

    folder = model if model.is_dir() and (model / MANIFEST).is_file() else model.parent
    if (folder / MANIFEST).is_file() and (model.is_dir() or model.is_file()):
        art = load_artifact(folder)
        if model.is_dir() or art.model_path.resolve() == model.resolve():
            return {**art.summary(), "path": str(art.model_path.resolve()), "size": art.manifest["size_bytes"]}
    fmt = detect_format(model)  # one clear error for a missing, empty or foreign file
    files = [model] + ([model.with_suffix(".bin")] if fmt == "openvino" else [])
    digest = sha256_file(model) if model.is_file() else sha256_file(model / "saved_model.pb")
    return {
        "id": digest[:16],
        "path": str(model.resolve()),
        "sha256": digest,
        "format": fmt,
        "precision": "unknown",
        "target": None,
        "pass": None,
        "parent": None,
        "label": model.name,
        "size": {"raw": sum(f.stat().st_size for f in files), "gzip": gzip_size(files)} if model.is_file() else None,
    }


def parse_ranges(specs: list[str]) -> dict[str, tuple[float, float]]:
    """``NAME:LO,HI`` or ``LO,HI`` (for the only input) → {name: (lo, hi)}."""
    import math

    ranges: dict[str, tuple[float, float]] = {}
    for spec in specs:
        name, _, bounds = spec.rpartition(":")
        try:
            lo, hi = (float(v) for v in bounds.split(","))
        except ValueError:
            raise BadInputError(f"--input-range {spec!r}: expected NAME:LO,HI, e.g. sr:16000,16000") from None
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
            raise BadInputError(f"--input-range {spec!r}: needs finite LO <= HI")
        ranges[name] = (lo, hi)
    return ranges


@app.command()
@_handled
def gate(
    run_dir: Path = typer.Argument(..., help="A run folder (holding results.json)."),
    budgets: Path = typer.Option(None, "--budgets", "-b", help="Budgets YAML; default: each target profile's budgets."),
    allow_skipped: bool = typer.Option(
        False, "--allow-skipped", help="Skipped measurements (no device here) do not fail."
    ),
    every: bool = typer.Option(False, "--every", help="Every measurement must meet the budgets, not just the chosen."),
    json_out: Path = typer.Option(None, "--json", help="Write the verdicts as JSON here.", callback=_writable_file),
    junit_out: Path = typer.Option(
        None, "--junit", help="Write JUnit XML here (a test case per check).", callback=_writable_file_for("--junit")
    ),
    markdown_out: Path = typer.Option(
        None, "--markdown", help="Write a Markdown job summary here (CI).", callback=_writable_file_for("--markdown")
    ),
) -> None:
    """Check a run against budgets; exit 0 when every check passes, 1 when one fails.

    Per target, the chosen candidate (the fastest measured one that meets every budget) is
    checked and the others are listed with the reason they lost. With --every, each
    measurement of the target must pass.
    """
    from rich.table import Table

    from edge_opt.budgets.grammar import load_budgets
    from edge_opt.core.fileio import write_json_atomic, write_text_atomic
    from edge_opt.gate import evaluate
    from edge_opt.store import load_run

    results = load_run(run_dir)
    checks = load_budgets(budgets) if budgets else None
    report = evaluate(results, checks, allow_skipped=allow_skipped, every=every, source=budgets)
    table = Table(title=f"gate · {results.get('run_id', run_dir)}")
    for col in ("target", "measurement", "check", "verdict", "reason"):
        table.add_column(col)
    style = {"PASS": "green", "FAIL": "bold red", "SKIP": "yellow"}
    for r in report.rows:
        table.add_row(r.target, r.record, r.check, f"[{style[r.verdict]}]{r.verdict}[/]", r.message)
    console = _console()
    console.print(table)
    for target, selection in report.selections.items():
        sel = selection.to_dict()
        chosen = sel["chosen"]
        shown = f"{chosen['label']}{selection.tie_note()}" if chosen else "none (no candidate fits)"
        console.print(f"[bold]{target}[/]: chosen {shown}")
        for rec in sel["rejected"]:
            console.print(f"  rejected {rec['label']}: {rec['reason']}")
    if json_out:
        write_json_atomic(json_out, report.to_dict())
    run_id = str(results.get("run_id", run_dir))
    if junit_out:
        from edge_opt.gate import to_junit

        write_text_atomic(junit_out, to_junit(report, run_id))
    if markdown_out:
        from edge_opt.gate import to_markdown

        write_text_atomic(markdown_out, to_markdown(report, run_id))
    console.print(f"[green]{report.verdict}[/]" if report.passed else f"[bold red]{report.verdict}[/]")
    if not report.passed:
        raise typer.Exit(1)


@app.command()
@_handled
def report(
    run_dirs: list[Path] = typer.Argument(..., help="One or more run folders (each holding results.json)."),
    html_out: Path = typer.Option(
        None,
        "--html",
        help="Write one self-contained HTML page here: the runs side by side, charts inline, no script, no link out.",
        callback=_writable_file_for("--html"),
    ),
) -> None:
    """Print the comparison table of finished runs (report.md holds the same); --html draws them on one page."""
    from edge_opt.store import load_run

    loaded = [(run_dir, load_run(run_dir)) for run_dir in run_dirs]  # every folder checked before any output
    if html_out:
        from edge_opt.report.html import write_html
        from edge_opt.store import load_view

        write_html(html_out, [load_view(run_dir, results) for run_dir, results in loaded])
        print(f"Report: {html_out}")
        return
    for _, results in loaded:
        _print_table(_console(), results)


@app.command()
@_handled
def compare(
    run_a: Path = typer.Argument(..., help="The baseline run folder (e.g. last release, or device A)."),
    run_b: Path = typer.Argument(..., help="The run to compare with it."),
    fail_on: str = typer.Option(None, "--fail-on", help="Exit 1 when a median is this much slower (e.g. 10%)."),
    json_out: Path = typer.Option(None, "--json", help="Write the comparison as JSON here.", callback=_writable_file),
) -> None:
    """Compare the same measurements across two runs or devices: median change, with a
    Mann-Whitney U test on the raw samples (p < 0.01) before a change is called one."""
    from rich.table import Table

    from edge_opt.core.fileio import write_json_atomic
    from edge_opt.run.compare import compare_runs, parse_threshold

    threshold = parse_threshold(fail_on) if fail_on else 0.05
    result = compare_runs(run_a, run_b, threshold=threshold)
    table = Table(title=f"{result['a']} ({result['machine_a']}) → {result['b']} ({result['machine_b']})")
    for col in ("measurement", "p50 A", "p50 B", "change", "p-value", "verdict", "Δ accuracy", "Δ size B"):
        table.add_column(col)
    style = {"slower": "bold red", "faster": "green", "same": "dim", "no samples": "yellow"}
    for r in result["rows"]:
        acc = "–" if r["accuracy_delta"] is None else f"{r['accuracy_delta'] * 100:+.2f} pt"
        p_value = "–" if r["p_value"] is None else f"{r['p_value']:.2g}"
        table.add_row(
            r["label"],
            fmt_ms(r["p50_a"]),
            fmt_ms(r["p50_b"]),
            f"{r['change']:+.1%}",
            p_value,
            f"[{style[r['verdict']]}]{r['verdict']}[/]",
            acc,
            f"{r['size_delta']:+d}",
        )
    console = _console()
    console.print(table)
    if json_out:
        write_json_atomic(json_out, result)
    if fail_on and result["regressions"]:
        console.print(f"[bold red]{len(result['regressions'])} measurement(s) slower by more than {threshold:.0%}[/]")
        raise typer.Exit(1)


@app.command()
@_handled
def optimize(
    model: Path = typer.Argument(..., help="Your Keras model: .keras, .h5 or a SavedModel folder."),
    target: str = typer.Option(..., "--target", help="Target profile name (cpu, gpu, edgetpu, mobile) or YAML."),
    out: Path = typer.Option(..., "--out", help="Folder for the artifacts and summary.json.", callback=_writable_dir),
    calibration: Path = typer.Option(None, "--calibration", help="Calibration rows: .npy, .npz (x) or .csv."),
    random_calibration: bool = typer.Option(False, "--random-calibration", help="Calibrate on random inputs."),
    train: Path = typer.Option(None, "--train", help="Labelled rows (.npz x+y, .csv with a label column)."),
    eval_rows: Path = typer.Option(
        None, "--eval", help="Rows to measure fidelity on (default: held out of --train or --calibration)."
    ),
    no_latency: bool = typer.Option(False, "--no-latency", help="Skip the quick latency measurement of each file."),
    trust_model: bool = _trust_option(),
) -> None:
    """Run a target's pipelines on your own Keras model; artifacts + summary in OUT.

    Passes that need labels (QAT, pruning, distillation) need --train, or are skipped
    with that reason; int8 needs --calibration (or, knowingly, --random-calibration).
    Each artifact's fidelity to your model is measured on rows it was not made from
    (--eval, or rows held out of --train / --calibration): top-1 agreement for classifiers,
    output error and correlation for any model; below the target's fidelity budgets (or
    agreement 0.95 / correlation 0.95) its status is low-fidelity. Each file's latency on
    the target's first runtime is shown next to your model's.
    """
    from edge_opt.run.optimize import optimize as run_optimize

    with (
        _native_logs_to(_native_log(out)) as (_, term_err),
        _console(file=term_err).status("optimizing") as status,
    ):
        summary = run_optimize(
            model,
            target,
            out,
            calibration=calibration,
            random_calibration=random_calibration,
            train=train,
            eval_rows=eval_rows,
            trust_model=trust_model,
            latency=not no_latency,
            progress=lambda d: status.update(d),
        )
    from rich.table import Table

    base = summary.get("input_latency") or {}
    table = Table(title=f"edge-opt optimize · {summary['target']} · calibration: {summary['calibration']}")
    columns = ("pipeline", "artifact", "precision", "size", "gzip", "p50", "speed-up", "agreement", "corr")
    for col in (*columns, "status"):
        table.add_column(col)
    size = summary["input_size_bytes"]
    table.add_row("(your model)", "input", "fp32", fmt_bytes(size["raw"]), fmt_bytes(size["gzip"]), _p50(base), "1×")
    for row in summary["artifacts"]:
        size, fid, lat = row.get("size_bytes") or {}, row.get("fidelity") or {}, row.get("latency") or {}
        agree, corr = row.get("agreement"), fid.get("correlation")
        ratio = base["p50_ms"] / lat["p50_ms"] if lat.get("p50_ms") and base.get("p50_ms") else None
        table.add_row(
            row["pipeline"],
            row.get("label", "–"),
            row.get("precision", "–"),
            fmt_bytes(size["raw"]) if size else "–",
            fmt_bytes(size["gzip"]) if size else "–",
            _p50(lat),
            "–" if ratio is None else (f"{ratio:,.0f}×" if ratio >= 10 else f"{ratio:.2f}×"),
            "–" if agree is None else f"{agree:.4f}",
            "–" if corr is None else f"{corr:.4f}",
            row["status"] if row["status"] == "ok" else f"{row['status']}: {row['reason']}",
        )
    console = _console()
    console.print(table)
    console.print(f"Fidelity measured on: {summary['fidelity_rows']}")
    for row in summary["artifacts"]:
        if (row.get("fidelity") or {}).get("note"):
            console.print(f"  {row['label']}: {row['fidelity']['note']}")
    console.print(f"Artifacts and summary.json in {out}")
    if not any(r.get("artifact") for r in summary["artifacts"]):
        raise BadInputError(f"no pipeline of target '{summary['target']}' could run on {model}")


def _p50(latency: dict) -> str:
    return fmt_ms(latency["p50_ms"]) if latency.get("status") == "ok" else "–"


def _floats(text: str, option: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise BadInputError(f"{option} {text!r}: expected comma-separated numbers, e.g. 0,0.05,0.1") from None


def _check_inputs(
    model: Path, float_model: Path | None, runtime: str | None, need_float: bool = False, trust_model: bool = False
):
    from edge_opt.analysis.inputs import float_model_for, model_file
    from edge_opt.analysis.predictor import Predictor

    path = model_file(model)
    predictor = Predictor(path, runtime=runtime, trust_model=trust_model)
    ref_path = float_model_for(path, float_model)
    if ref_path is None and need_float:
        raise BadInputError(f"{model}: pass --float FLOAT.keras (the model it came from; needed for this check)")
    return predictor, ref_path, (Predictor(ref_path, trust_model=trust_model) if ref_path else None)


def _emit(text: str, result: dict, json_out: Path | None) -> None:
    from edge_opt.core.fileio import write_json_atomic

    print(text)
    if json_out:
        write_json_atomic(json_out, result)


_DATA_HELP = "Evaluation data: adult, digits (their test split) or an .npz with x, y and slice_<name> arrays."
_FLOAT_HELP = "The float model it came from (default: found through the artifact's lineage)."


@app.command()
@_handled
def fairness(
    artifact: Path = typer.Argument(
        ..., help="A deployed model file (.tflite, .onnx, .xml, .keras) or artifact folder."
    ),
    data: str = typer.Option("adult", "--data", help=_DATA_HELP),
    float_model: Path = typer.Option(None, "--float", help=_FLOAT_HELP),
    slice_: list[str] = typer.Option(None, "--slice", help="Slice column, or an intersection as sex+race; repeat."),
    rows: int = typer.Option(None, "--rows", min=10, help="Use the first N rows."),
    min_size: int = typer.Option(30, "--min-size", min=1, help="Slices smaller than this are marked small."),
    n_boot: int = typer.Option(200, "--boot", min=0, help="Bootstrap resamples for the CIs (0: none)."),
    runtime: str = typer.Option(None, "--runtime", "-r", help="Runtime for the artifact (default: by format)."),
    json_out: Path = typer.Option(None, "--json", help="Write the full result as JSON here.", callback=_writable_file),
    trust_model: bool = _trust_option(),
) -> None:
    """Per-slice metrics and fairness of a deployed file, as deltas against the float model."""
    from edge_opt.analysis.fairness import fairness_check, render_fairness
    from edge_opt.analysis.inputs import eval_data

    columns = [s.split("+") if "+" in s else s for s in slice_] if slice_ else None
    with _quiet_native():
        evaluation = eval_data(data, rows)
        predictor, _, reference = _check_inputs(artifact, float_model, runtime, trust_model=trust_model)
        result = fairness_check(
            predictor, evaluation, reference=reference, columns=columns, min_size=min_size, n_boot=n_boot
        )
    _emit(render_fairness(result), result, json_out)


@app.command()
@_handled
def robustness(
    artifact: Path = typer.Argument(..., help="A deployed model file or artifact folder."),
    data: str = typer.Option("adult", "--data", help=_DATA_HELP),
    float_model: Path = typer.Option(None, "--float", help=_FLOAT_HELP + " White-box attacks run on it."),
    eps: str = typer.Option("0,0.05,0.1,0.2", "--eps", help="L-inf budgets, in feature units."),
    sigmas: str = typer.Option("0,0.05,0.1,0.2", "--sigmas", help="Gaussian noise levels."),
    rows: int = typer.Option(500, "--rows", min=10, help="Use the first N rows."),
    queries: int = typer.Option(100, "--queries", min=2, help="Black-box query budget per row and epsilon."),
    pgd_steps: int = typer.Option(10, "--pgd-steps", min=1),
    seed: int = typer.Option(0, "--seed"),
    runtime: str = typer.Option(None, "--runtime", "-r", help="Runtime for the artifact (default: by format)."),
    json_out: Path = typer.Option(None, "--json", help="Write the full result as JSON here.", callback=_writable_file),
    trust_model: bool = _trust_option(),
) -> None:
    """FGSM/PGD transfer from the float model, a black-box attack on the file, and noise."""
    from edge_opt.analysis.inputs import eval_data
    from edge_opt.analysis.robustness import render_robustness, robustness_check

    epsilons, noise = _floats(eps, "--eps"), _floats(sigmas, "--sigmas")
    with _quiet_native():
        evaluation = eval_data(data)
        predictor, ref_path, _ = _check_inputs(artifact, float_model, runtime, True, trust_model)
        result = robustness_check(
            {artifact.name: predictor},
            ref_path,
            evaluation,
            epsilons=epsilons,
            sigmas=noise,
            pgd_steps=pgd_steps,
            blackbox_queries=queries,
            rows=rows,
            seed=seed,
            trust_model=trust_model,
        )
    _emit(render_robustness(result), result, json_out)


@app.command()
@_handled
def explain(
    artifact: Path = typer.Argument(..., help="A deployed model file or artifact folder."),
    data: str = typer.Option("adult", "--data", help=_DATA_HELP),
    float_model: Path = typer.Option(None, "--float", help=_FLOAT_HELP),
    methods: str = typer.Option(
        None,
        "--methods",
        help="Any of shap,permutation,pdp,lime,ig (default: shap,permutation,pdp; images: shap,permutation,ig).",
    ),
    rows: int = typer.Option(None, "--rows", min=10, help="Rows for permutation importance and PDP (400; images 100)."),
    budget: float = typer.Option(
        None, "--budget", min=0.001, help="Seconds the check may take: each method is cut or skipped to fit."
    ),
    seed: int = typer.Option(0, "--seed"),
    runtime: str = typer.Option(None, "--runtime", "-r", help="Runtime for the artifact (default: by format)."),
    json_out: Path = typer.Option(None, "--json", help="Write the full result as JSON here.", callback=_writable_file),
    trust_model: bool = _trust_option(),
) -> None:
    """SHAP, permutation importance, PDP/ICE (and LIME, integrated gradients) on a deployed file,
    with their stability against the float model. Images are explained by patches; progress and
    each method's estimated time go to stderr."""
    from edge_opt.analysis.explain import explain_check, render_explain
    from edge_opt.analysis.inputs import eval_data

    with _quiet_native() as (_, terminal):
        evaluation = eval_data(data)
        predictor, ref_path, reference = _check_inputs(artifact, float_model, runtime, trust_model=trust_model)
        chosen = tuple(m.strip() for m in methods.split(",") if m.strip()) if methods is not None else None
        result = explain_check(
            predictor,
            evaluation,
            reference=reference,
            float_model_path=ref_path,
            methods=chosen,
            rows=rows,
            seed=seed,
            trust_model=trust_model,
            budget_s=budget,
            progress=lambda line: print(line, file=terminal, flush=True),
        )
    _emit(render_explain(result), result, json_out)


@app.command()
@_handled
def drift(
    reference: Path = typer.Argument(..., help="Reference data (.npz with x, .npy or .csv with a header)."),
    new: Path = typer.Argument(..., help="New data, same columns."),
    artifact: Path = typer.Option(None, "--artifact", help="Also measure prediction drift through this model."),
    p_value: float = typer.Option(0.01, "--p-value", help="Drift needs a test p-value below this ..."),
    psi: float = typer.Option(0.1, "--psi", help="... and a population stability index above this."),
    json_out: Path = typer.Option(None, "--json", help="Write the full result as JSON here.", callback=_writable_file),
    trust_model: bool = _trust_option(),
) -> None:
    """Per-feature drift (KS, chi-square, PSI) and prediction drift; exit 1 when something drifted.

    Categorical columns (chi-square) come from an .npz's 'categorical' array (names or indices),
    else they are inferred: one-hot groups, 0/1 columns, columns with few distinct values."""
    import numpy as np

    from edge_opt.analysis.drift import drift_check, load_table, render_drift

    ref, cur = load_table(reference), load_table(new)
    if ref.names != cur.names:
        raise BadInputError(f"{reference} and {new} have different columns")
    marked = [t.categorical for t in (ref, cur) if t.categorical is not None]
    if len(marked) == 2 and not np.array_equal(*marked):
        raise BadInputError(f"{reference} and {new} mark different columns categorical")
    categorical = marked[0] if marked else None
    with _quiet_native():
        predictor = None
        if artifact is not None:
            from edge_opt.analysis.inputs import model_file
            from edge_opt.analysis.predictor import Predictor

            predictor = Predictor(model_file(artifact), trust_model=trust_model)
        result = drift_check(
            ref.x,
            cur.x,
            ref.names,
            categorical=categorical,
            thresholds={"p_value": p_value, "psi": psi},
            predictor=predictor,
        )
    _emit(render_drift(result), result, json_out)
    if result["drifted"]:
        raise typer.Exit(1)


@app.command()
@_handled
def lineage(run_dir: Path = typer.Argument(..., help="A run folder.")) -> None:
    """Show the tree from the float model to every artifact of a run (from the manifests)."""
    from edge_opt.core.lineage import lineage_lines, load_manifests

    for line in lineage_lines(load_manifests(run_dir)):
        print(line)


@app.command()
@_handled
def targets(name: str = typer.Argument(None, help="Show one profile in full (a name or a YAML path).")) -> None:
    """List the target profiles, or validate and show one."""
    import yaml

    from edge_opt.targets import available_profiles, load_profile

    console = _console()
    if name:
        console.print(yaml.safe_dump(load_profile(name).to_dict(), sort_keys=False), end="")
        return
    for profile_name in available_profiles():
        p = load_profile(profile_name)
        runtimes = ", ".join(f"{r.runtime}{'@' + r.precision if r.precision else ''}/{r.device}" for r in p.runtimes)
        console.print(f"{p.name:8} {p.precision:5} threads {p.threads}  runtimes {runtimes}  · {p.description}")


def parse_shapes(specs: list[str]) -> dict[str, tuple[int, ...]]:
    """``NAME:1,3,224,224`` or ``1x3x224x224`` (for the only input) → {name: shape}."""
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        name, _, dims = spec.rpartition(":")
        try:
            shape = tuple(int(d) for d in dims.replace("x", ",").split(",") if d.strip())
        except ValueError:
            raise BadInputError(f"--shape {spec!r}: dimensions must be integers, e.g. input:1,108") from None
        if not shape or any(d < 1 for d in shape):
            raise BadInputError(f"--shape {spec!r}: needs positive dimensions, e.g. input:1,108")
        shapes[name] = shape
    return shapes


#: The terminal summary fits this many columns; long statuses become numbered footnotes below it.
TABLE_WIDTH = 120


def _print_table(console, results: dict) -> None:
    """The summary table grouped by target, at most TABLE_WIDTH wide; statuses beyond "ok" as footnotes."""
    import textwrap

    from rich.table import Table

    from edge_opt.report.markdown import COLUMNS, NUMERIC, row

    table = Table(
        title=f"edge-opt · {results.get('run_id', 'bench')}",
        box=None,
        header_style="bold underline",
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    columns = COLUMNS[1:]  # the target heads its group of rows instead of taking a column
    for col in columns:
        narrow = {"artifact": 22, "runtime": 17}.get(col)  # longer names fold onto a second line
        table.add_column(col, overflow="fold", justify="right" if col in NUMERIC else "left", max_width=narrow)
    notes: dict[str, int] = {}  # footnote text -> number
    current = None
    for rec in results["measurements"]:
        cells = row(rec)
        target, status = cells[0], cells[-1]
        if target != current:
            current = target
            table.add_row(f"[bold underline]{target}[/]", *[""] * (len(columns) - 1))
        short = {"skipped": "skip"}.get(rec["status"], rec["status"])
        if status != short:
            number = notes.setdefault(status, len(notes) + 1)
            short = f"{short} [{number}]"
        style = {"ok": "", "skipped": "yellow"}.get(rec["status"], "red")
        cells[-1] = f"[{style}]{short}[/]" if style else short
        table.add_row(*cells[1:])
    width = min(console.width, TABLE_WIDTH)
    console.print(table, width=width)
    for text, number in notes.items():
        lead = f"[{number}] "
        console.print(
            textwrap.fill(text, width=width, initial_indent=lead, subsequent_indent=" " * len(lead)),
            markup=False,
            width=width,
        )


def _native_log(out: Path) -> Path:
    """This command's own native log: ``OUT/logs/native-<time>-<pid>.log``."""
    from datetime import UTC, datetime

    return out / "logs" / f"native-{datetime.now(UTC):%Y%m%d-%H%M%S}-{os.getpid()}.log"


@contextlib.contextmanager
def _native_logs_to(path: Path):
    """Send native libraries' fd-level chatter (TensorFlow, converters) to a log file.

    Yields (stdout, stderr) file objects that still reach the terminal, for the consoles
    that show progress and tables. Errors are printed after the descriptors are restored.
    """
    # The folders this command creates for its log, innermost first, to remove if left empty.
    made = [p for p in (path.parent, path.parent.parent) if not p.exists()]
    created = path.parent.parent in made
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    terms = [os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace") for fd in saved]
    log = open(path, "ab")
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    failed = True
    try:
        yield terms[0], terms[1]
        failed = False
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (*terms, log):
            f.close()
        for fd in saved:
            os.close(fd)
        # Leave nothing behind when nothing was logged, or when the command failed before
        # writing anything but this log into a folder it created.
        if path.exists() and (path.stat().st_size == 0 or (failed and created)):
            path.unlink()
        for folder in made:
            with contextlib.suppress(OSError):  # only when empty: another command may be writing there
                folder.rmdir()


@contextlib.contextmanager
def _quiet_native():
    """Keep native runtimes' start-up chatter off the terminal of a command that only prints a result."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="edge-opt-") as tmp, _native_logs_to(Path(tmp) / "native.log") as terms:
        yield terms  # (stdout, stderr) that still reach the terminal, for progress lines


def main() -> None:
    import signal

    # SIGTERM ends the command like Ctrl-C: clean-up runs (staging folders, temporary files)
    # and running workers are stopped; they also die with this process if it is killed.
    from typer._click.exceptions import ClickException, UsageError  # typer vendors click
    from typer.exceptions import Abort

    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = app(standalone_mode=False)
    except UsageError as exc:  # one line, like every other bad input
        where = f"edge-opt {exc.ctx.info_name}" if exc.ctx and exc.ctx.info_name != "edge-opt" else "edge-opt"
        print(f"edge-opt: error: {exc.format_message()} (see {where} --help)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except ClickException as exc:
        print(f"edge-opt: error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Abort:
        print("edge-opt: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
