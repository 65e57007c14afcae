"""Conformance suites for edge-opt's extension points, in the spirit of scikit-learn's
``check_estimator``: ``check_backend``, ``check_pass`` and ``check_trust_check`` run one
implementation through everything its contract promises and raise ``AssertionError``
naming the broken promise. edge-opt's own tests run every registered backend, pass and
trust check through them (tests/test_conformance.py); a plug-in author runs them on theirs.

Each check really runs the implementation (a real model file, a real runtime, real data);
nothing is mocked.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edge_opt.analysis.trust import Subject, TrustCheck, TrustResult
from edge_opt.bench.process import WorkerResult
from edge_opt.core.artifacts import verify
from edge_opt.core.errors import EdgeOptError, UnsupportedTargetError
from edge_opt.core.fileio import _default
from edge_opt.passes import pass_class, pass_names
from edge_opt.passes.base import MODEL_FILES, Pass, PassConfig
from edge_opt.runtimes import FORMATS
from edge_opt.runtimes.base import Backend, TensorSpec, random_inputs
from edge_opt.runtimes.ops import OpProfile


def _fail(what: str, why: str) -> None:
    raise AssertionError(f"{what}: {why}")


# --- backends -------------------------------------------------------------------------


def check_backend(cls: type, model: str | Path | None, x: np.ndarray, shapes: dict | None = None) -> None:
    """A Backend class: declared attributes, availability answers, load/bind/invoke/predict, info.

    ``model`` is a file the backend reads (None for a backend that needs none), ``x`` a few
    rows of float features for ``predict``, ``shapes`` static input shapes to load with.
    """
    what = f"backend {getattr(cls, '__name__', cls)!r}"
    _check_backend_class(cls, what)
    reason = cls.unavailable("cpu")
    if reason:  # e.g. a runtime that is not installed here: nothing more can be checked
        return

    _check_missing_model(cls, model, what)
    backend, specs = _loaded_backend(cls, model, shapes, what)
    backend.bind(random_inputs(specs))
    backend.invoke()
    backend.invoke()
    if cls.timer == "runtime":
        t = backend.last_latency_ms()
        if not (isinstance(t, float | int) and math.isfinite(t) and t >= 0):
            _fail(what, f"timer 'runtime' but last_latency_ms() gave {t!r}")
    _check_predict(backend, x, what)
    _check_op_profile(backend, what)
    info = backend.info()
    missing = {"name", "version", "threads", "device", "timer", "precision"} - set(info)
    if missing:
        _fail(what, f"info() lacks {sorted(missing)}: a record must say what ran")
    if (info["name"], info["threads"], info["device"]) != (cls.name, 1, "cpu"):
        _fail(what, f"info() says {info['name']}/{info['threads']} thread(s)/{info['device']}, not what ran")
    json.dumps(info)  # it goes into results.json


def _check_op_profile(backend, what: str) -> None:
    """``profile_ops``: an OpProfile whose ops have finite non-negative times, or none with a
    reason; never an exception for a model it ran."""
    profile = backend.profile_ops(5)
    if not isinstance(profile, OpProfile):
        _fail(what, f"profile_ops() gave {type(profile).__name__}, not an OpProfile")
    if profile.method is None and not profile.reason:
        _fail(what, "profile_ops() gave no profile and no reason why")
    for op in profile.ops:
        if not (math.isfinite(op.ms) and op.ms >= 0 and op.name and op.type and op.calls > 0):
            _fail(what, f"profile_ops() gave an op that is not a time: {op!r}")
    json.dumps(profile.to_dict())  # it goes into results.json


def _check_backend_class(cls: type, what: str) -> None:
    """The class's declared attributes and its answers on devices and precisions."""
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        _fail(what, "is not a subclass of edge_opt.runtimes.base.Backend")
    if not isinstance(cls.name, str) or not cls.name or cls.name == "base":
        _fail(what, f"sets no name of its own (name = {cls.name!r})")
    if not cls.formats or not set(cls.formats) <= {*FORMATS, "none"}:
        _fail(what, f"formats {cls.formats!r} must be a non-empty subset of {(*FORMATS, 'none')}")
    if cls.timer not in ("wall", "runtime"):
        _fail(what, f"timer must be 'wall' or 'runtime', not {cls.timer!r}")
    for device in ("cpu", "no-such-device"):
        reason = cls.unavailable(device)
        if reason is not None and not (isinstance(reason, str) and reason):
            _fail(what, f"unavailable({device!r}) must return None or a reason, got {reason!r}")
    if cls.unavailable("no-such-device") is None:
        _fail(what, "claims to run on a device named 'no-such-device'")
    for precision in ("fp32", "bf16", "fp16"):
        reason = cls.cannot_run("cpu", precision)
        if precision not in cls.precisions and not reason:
            _fail(what, f"does not offer {precision} but cannot_run('cpu', {precision!r}) gives no reason")


def _check_missing_model(cls: type, model: str | Path | None, what: str) -> None:
    """Loading a file that does not exist raises an EdgeOptError."""
    backend = cls(threads=1, device="cpu")
    try:
        backend.load("/nonexistent/model-file")
    except EdgeOptError:
        pass
    except Exception as exc:  # noqa: BLE001 - the point of the check
        _fail(what, f"a missing model file must raise an EdgeOptError (exit 2), not {type(exc).__name__}: {exc}")
    else:
        if model is not None:
            _fail(what, "loaded a file that does not exist")


def _loaded_backend(cls: type, model: str | Path | None, shapes: dict | None, what: str) -> tuple[Any, list]:
    """A backend loaded with static shapes (batch 1 for dynamic inputs), and its checked inputs."""
    backend = cls(threads=1, device="cpu")
    backend.load(None if model is None else str(model), shapes)
    specs = backend.inputs()
    if shapes is None and any(s.dynamic for s in specs):  # as the harness does: batch 1, in place or a fresh load
        shapes = {s.name: tuple(1 if d < 0 else d for d in s.shape) for s in specs}
        if not backend.reshaped_in_place(shapes):
            backend = cls(threads=1, device="cpu")
            backend.load(None if model is None else str(model), shapes)
        specs = backend.inputs()
    if not specs or not all(isinstance(s, TensorSpec) for s in specs):
        _fail(what, f"inputs() must list TensorSpecs, got {specs!r}")
    if any(s.dynamic for s in specs):
        _fail(what, f"after load with shapes {shapes!r}, inputs still dynamic: {specs!r}")
    return backend, specs


def _check_predict(backend: Any, x: np.ndarray, what: str) -> None:
    """``predict`` gives a finite float row per input row, the same twice, the same alone as in a batch."""
    y1, y2 = backend.predict(x), backend.predict(x)
    if not isinstance(y1, np.ndarray) or len(y1) != len(x):
        _fail(what, f"predict() of {len(x)} rows must give {len(x)} rows, got {getattr(y1, 'shape', y1)!r}")
    if y1.dtype.kind != "f" or not np.all(np.isfinite(y1)):
        _fail(what, f"predict() must give finite floats, got dtype {y1.dtype}")
    if not np.array_equal(y1, y2):
        _fail(what, "predict() of the same rows twice gave different outputs")
    if len(x) > 1 and not np.allclose(backend.predict(x[:1]), y1[:1], atol=1e-5):
        _fail(what, "predict() of one row differs from the same row inside a batch")


# --- passes ---------------------------------------------------------------------------


def _perturbed(arr: np.ndarray) -> np.ndarray:
    out = np.array(arr, dtype=np.float32, copy=True)
    out.flat[0] += 1.0
    return out


def check_pass(cls: type, parent: Any, config: dict, ctx: Any, out_dir: Path, *, apply: bool = True) -> None:
    """A Pass class: declared attributes, an ``identity`` that covers every input that changes
    the output, and an ``apply`` that publishes a new artifact without touching its input.

    ``parent`` is an artifact of one of ``cls.inputs``; ``ctx`` a PassContext with whatever
    the pass uses (calibration rows, training data). With ``apply=False`` only the cheap
    checks run.
    """
    what = f"pass {getattr(cls, 'name', cls)!r}"
    _check_pass_class(cls, what)
    p = cls()
    cfg = p.config(config)
    _check_repairs(cls, p, cfg, what)
    rows = _check_identity(cls, p, cfg, ctx, what)
    if not apply:
        return

    _check_refuses_other_inputs(cls, p, parent, config, ctx, out_dir, what)
    before = dict(parent.manifest)
    out = p.apply(parent, config, out_dir, ctx)
    if parent.manifest != before or verify(parent):
        _fail(what, "changed its input artifact")
    if out.format != cls.output or not out.model_path.is_file() or verify(out):
        _fail(what, f"published {out.format} {out.model_path}, not an intact {cls.output} artifact")
    if out.parent != parent.id or out.manifest["pass"] != cls.name:
        _fail(what, "the manifest does not name its parent and pass")
    if out.manifest["precision"] != p.precision(cfg) or out.manifest["label"] is None:
        _fail(what, "the manifest's precision is not the one the pass declares")
    again = p.apply(parent, config, out_dir, ctx)
    if again.id != out.id:
        _fail(what, "the same inputs gave another artifact id")
    if rows != 0 and ctx.calibration is not None:
        other = p.apply(parent, config, out_dir, replace(ctx, calibration=_perturbed(ctx.calibration)))
        if other.id == out.id:
            _fail(what, "other calibration rows returned the same (stale) artifact")


def _check_repairs(cls: type, p: Any, cfg: Any, what: str) -> None:
    """``fallback``, ``relaxations`` and ``backoff`` (the repair loop's hooks) give configs of the
    pass's own ``Config``, each different from ``cfg``; a fallback of no layer changes nothing, and
    backing one layer off ends."""
    gentler = p.relaxations(cfg)
    if not isinstance(gentler, list) or not all(isinstance(c, cls.Config) and c != cfg for c in gentler):
        _fail(what, "relaxations() must return a list of other configs of its Config")
    same = p.fallback(cfg, ())
    if same is not None and (not isinstance(same, cls.Config) or same != cfg):
        _fail(what, "fallback(cfg, ()) must return None or cfg itself (no layer left in float)")
    gentler, steps = cfg, 0
    while (gentler := p.backoff(cfg, "dense")) is not None:  # one layer backed off until it cannot be
        if not isinstance(gentler, cls.Config) or gentler == cfg:
            _fail(what, "backoff(cfg, layer) must return None or another config of its Config")
        cfg, steps = gentler, steps + 1
        if steps > 64:
            _fail(what, "backoff(cfg, layer) never ends: the repair loop could back one layer off forever")


def _check_pass_class(cls: type, what: str) -> None:
    """The class's declared attributes: name, Config, inputs, output, description, uses, registry."""
    if not (isinstance(cls, type) and issubclass(cls, Pass)):
        _fail(what, "is not a subclass of edge_opt.passes.base.Pass")
    if not cls.name or cls.name == "pass":
        _fail(what, "sets no name of its own")
    if not (isinstance(cls.Config, type) and issubclass(cls.Config, PassConfig)):
        _fail(what, "Config must be a PassConfig subclass (frozen, extra fields forbidden)")
    if not cls.inputs or not set(cls.inputs) <= set(MODEL_FILES):
        _fail(what, f"inputs {cls.inputs!r} must be a non-empty subset of {tuple(MODEL_FILES)}")
    if cls.output not in MODEL_FILES:
        _fail(what, f"output {cls.output!r} must be one of {tuple(MODEL_FILES)}")
    if not cls.description:
        _fail(what, "has no description (shown in the docs and by `edge-opt targets`)")
    if not set(cls.uses) <= {"calibration", "data"}:
        _fail(what, f"uses {cls.uses!r}: only 'calibration' and 'data' are known context inputs")
    if cls.name in pass_names() and pass_class(cls.name) is not cls and not issubclass(cls, pass_class(cls.name)):
        _fail(what, f"the registry maps {cls.name!r} to another class")


def _check_identity(cls: type, p: Any, cfg: Any, ctx: Any, what: str) -> int:
    """``identity`` is deterministic and follows exactly the inputs the pass uses; the calibration rows it reads."""
    ident = p.identity(cfg, ctx)
    if ident != p.identity(cfg, ctx):
        _fail(what, "identity() is not deterministic")
    json.dumps(ident)  # hashed canonically into the artifact id
    rows = p.calibration_rows(cfg) if "calibration" in cls.uses else 0
    if ctx.calibration is not None:
        changed = p.identity(cfg, replace(ctx, calibration=_perturbed(ctx.calibration)))
        if rows != 0 and changed == ident:
            _fail(what, "uses calibration rows, but changing them does not change its identity")
        if rows == 0 and changed != ident:
            _fail(what, "does not read calibration rows with this config, but they change its identity")
    if "data" in cls.uses and ctx.data is not None:
        data = ctx.data
        other = replace(data, x_train=_perturbed(data.x_train))
        if p.identity(cfg, replace(ctx, data=other)) == ident:
            _fail(what, "trains on data, but changing the training rows does not change its identity")
        if p.identity(cfg, replace(ctx, seed=ctx.seed + 1)) == ident:
            _fail(what, "trains on data, but changing the seed does not change its identity")
    return rows


def _check_refuses_other_inputs(
    cls: type, p: Any, parent: Any, config: dict, ctx: Any, out_dir: Path, what: str
) -> None:
    """``apply`` on a file format the pass does not take raises UnsupportedTargetError."""
    wrong = next((f for f in MODEL_FILES if f not in cls.inputs), None)
    if wrong is not None:
        fake = replace(parent, manifest={**parent.manifest, "format": wrong})
        try:
            p.apply(fake, config, out_dir, ctx)
        except UnsupportedTargetError:
            pass
        else:
            _fail(what, f"accepted a {wrong} input though its inputs are {cls.inputs}")


# --- trust checks ---------------------------------------------------------------------


def check_trust_check(check: Any, inputs: Any, deployed: Any, config: dict | None = None) -> None:
    """A TrustCheck: declared attributes, a result per file with a flat numeric ``summary``,
    the same summary twice for the same seed, and zero deltas when the file *is* the float model.

    ``inputs`` is a CheckInputs (the float model as ``reference``), ``deployed`` a Predictor
    of a deployed file of that model.
    """
    from pydantic import BaseModel

    what = f"trust check {getattr(check, 'name', check)!r}"
    if not isinstance(check, TrustCheck):
        _fail(what, "is not an instance of edge_opt.analysis.trust.TrustCheck")
    if not check.name or check.name == "check" or "." in check.name:
        _fail(what, "needs a name of its own without dots (the gate's metrics are <name>.<key>)")
    if not (isinstance(check.Config, type) and issubclass(check.Config, BaseModel)) or check.Config is BaseModel:
        _fail(what, "Config must be its own pydantic model (the suite's checks.<name> block)")
    if not check.description:
        _fail(what, "has no description")
    cfg = check.Config.model_validate(config or {})
    reason = check.unavailable(inputs.data)
    if reason is not None:
        if not (isinstance(reason, str) and reason):
            _fail(what, f"unavailable() must return None or a reason, got {reason!r}")
        return
    subjects = [Subject("deployed", "deployed", deployed), Subject("float", "float", inputs.reference)]
    res = check.run(subjects, inputs, cfg)
    if not isinstance(res, TrustResult) or set(res.per_subject) != {"deployed", "float"}:
        _fail(what, f"run() must give a TrustResult with one result per subject, got {type(res).__name__}")
    for sid, result in res.per_subject.items():
        summary = result.get("summary")
        if not isinstance(summary, dict) or not summary:
            _fail(what, f"the result for {sid!r} has no summary")
        for key, value in summary.items():
            if not (isinstance(key, str) and re.fullmatch(r"[A-Za-z_][\w.@]*", key)):
                _fail(what, f"summary key {key!r} cannot be named in a gate check ({check.name}.<key>)")
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                _fail(what, f"summary[{key!r}] must be a number or None, got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                _fail(what, f"summary[{key!r}] is not finite: {value}")
    json.dumps({"per_subject": res.per_subject, "shared": res.shared}, default=_default)  # goes into results.json
    float_summary = res.per_subject["float"]["summary"]
    for key, expected in check.zero_deltas.items():
        got = float_summary.get(key)
        if got is None or not math.isclose(got, expected, abs_tol=1e-6):
            _fail(what, f"on the float model itself, {key} must be {expected}, got {got!r}")
    again = check.run(subjects[:1], inputs, cfg)

    def repeatable(summary: dict) -> dict:
        return {k: v for k, v in summary.items() if k not in check.timing_keys}

    if repeatable(again.per_subject["deployed"]["summary"]) != repeatable(res.per_subject["deployed"]["summary"]):
        _fail(what, "two runs with the same seed gave different summaries")


# --- transports -----------------------------------------------------------------------


def check_transport(transport, model: str | Path, x: np.ndarray, tmp: str | Path) -> None:
    """A Transport (``edge_opt.transports.base``): put is content-addressed, run measures a
    model and brings its predictions back, a bad spec and a timeout are results (not raises),
    fingerprint and conditions describe the device. ``model`` is a .tflite file, ``x`` rows
    it reads, ``tmp`` an empty local folder."""
    what = f"transport {getattr(transport, 'name', transport)!r}"
    tmp = Path(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    for attr in ("name", "put", "run", "usable_cpus", "fingerprint", "conditions", "close"):
        if not hasattr(transport, attr):
            _fail(what, f"has no {attr}")
    first, again = transport.put(model), transport.put(model)
    if not isinstance(first, str) or first != again:
        _fail(what, f"put of the same file must give the same path twice, got {first!r} then {again!r}")
    np.save(tmp / "x.npy", np.ascontiguousarray(x, dtype=np.float32))
    spec = {
        "model": first,
        "runtime": "litert",
        "threads": 1,
        "shapes": {},
        "default_batch": 1,
        "min_runs": 3,
        "min_time_s": 0.0,
        "warmup_runs": 1,
        "max_time_s": 30.0,
        "data": transport.put(tmp / "x.npy"),
        "predictions_out": "pred.npy",
    }
    spec = _reshaped(transport, spec, tmp)
    _check_good_run(transport, spec, x, tmp, what)
    _check_failed_runs(transport, spec, tmp, what)

    info = transport.fingerprint()
    for key in ("cpu", "cores", "os", "memory_gb", "python", "versions", "conditions"):
        if key not in info:
            _fail(what, f"fingerprint lacks {key!r}")
    if not isinstance(transport.conditions(), dict) or transport.usable_cpus() < 1:
        _fail(what, "conditions must be a dict and usable_cpus at least 1")


def _check_good_run(transport, spec: dict, x: np.ndarray, tmp: Path, what: str) -> None:
    """A good spec gives an ok result: the worker's samples and predictions, or a tool's summary."""
    result = transport.run(spec, 120.0, tmp)
    if not isinstance(result, WorkerResult) or result.status != "ok":
        _fail(what, f"run of a good spec must give an ok WorkerResult, got {result!r}")
    if getattr(transport, "runs_worker", True):
        if len(result.raw.get("samples_ms") or []) < 3:
            _fail(what, "run must bring back the worker's samples")
        if not (tmp / "pred.npy").is_file() or len(np.load(tmp / "pred.npy")) != len(x):
            _fail(what, "run must bring the predictions file back into local_dir, one row per input row")
    else:  # a device's own tool (adb: benchmark_model): its summary, said to be one, and no invented samples
        summary = result.raw.get("latency_summary_ms") or {}
        if result.raw.get("samples_ms") or not summary.get("samples", "").startswith("unavailable"):
            _fail(what, "a tool that prints only a summary must give latency_summary_ms, samples unavailable")
        if not (summary.get("n") or 0) >= 3 or not summary.get("mean"):
            _fail(what, f"the tool's summary must count the runs asked for and give their mean, got {summary}")
        if (result.raw.get("runtime") or {}).get("threads") != 1:
            _fail(what, "the record must say how many threads the tool ran")


def _check_failed_runs(transport, spec: dict, tmp: Path, what: str) -> None:
    """A missing model and a run past its timeout are failed results with their reason, not raises."""
    bad = transport.run({**spec, "model": "/nonexistent/model.tflite", "data": None, "predictions_out": None}, 60, tmp)
    if bad.status != "failed" or not bad.error:
        _fail(what, f"a missing model must be a failed result with its reason, got {bad.status}: {bad.error}")

    slow = {
        **spec,
        "min_runs": 10**9,
        "max_runs": 10**12,
        "min_time_s": 600.0,
        "max_time_s": 600.0,
        "data": None,
        "predictions_out": None,
    }
    hung = transport.run(slow, 3.0, tmp)
    if hung.status != "failed" or "timed out" not in (hung.error or ""):
        _fail(what, f"a worker past its timeout must be a failed result saying so, got {hung.status}: {hung.error}")


def _reshaped(transport, spec: dict, tmp: Path) -> dict:
    """The spec with fixed shapes, as the harness makes it when the model's batch is dynamic."""
    first = transport.run({**spec, "data": None, "predictions_out": None}, 120.0, tmp)
    if first.status == "reshape":
        return {**spec, "shapes": first.raw["shapes"], "shapes_final": True}
    return spec
