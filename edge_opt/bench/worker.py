"""The child side of the harness: one (model, runtime, threads) measurement per process.

Run as ``python -m edge_opt.bench.worker SPEC.json RESULT.json``. A fresh process per
measurement keeps runtimes from sharing caches, thread pools and allocator state, makes
the memory figures the model's own, and contains native crashes (the parent sees the
signal). Nothing here computes metrics: predictions are saved for the parent.
"""

from __future__ import annotations

import gc
import json
import os
import re
import sys
import time
import traceback

import numpy as np

from edge_opt.core.errors import BadInputError, EdgeOptError, first_line, runtime_message
from edge_opt.core.fileio import write_json_atomic
from edge_opt.core.plugins import allow
from edge_opt.core.procs import die_with_parent
from edge_opt.runtimes import get_backend_class
from edge_opt.runtimes.base import random_inputs
from edge_opt.runtimes.ops import mark_precision, unsupported


def _mb(n_bytes: float) -> float:
    return n_bytes / (1024 * 1024)


def _memory() -> tuple[float, float]:
    """(RSS, USS) of this process now, in MiB."""
    import psutil

    info = psutil.Process().memory_full_info()
    return _mb(info.rss), _mb(info.uss)


def _peak_rss_mb() -> float:
    # VmHWM is reset by exec; ru_maxrss is not on Linux (it would report the parent's peak).
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource  # not Linux: the best figure available

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)


#: The most bytes one input tensor may take (a typo like 100000,100000,3 is 112 GiB).
MAX_INPUT_BYTES = 2 * 1024**3


def resolve_shapes(
    specs, user_shapes: dict | None, default_batch: int | None, warnings: list[str] | None = None
) -> dict | None:
    """Static input shapes to run with, from the model, ``--shape`` and a default batch.

    Every input still dynamic is named in one error, with a whole ``--shape`` line to paste.
    A dynamic non-batch dimension set to 1 in an input of rank 3 or more (an image of one
    pixel, a sequence of one step) is allowed, with a warning appended to ``warnings``.
    """
    user_shapes = _named_shapes(specs, user_shapes)
    resolved, changed, missing = {}, False, []
    for spec in specs:
        shape = user_shapes.get(spec.name)
        if shape is not None:
            shape = _checked_user_shape(spec, shape, warnings)
            changed |= shape != spec.shape
        elif spec.dynamic:
            shape = list(spec.shape)
            if default_batch and shape and shape[0] < 0:
                shape[0] = default_batch
                if warnings is not None:
                    warnings.append(
                        f"input {spec.name} has a dynamic batch: measured at batch {default_batch} "
                        f"(--shape {spec.name}:{_fmt(shape)} with another batch to choose)"
                    )
            if not spec.rank_known or any(d < 0 for d in shape):
                missing.append(spec)
                continue
            shape, changed = tuple(shape), True
        else:
            shape = spec.shape
        resolved[spec.name] = shape
    if missing:
        raise _still_dynamic(missing, resolved)
    return resolved if changed else None


def _named_shapes(specs, user_shapes: dict | None) -> dict:
    """``--shape`` values by input name (an unnamed one for the only input); unknown names refused."""
    user_shapes = dict(user_shapes or {})
    if "" in user_shapes:  # an unnamed --shape applies to the only input
        if len(specs) != 1:
            names = ", ".join(s.name for s in specs)
            raise BadInputError(
                f"--shape {_fmt(user_shapes[''])} names no input, and the model has {len(specs)} inputs ({names}): "
                "write --shape NAME:DIMS for each"
            )
        user_shapes[specs[0].name] = user_shapes.pop("")
    named = {}
    for given, shape in user_shapes.items():
        spec = _input_named(specs, given)
        if spec is None:
            names = ", ".join(s.name for s in specs)
            raise BadInputError(f"--shape names unknown input {given!r}; the model's inputs: {names}")
        named[spec.name] = shape
    return named


_DECORATION = re.compile(r"^serving_default_|:\d+$|_u?int8$")


def _bare(name: str) -> str:
    """An input name without what converters add: ``serving_default_``, ``:0``, ``_int8``."""
    return _DECORATION.sub("", _DECORATION.sub("", name))


def _input_named(specs, name: str):
    """The input ``name`` means: by its name or another name of it in the file, else the one input
    whose name is the same without the converters' decorations (``input_1`` for OpenVINO's
    ``input_1_int8``, ``features`` for LiteRT's ``serving_default_features:0``)."""
    for spec in specs:
        if name == spec.name or name in spec.aliases:
            return spec
    bare = [s for s in specs if _bare(name) in {_bare(n) for n in (s.name, *s.aliases)}]
    return bare[0] if len(bare) == 1 else None


def _checked_user_shape(spec, shape, warnings: list[str] | None) -> tuple:
    """A ``--shape`` for one input as a tuple, refused unless it fits the model and the size limit."""
    shape = tuple(int(d) for d in shape)
    fits = not spec.rank_known or (
        len(shape) == len(spec.shape) and all(m < 0 or m == d for m, d in zip(spec.shape, shape, strict=True))
    )
    if not fits:
        raise BadInputError(
            f"--shape {spec.name}:{_fmt(shape)} does not fit the model's input shape {_fmt(spec.shape)}"
        )
    if any(d < 1 for d in shape):
        raise BadInputError(f"--shape {spec.name}:{_fmt(shape)} must have positive dimensions")
    nbytes = int(np.prod(shape, dtype=np.float64)) * np.dtype(spec.dtype).itemsize
    if nbytes > MAX_INPUT_BYTES:
        raise BadInputError(
            f"--shape {spec.name}:{_fmt(shape)} is {nbytes / 1024**3:.1f} GiB of input, "
            f"more than edge-opt allocates ({MAX_INPUT_BYTES / 1024**3:.0f} GiB)"
        )
    model_dims = spec.shape if spec.rank_known else (-1,) * len(shape)
    ones = [i for i, (m, d) in enumerate(zip(model_dims, shape, strict=True)) if i > 0 and m < 0 and d == 1]
    if ones and len(shape) >= 3 and warnings is not None:
        warnings.append(
            f"--shape {spec.name}:{_fmt(shape)} sets dynamic dimension(s) {', '.join(map(str, ones))} to 1: "
            "a one-pixel or one-step input times almost nothing; use the sizes the model will see"
        )
    return shape


def _still_dynamic(missing: list, resolved: dict) -> BadInputError:
    """The error naming every input still dynamic, with a whole ``--shape`` line to paste."""
    told = ", ".join(f"'{s.name}' is {_fmt(s.shape) if s.rank_known else 'of unknown rank'}" for s in missing)
    line = " ".join(
        f"--shape {s.name}:{_fmt(tuple(resolved.get(s.name, ())) or tuple(1 if d < 0 else d for d in s.shape))}"
        if s.rank_known
        else f"--shape {s.name}:DIMS"
        for s in missing
    )
    return BadInputError(
        f"{len(missing)} input(s) have dynamic dimensions ({told}): pass {line}, "
        "with each ? dimension (shown as 1) replaced by the size the model will see"
    )


def make_feeds(specs, given: dict[str, np.ndarray] | None, ranges: dict | None, seed: int = 0) -> list[np.ndarray]:
    """The inputs to bind: the user's arrays (``--input``) by input name, else random ones of
    each input's dtype, within ``--input-range`` where given."""
    names = [s.name for s in specs]
    given, ranges = dict(given or {}), dict(ranges or {})
    for table in (given, ranges):
        if "" in table and len(specs) == 1:  # one unnamed array or range for the only input
            table[specs[0].name] = table.pop("")
    for table, option in ((given, "--input"), (ranges, "--input-range")):
        unknown = sorted(set(table) - set(names))
        if unknown:
            raise BadInputError(f"{option} names unknown input {unknown[0]!r}; the model's inputs: {', '.join(names)}")
    feeds = []
    for i, spec in enumerate(specs):
        if spec.name not in given:
            feeds.append(random_inputs([spec], seed=seed + i, ranges=ranges)[0])
            continue
        arr, dtype = np.asarray(given[spec.name]), np.dtype(spec.dtype)
        if tuple(arr.shape) != tuple(spec.shape):
            raise BadInputError(f"--input array '{spec.name}' has shape {arr.shape}, the model runs {spec.shape}")
        if dtype.kind in "iub" and arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
            raise BadInputError(f"--input array '{spec.name}' holds fractions; input '{spec.name}' is {dtype.name}")
        feeds.append(np.ascontiguousarray(arr.astype(dtype)))
    return feeds


def _fmt(shape) -> str:
    return ",".join("?" if d < 0 else str(d) for d in shape)


def run(spec: dict) -> dict:
    if spec.get("cpus") and hasattr(os, "sched_setaffinity"):  # the device's core mask, before any runtime starts
        os.sched_setaffinity(0, spec["cpus"])

    allow(spec["runtime"])  # edge-opt wrote this spec, and checked its runtime against the allow-list then
    cls = get_backend_class(spec["runtime"])
    device, precision = spec.get("device", "cpu"), spec.get("precision")
    reason = cls.cannot_run(device, precision)
    if reason:
        return {"status": "skipped", "error": reason}
    cls.import_runtime()
    gc.collect()
    baseline = _memory()

    # Shapes fixed by the harness (``shapes_final``) are loaded as they are. Otherwise the
    # model is loaded once to read its inputs; when they must be fixed (a dynamic batch) and the
    # runtime cannot fix them in place, this process stops and the harness starts a fresh one
    # that loads the model once, with the shapes, so no figure includes a first, discarded load.
    final = spec.get("shapes_final", False)
    trust = bool(spec.get("trust_model", False))
    backend = cls(threads=spec.get("threads", 1), device=device, precision=precision, trust_model=trust)
    t0 = time.perf_counter()
    backend.load(spec["model"], {k: tuple(v) for k, v in spec["shapes"].items()} if final else None)
    load_ms = (time.perf_counter() - t0) * 1e3
    warnings: list[str] = list(spec.get("warnings") or [])
    if not final:
        shapes = resolve_shapes(backend.inputs(), spec.get("shapes"), spec.get("default_batch"), warnings)
        if shapes and not backend.reshaped_in_place({k: tuple(v) for k, v in shapes.items()}):
            shapes = {k: list(v) for k, v in shapes.items()}
            return {"status": "reshape", "error": None, "shapes": shapes, "warnings": warnings}
    specs = backend.inputs()
    given = _given_arrays(spec)
    backend.bind(make_feeds(specs, given, spec.get("input_ranges"), seed=spec.get("seed", 0)))

    cold_ms = _cold_start_and_warm_up(backend, spec, given, specs)
    samples, runtime_samples = _timed_runs(backend, spec)
    result = _ok_result(backend, spec, specs, given, warnings, load_ms, cold_ms, samples, runtime_samples, baseline)
    if spec.get("ops_runs"):
        asked = spec.get("precision") or spec.get("file_precision")
        result.update(_op_profile(backend, spec["ops_runs"], samples, asked))
    if spec.get("data"):
        _predict(backend, spec, result)
    return result


def _op_profile(backend, runs: int, samples: list[int], asked: str | None) -> dict:
    """The backend's per-op profile, after the timed runs (so it never slows them), with compute
    ops run in another precision than ``asked`` marked; a runtime that cannot profile, or fails
    to, gives a profile that says why."""
    try:
        profile = backend.profile_ops(runs)
    except Exception as exc:  # noqa: BLE001 - the measurement stands; the profile says what broke
        profile = unsupported(f"the profile failed: {runtime_message(exc)}")
    fields = mark_precision(profile, asked).to_dict()
    if fields["ops_whole_ms"] is None and profile.ops:  # beside the ops, the whole model's own median
        fields["ops_whole_ms"] = float(np.median(samples)) / 1e6
    return fields


def _given_arrays(spec: dict) -> dict[str, np.ndarray] | None:
    """The user's input arrays (``--input``) by name, or None."""
    given = None
    if spec.get("feeds"):
        with np.load(spec["feeds"], allow_pickle=False) as npz:
            given = {k: npz[k] for k in npz.files}
    return given


def _cold_start_and_warm_up(backend, spec: dict, given: dict | None, specs) -> float:
    """The first call's time in ms (its failure blames the inputs), then the bounded warm-up runs."""
    invoke = backend.invoke
    clock = time.perf_counter_ns
    t0 = clock()
    try:
        invoke()
    except Exception as exc:  # noqa: BLE001 - the first run on these inputs: the inputs are the suspect
        raise BadInputError(_input_failure(exc, given, specs)) from None
    cold_ms = (clock() - t0) / 1e6
    warm_end = clock() + spec.get("max_time_s", 60.0) * 1e9  # the warm-up is bounded like the timing
    for _ in range(spec.get("warmup_runs", 10)):
        invoke()
        if clock() > warm_end:
            break
    return cold_ms


def _timed_runs(backend, spec: dict) -> tuple[list[int], list[float]]:
    """The timed loop: wall-clock samples in ns, and the runtime's own in ms when it has a timer."""
    invoke = backend.invoke
    clock = time.perf_counter_ns
    min_runs, min_ns = spec.get("min_runs", 50), spec.get("min_time_s", 1.0) * 1e9
    max_runs, max_ns = spec.get("max_runs", 1_000_000), spec.get("max_time_s", 60.0) * 1e9
    samples: list[int] = []
    append = samples.append
    runtime_samples: list[float] = []
    own_timer = backend.timer == "runtime"
    last_latency = backend.last_latency_ms if own_timer else None
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside the loop would be charged to the model
    try:
        start = clock()
        while True:
            t = clock()
            invoke()
            append(clock() - t)
            if own_timer:
                runtime_samples.append(last_latency())
            elapsed = clock() - start
            if (len(samples) >= min_runs and elapsed >= min_ns) or len(samples) >= max_runs or elapsed >= max_ns:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples, runtime_samples


def _ok_result(
    backend,
    spec: dict,
    specs,
    given: dict | None,
    warnings: list[str],
    load_ms: float,
    cold_ms: float,
    samples: list[int],
    runtime_samples: list[float],
    baseline: tuple[float, float],
) -> dict:
    """The measurement's result; peak RSS is read first, before the samples are converted."""
    peak_rss = _peak_rss_mb()
    info = backend.info()
    _, uss_now = _memory()  # the harness samples USS from outside all along and keeps the peak
    baseline_rss, baseline_uss = baseline
    own_timer = backend.timer == "runtime"
    return {
        "status": "ok",
        "error": None,
        "runtime": {**info, "precision": info.get("precision") or spec.get("file_precision")},
        "inputs": [
            {"name": s.name, "shape": list(s.shape), "dtype": s.dtype, "source": _source(s.name, given, spec)}
            for s in specs
        ],
        "warnings": warnings,
        "load_ms": load_ms,
        "cold_start_ms": cold_ms,
        # One basis for every runtime: the wall clock around one call from Python. The runtime's
        # own timer (OpenVINO's, what benchmark_app reports) is kept beside it, for vendor parity.
        "samples_ms": [s / 1e6 for s in samples],
        "runtime_samples_ms": runtime_samples if own_timer else None,
        "memory_mb": {
            "peak_rss": peak_rss,
            "peak_uss": uss_now,
            "uss_end": uss_now,
            "baseline_rss": baseline_rss,
            "baseline_uss": baseline_uss,
        },
    }


def _predict(backend, spec: dict, result: dict) -> None:
    """Predictions on the data rows, saved for the parent; their time goes in ``result``."""
    x = np.load(spec["data"])
    t0 = time.perf_counter()
    y = backend.predict(x)
    result["predict_ms"] = (time.perf_counter() - t0) * 1e3
    np.save(spec["predictions_out"], y)


def _source(name: str, given: dict | None, spec: dict) -> str:
    """Where an input's values came from, for the record."""
    if given and (name in given or (len(given) == 1 and "" in given)):
        return "file"
    lo_hi = (spec.get("input_ranges") or {}).get(name)
    return f"random in [{lo_hi[0]:g}, {lo_hi[1]:g}]" if lo_hi else "random"


def _input_failure(exc: BaseException, given: dict | None, specs) -> str:
    what = "the --input arrays" if given else "random inputs"
    hint = "" if given else "; give real ones with --input FILE.npz or value ranges with --input-range NAME:LO,HI"
    kinds = ", ".join(f"{s.name} {s.dtype}{list(s.shape)}" for s in specs)
    return f"the model failed on {what} ({kinds}): {runtime_message(exc)}{hint}"


def main(argv: list[str]) -> int:
    die_with_parent()
    spec_path, result_path = argv[1], argv[2]
    with open(spec_path, encoding="utf-8") as fh:
        spec = json.load(fh)
    try:
        result = run(spec)
    except EdgeOptError as exc:
        result = {"status": "failed", "error": str(exc), "error_kind": type(exc).__name__, "exit_code": exc.exit_code}
    except Exception as exc:  # a runtime's own error: recorded, the run goes on
        traceback.print_exc()
        result = {"status": "failed", "error": f"{type(exc).__name__}: {first_line(exc)}", "error_kind": "internal"}
    write_json_atomic(result_path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
