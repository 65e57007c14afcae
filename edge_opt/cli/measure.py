"""``edge-opt bench`` (one model file, measured) and ``edge-opt devices`` (the inventory)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from edge_opt.cli.common import (
    app,
    devices_option,
    finite,
    handled,
    make_console,
    parse_shapes,
    print_ops,
    print_table,
    trust_option,
    typed_plugin,
    writable_file,
)
from edge_opt.core.errors import BadInputError, EdgeOptError
from edge_opt.core.units import fmt_mib, fmt_ms

_RUNTIME_HELP = (
    "litert | litert-compiled | onnxruntime | openvino | keras "
    "(default: by format; openvino also reads .onnx and .tflite)."
)


@app.command()
@handled
def bench(
    model: Path = typer.Argument(
        ..., help="A .tflite, .onnx or OpenVINO .xml file (any origin), a Keras file, or an artifact folder."
    ),
    runtime: str = typer.Option(None, "--runtime", "-r", help=_RUNTIME_HELP, callback=typed_plugin),
    threads: int = typer.Option(1, "--threads", "-t", min=1, max=1024, help="Threads for the runtime."),
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
    runs: int = typer.Option(50, "--runs", min=1, max=10_000_000, help="Minimum timed runs."),
    min_time: float = typer.Option(1.0, "--min-time", min=0, max=3600, callback=finite, help="Minimum seconds timed."),
    warmup: int = typer.Option(10, "--warmup", min=0, max=1_000_000, help="Warm-up runs before timing."),
    max_time: float = typer.Option(
        60.0,
        "--max-time",
        min=0.001,
        max=86400,
        callback=finite,
        help="Stop warm-up and timing after this many seconds each.",
    ),
    ops: bool = typer.Option(
        False, "--ops", help="Also time each op (the runtime's profiler, or each op alone on LiteRT); after the timing."
    ),
    ops_runs: int = typer.Option(100, "--ops-runs", min=1, max=1_000_000, help="Invokes the per-op times average."),
    json_out: Path = typer.Option(None, "--json", help="Write the measurement record here.", callback=writable_file),
    trust_model: bool = trust_option(),
    device_name: str = typer.Option(
        None, "--device-name", help="Measure on this device of the inventory (devices/*.yaml; see `edge-opt devices`)."
    ),
    devices_dir: Path = devices_option(),
) -> None:
    """Benchmark one model file in a fresh process, on real inputs (--input) or random ones of
    each input's dtype. An edge-opt artifact (its folder, or a file with its manifest.json
    beside it) keeps its id, precision and lineage in the record."""
    from edge_opt.core.fileio import write_json_atomic
    from edge_opt.measure.harness import HarnessOptions

    artifact = _bench_subject(model)
    runtime = _bench_runtime(Path(artifact["path"]), runtime)
    feeds = _bench_inputs(shape, inputs, input_range)
    timing = {"min_runs": runs, "min_time_s": min_time, "warmup_runs": warmup, "max_time_s": max_time}
    options = HarnessOptions(**timing, ops_runs=ops_runs if ops else 0)
    target = _open_device(device_name, devices_dir) if device_name else None
    setup = {"threads": threads, "device": device, "options": options, "trust_model": trust_model, **feeds}
    result = _bench_measure(artifact, runtime, target, setup)
    record = _bench_record(artifact, runtime, target, setup, result)
    _print_bench(record, result.status)
    if json_out:
        write_json_atomic(json_out, record)
    if result.status == "failed":
        raise EdgeOptError(f"measurement failed: {result.error}")
    if result.status == "skipped":
        raise BadInputError(f"not measured: {result.error}")


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


def _bench_runtime(model: Path, runtime: str | None) -> str:
    """--runtime, or the format's default; exit 2 when it does not read the file's format."""
    from edge_opt.runtimes import DEFAULT_RUNTIME, detect_format, formats_of, runtime_names

    fmt = detect_format(model)
    runtime = runtime or DEFAULT_RUNTIME[fmt]
    if fmt not in formats_of(runtime):
        readers = ", ".join(n for n in runtime_names() if fmt in formats_of(n))
        raise BadInputError(f"runtime '{runtime}' does not read {fmt} files ({model}); runtimes that do: {readers}")
    return runtime


def _bench_inputs(shape: list[str] | None, inputs: Path | None, input_range: list[str] | None) -> dict:
    """--shape, --input and --input-range as the harness's shapes, feeds and input_ranges."""
    from edge_opt.core.arrays import load_feeds

    shapes = parse_shapes(shape or [])
    feeds = load_feeds(inputs) if inputs else None
    return {"shapes": shapes, "feeds": feeds, "input_ranges": parse_ranges(input_range or [])}


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


def _open_device(name: str, folder: Path | None):
    """The inventory's device ``name``, reachable (an unreachable one is exit 2 with the reason)."""
    from edge_opt.measure.devices import Device, get_device

    device = Device(get_device(name, folder))
    reason = device.unreachable()
    if reason:
        raise BadInputError(f"device '{name}' is unreachable: {reason}")
    return device


def _bench_measure(artifact: dict, runtime: str, target, setup: dict):
    """Measure the file, here or on the device ``target``; exit 2 when the file, its inputs or an
    option is at fault, or the runtime died on it."""
    from edge_opt.measure.harness import measure

    model = Path(artifact["path"])
    where = f" on device {target.name}" if target else ""
    status = f"measuring {model.name} on {runtime}, {setup['threads']} thread(s){where}"
    with make_console(stderr=True).status(status):
        result = (target.measure if target else measure)(
            model,
            runtime,
            # A dynamic first dimension is the batch: measured at 1 on every runtime, with a warning
            # that says so (--shape chooses another); other dynamic dimensions need --shape.
            default_batch=1,
            file_precision=None if artifact["precision"] == "unknown" else artifact["precision"],
            **setup,
        )
    if result.status == "failed" and (result.exit_code == 2 or result.raw.get("signal")):
        # The user's file, inputs or option is at fault, or the runtime died on it.
        raise BadInputError(
            result.error
            if not result.raw.get("signal")
            else f"{model}: {runtime} {result.error} while loading or running it (corrupt model?)"
        )
    return result


def _bench_record(artifact: dict, runtime: str, target, setup: dict, result) -> dict:
    """The measurement record, with the command's provenance (and the device's, closed here)."""
    from edge_opt.core.provenance import provenance
    from edge_opt.measure.records import build_record

    size = artifact.pop("size")
    record = build_record(
        artifact=artifact,
        runtime=runtime,
        device=setup["device"],
        threads=setup["threads"],
        size_bytes=size,
        result=result,
    ).to_json()
    record["provenance"] = provenance({"command": "bench", "harness": setup["options"].to_dict()})
    if target is not None:
        record["provenance"]["device"] = {**target.describe(), "fingerprint": target._fingerprint}
        target.close()
    return record


def _print_bench(record: dict, status: str) -> None:
    """The record's warnings on stderr, then its table row and a summary line of its latency."""
    for warning in record.get("warnings") or []:
        print(f"edge-opt: warning: {warning}", file=sys.stderr)
    console = make_console()
    print_table(console, {"measurements": [record]})
    summary = record.get("latency_summary_ms")
    if status == "ok" and summary:  # a device's own tool (adb: benchmark_model) printed only this
        console.print(
            f"{record['runtime']['name']}: mean {fmt_ms(summary['mean'])}, std {fmt_ms(summary.get('std'))}, "
            f"n={summary['n']} (its summary; per-run samples {summary['samples']}), "
            f"load {fmt_ms(record['load_ms'])}, first inference {fmt_ms(record['cold_start_ms'])}"
        )
    elif status == "ok":
        lat = record["latency_ms"]
        console.print(
            f"p50 {fmt_ms(lat['p50'])} (95% CI {fmt_ms(lat['median_ci'][0])}–{fmt_ms(lat['median_ci'][1])}), "
            f"p99 {fmt_ms(lat['p99'])}, n={lat['n']}, outliers {lat['outliers']}, "
            f"cold {fmt_ms(record['cold_start_ms'])}, peak USS {fmt_mib(record['memory_mb']['peak_uss'])}"
        )
        own = record.get("runtime_latency_ms")
        if own:  # the runtime's own timer over the same calls (what its vendor tool reports)
            console.print(
                f"{record['runtime']['name']}'s own timer: p50 {fmt_ms(own['p50'])} over the same calls "
                f"(the p50 above is the wall clock around each call, the basis edge-opt compares every runtime on)"
            )
    if status == "ok" and record.get("ops_runs"):
        print_ops(console, record)


@app.command()
@handled
def devices(
    devices_dir: Path = devices_option(),
    json_out: Path = typer.Option(
        None, "--json", help="Write the devices and fingerprints here.", callback=writable_file
    ),
) -> None:
    """List the devices of the inventory, whether each is reachable now, and its fingerprint
    (CPU, cores, governor and frequency, memory, OS, runtime versions found)."""
    from edge_opt.core.fileio import write_json_atomic
    from edge_opt.measure.devices import Device, load_inventory

    console = make_console()
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
