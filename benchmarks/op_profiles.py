"""Per-op profiles on every runtime: how the ops' times add up against the whole model, and what
profiling costs.

Two models are built and trained here (nothing downloaded): an MLP on UCI Adult and a small CNN
on the digits images, each converted by edge-opt's own passes to TFLite fp32 and int8, ONNX and
OpenVINO IR. Each file is measured by the harness on its runtime twice, in a fresh process each:
plainly, then with its per-op profile (``HarnessOptions.ops_runs``, what ``bench --ops`` and a
run's ``checks.ops`` use). The table gives, per file and runtime:

* the whole model's p50 (the plain measurement);
* the sum of the op times, and the sum as a share of that p50 (where the times come from:
  ``ops_method``; ONNX Runtime's and OpenVINO's own profilers, or LiteRT's ops each timed alone);
* the model's time per invoke while its profiler ran (ONNX Runtime, OpenVINO: the profiler's
  overhead on the whole model), and the seconds the profile added to the measurement;
* the top op and its share.

Then ``edge-opt debug`` on the MLP with one outlier unit made on purpose (one unit of its first
hidden layer scaled 300x, the next layer's weights from it scaled down 300x: the same float
function), quantized to int8 three ways (TFLite full int8, ONNX Runtime dynamic int8, NNCF's
OpenVINO IR): the layer it ranks first, the error that layer adds against the same layer of the
clean model's file, the layer first by the scale-free error (``added/σ``), and the time the
debugger took.

    python benchmarks/op_profiles.py [--runs N] [--threads N]

About 1 minute on a shared 2-core machine. Smoke test: ``--smoke`` (or EDGE_OPT_BENCH_SMOKE=1):
a few rows, one epoch, a few invokes; figures mean nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from edge_opt.core.units import fmt_ms
from edge_opt.datasets import load_dataset
from edge_opt.measure.harness import HarnessOptions, measure
from edge_opt.models import ModelConfig, train_artifact
from edge_opt.passes import PassContext, get_pass

SMOKE = os.environ.get("EDGE_OPT_BENCH_SMOKE") == "1"

#: (name, dataset, model) of the models built here.
MODELS = [
    ("mlp 64x32", "adult", ModelConfig(hidden=[64, 32], epochs=2)),
    ("cnn 16x32", "digits", ModelConfig(kind="cnn", hidden=[16, 32], epochs=2)),
]
#: (file, pass, its config, runtime)
FILES = [
    ("tflite fp32", "tflite", {"precision": "fp32"}, "litert"),
    ("tflite int8", "tflite", {"precision": "int8"}, "litert"),
    ("onnx fp32", "onnx", {}, "onnxruntime"),
    ("openvino fp32", "openvino", {}, "openvino"),
]


def build(name: str, dataset: str, cfg: ModelConfig, out: Path) -> dict:
    """The model trained, and each file of FILES made from it by edge-opt's passes."""
    data = load_dataset(dataset, train_rows=200 if SMOKE else None)
    if SMOKE:
        cfg = cfg.model_copy(update={"epochs": 1})
    root = train_artifact(cfg, data, name.split()[0], out)
    ctx = PassContext(target="cpu", calibration=data.calibration(64), calibration_source="train rows")
    onnx = get_pass("onnx").apply(root, {}, out, ctx)
    made = {"onnx": onnx}
    files = {}
    for label, pass_name, config, runtime in FILES:
        if pass_name == "openvino":
            art = get_pass("openvino").apply(onnx, {}, out, ctx)
        else:
            art = made.get(pass_name) if not config else get_pass(pass_name).apply(root, config, out, ctx)
        files[label] = (art, runtime)
    return files


def row(model: str, label: str, art, runtime: str, options: HarnessOptions, ops_runs: int, threads: int) -> list[str]:
    """One file on its runtime: plain, then with the per-op profile."""
    t0 = time.perf_counter()
    plain = measure(art.model_path, runtime, threads=threads, options=options)
    t1 = time.perf_counter()
    profiled = measure(
        art.model_path, runtime, threads=threads, options=HarnessOptions(**{**options.to_dict(), "ops_runs": ops_runs})
    )
    t2 = time.perf_counter()
    if plain.status != "ok" or profiled.status != "ok":
        return [model, label, runtime, "failed", plain.error or profiled.error or "", "", "", "", "", ""]
    raw, p50 = profiled.raw, plain.latency_ms["p50"]
    total, whole = raw.get("ops_total_ms"), raw.get("ops_whole_ms")
    while_profiled = fmt_ms(whole) if raw.get("ops_method") != "isolated" and whole else "(file unchanged)"
    top = raw["ops"][0] if raw.get("ops") else None
    return [
        model,
        label,
        runtime,
        raw.get("ops_method") or f"none: {raw.get('ops_note')}",
        fmt_ms(p50),
        fmt_ms(total) if total is not None else "–",
        f"{total / p50:.0%}" if total else "–",
        while_profiled,
        f"{(t2 - t1) - (t1 - t0):+.1f} s",
        f"{top['type']} {top['share']:.0%}" if top else "–",
    ]


def main(argv: list[str] | None = None) -> int:
    global SMOKE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="invokes the per-op times average (default 200)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script runs, figures mean nothing")
    args = parser.parse_args(argv)
    SMOKE = SMOKE or args.smoke
    runs = 5 if SMOKE else args.runs
    options = HarnessOptions(min_runs=5, min_time_s=0.0, warmup_runs=1) if SMOKE else HarnessOptions(min_time_s=1.0)
    cpu = platform.processor() or platform.machine()
    print(f"# Per-op profiles ({cpu}, {os.cpu_count()} CPUs, {args.threads} thread(s))")
    print(f"\nThe ops' mean over {runs} invokes; p50: the whole model measured plainly.\n")
    head = [
        "model",
        "file",
        "runtime",
        "ops_method",
        "p50",
        "sum of ops",
        "sum / p50",
        "while profiled",
        "profile adds",
        "top op",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    with tempfile.TemporaryDirectory(prefix="edge-opt-ops-") as tmp:
        for name, dataset, cfg in MODELS:
            for label, (art, runtime) in build(name, dataset, cfg, Path(tmp)).items():
                print("| " + " | ".join(row(name, label, art, runtime, options, runs, args.threads)) + " |", flush=True)
        print(
            "\nsum / p50 over 100%: the ops cost more alone than together (LiteRT's isolated ops: no fusion, cold "
            "caches); under 100%: time between ops (dispatch, copies, the Python call) that no op owns."
        )
        debug_table(Path(tmp))
    return 0


def _int8_files(keras_path: Path, data, folder: Path) -> dict[str, Path]:
    """The model at ``keras_path`` as TFLite full int8, ONNX Runtime dynamic int8 and NNCF int8 IR."""
    import nncf
    import openvino as ov
    from onnxruntime.quantization import quantize_dynamic

    from edge_opt.models import load_keras
    from edge_opt.passes.convert import TFLiteConfig, onnx_bytes, tflite_bytes

    model, calib = load_keras(keras_path), data.calibration(128)
    (folder / "int8.tflite").write_bytes(tflite_bytes(model, TFLiteConfig(precision="int8"), calib))
    (folder / "fp32.onnx").write_bytes(onnx_bytes(model))
    quantize_dynamic(folder / "fp32.onnx", folder / "int8.onnx")
    rows = nncf.Dataset([row[None].astype("float32") for row in calib])
    ir = nncf.quantize(ov.Core().read_model(str(folder / "fp32.onnx")), rows, subset_size=len(calib))
    ov.save_model(ir, str(folder / "int8.xml"), compress_to_fp16=False)
    names = {"tflite int8": "int8.tflite", "ort dynamic int8": "int8.onnx", "nncf IR": "int8.xml"}
    return {label: folder / name for label, name in names.items()}


def _outlier_model(root, folder: Path) -> tuple[Path, str]:
    """``root``'s model with one unit of its first hidden layer 300x larger (same float function)."""
    import numpy as np

    from edge_opt.models import load_keras

    model = load_keras(root.model_path)
    hidden, after = [layer for layer in model.layers if layer.weights][:2]
    (w1, b1), (w2, b2) = hidden.get_weights(), after.get_weights()
    unit = int(np.argmax(np.abs(w2).sum(axis=1)))
    w1[:, unit], b1[unit], w2[unit, :] = w1[:, unit] * 300, b1[unit] * 300, w2[unit, :] / 300
    hidden.set_weights([w1, b1])
    after.set_weights([w2, b2])
    model.save(folder / "outlier.keras")
    return folder / "outlier.keras", hidden.name


def debug_table(tmp: Path) -> None:
    """edge-opt debug on the outlier MLP's int8 files: the layer ranked first, and the time."""
    from edge_opt.analysis.debugger import debug_file

    data = load_dataset("adult", train_rows=200 if SMOKE else None)
    cfg = ModelConfig(hidden=[64, 32], epochs=1 if SMOKE else 2)
    root = train_artifact(cfg, data, "mlp", tmp / "debug")
    outlier, hidden = _outlier_model(root, tmp / "debug")
    x = data.x_test[: 20 if SMOKE else 100]
    print(f"\n# edge-opt debug on the MLP with one outlier unit in `{hidden}` ({len(x)} rows)\n")
    print(
        "| file | ranked first (by added) | error it adds (outlier / clean model) | the outlier's layer | "
        "first by added/σ | the outlier's layer | debug took |"
    )
    print("|---|---|---|---|---|---|---|")
    files = {}
    for name, keras_path in (("clean", root.model_path), ("outlier", outlier)):
        (tmp / "debug" / name).mkdir(parents=True, exist_ok=True)
        files[name] = _int8_files(keras_path, data, tmp / "debug" / name)
    for label, path in files["outlier"].items():
        t0 = time.perf_counter()
        broken = debug_file(path, outlier, x)
        took = time.perf_counter() - t0
        clean = {layer.name: layer.added for layer in debug_file(files["clean"][label], root.model_path, x).layers}
        worst = broken.layers[0]
        own = max(broken.layers, key=lambda layer: layer.added_relative or -1.0)
        ratio = f"{worst.added:.3g} / {clean.get(worst.name) or 0:.3g}" if worst.added is not None else "–"
        print(
            f"| {label} | `{worst.name}` ({worst.type}) | {ratio} | {f'/{hidden}/' in worst.name} | `{own.name}` | "
            f"{f'/{hidden}/' in own.name} | {took:.1f} s |"
        )


if __name__ == "__main__":
    sys.exit(main())
