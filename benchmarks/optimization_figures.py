"""The optimization figures: size, accuracy and latency of every technique, per task.

On the Adult MLP (>= 50k parameters) and the digits CNN, each artifact is measured on
LiteRT with 1 thread by edge-opt's harness (fresh process, accuracy on the test split):
fp32, dynamic-range, float16, full-int8 PTQ (per-channel, per-tensor, per-tensor with the
tensor names stripped), 80% pruning + int8 (PTQ and pruning-preserving QAT), weight
clustering + int8, QAT int8. Printed against the goals:

  - full-int8 / fp32 file size >= 3.5x, accuracy drop <= 0.5 points;
  - 80% pruning + int8, gzipped, >= 10x smaller than the gzipped fp32, drop <= 1 point;
  - latency of each artifact relative to fp32 (measured, not assumed).

The distillation figure has its own script: benchmarks/distillation.py.

    python benchmarks/optimization_figures.py [--quick] [--task adult|digits]

``--quick``: 4,000 Adult training rows (digits keeps all its 1,257), a third of the epochs, short windows.
Smoke test: ``--smoke`` (or EDGE_OPT_BENCH_SMOKE=1) runs every step at tiny sizes; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from edge_opt.datasets import load_dataset
from edge_opt.measure.harness import HarnessOptions, measure
from edge_opt.models import ModelConfig, predicted_labels, train_artifact
from edge_opt.passes import PassContext, get_pass

TASKS = {
    "adult": ModelConfig(kind="mlp", hidden=[256, 128], epochs=4),
    "digits": ModelConfig(kind="cnn", hidden=[32, 64], dropout=0.0, epochs=20, batch_size=32),
}

# label -> steps applied to the float model; the last step's output is measured.
PIPELINES = {
    "fp32": [("tflite", {"precision": "fp32"})],
    "dynamic-range": [("tflite", {"precision": "dynamic"})],
    "float16": [("tflite", {"precision": "fp16"})],
    "int8 (PTQ)": [("tflite", {"precision": "int8"})],
    "int8 (PTQ, per-tensor)": [("tflite", {"precision": "int8", "per_channel": False})],
    "int8 (PTQ, per-tensor, stripped)": [
        ("tflite", {"precision": "int8", "per_channel": False, "strip_names": True}),
    ],
    "int8 QAT": [("qat", {"epochs": 1})],
    "prune 80% + int8 PTQ": [("prune", {"target_sparsity": 0.8, "epochs": 2}), ("tflite", {"precision": "int8"})],
    "prune 80% + int8 PTQ per-tensor": [
        ("prune", {"target_sparsity": 0.8, "epochs": 2}),
        ("tflite", {"precision": "int8", "per_channel": False}),
    ],
    "prune 80% + int8 PTQ per-tensor, stripped": [
        ("prune", {"target_sparsity": 0.8, "epochs": 2}),
        ("tflite", {"precision": "int8", "per_channel": False, "strip_names": True}),
    ],
    "prune 80% + PQAT int8": [
        ("prune", {"target_sparsity": 0.8, "epochs": 2}),
        ("qat", {"epochs": 1, "preserve": "sparsity"}),
    ],
    "cluster 16 + int8 PTQ": [("cluster", {"number_of_clusters": 16, "epochs": 1}), ("tflite", {"precision": "int8"})],
}

# Per task, pipelines of its own: on the digits CNN, uniform 80% pruning loses 1-2 points
# (its first conv has 288 weights, all of them needed), 90% over 4; per-layer sparsity (the
# first conv dense, the rest at 90%, the output at 60%) with a longer fine-tune reaches 10x.
PRUNE_PER_LAYER = "prune 90% per layer (first conv dense) + int8 PTQ per-tensor, stripped"
OWN_PIPELINES = {
    "digits": {
        PRUNE_PER_LAYER: [
            (
                "prune",
                {
                    "target_sparsity": 0.9,
                    "include_output": True,
                    "per_layer": {"conv2d": 0.0, "dense": 0.6},
                    "epochs": 30,
                    "batch_size": 32,
                },
            ),
            ("tflite", {"precision": "int8", "per_channel": False, "strip_names": True}),
        ],
    },
}

# Training rows per task: None is the whole train split (digits has 1,257 rows, fewer than quick's 4,000).
QUICK_ROWS = {"adult": 4000, "digits": None}
SMOKE_ROWS = 256  # --smoke: this many rows, 1 epoch, a few timed runs
SMOKE = os.environ.get("EDGE_OPT_BENCH_SMOKE") == "1"  # the same as --smoke


def run_task(name: str, quick: bool, out: Path, smoke: bool = False) -> list[dict]:
    cfg = TASKS[name]
    data = load_dataset(name, train_rows=QUICK_ROWS[name] if quick else None)
    if quick:
        cfg = cfg.model_copy(update={"epochs": max(2, cfg.epochs // 3)})
    window = HarnessOptions(min_runs=100, min_time_s=0.3 if quick else 1.0)
    if smoke:  # the mode's sizes are chosen (and its rows loaded, so checked); the same steps, tiny
        data = load_dataset(name, train_rows=SMOKE_ROWS)
        cfg = cfg.model_copy(update={"epochs": 1})
        window = HarnessOptions(min_runs=5, min_time_s=0.01, warmup_runs=1)
    root = train_artifact(cfg, data, f"{name}-figures", out)
    ctx = PassContext(
        target="mobile", calibration=data.calibration(256), calibration_source=f"{name} train split", data=data
    )
    rows = []
    for label, steps in {**PIPELINES, **OWN_PIPELINES.get(name, {})}.items():
        started = time.perf_counter()
        artifact = root
        try:
            for pass_name, config in steps:
                artifact = get_pass(pass_name).apply(artifact, config, out, ctx)
        except Exception as exc:  # noqa: BLE001 - report and continue with the others
            rows.append({"label": label, "error": f"{type(exc).__name__}: {exc}"})
            continue
        res = measure(artifact.model_path, "litert", threads=1, data=data.x_test, options=window)
        if res.status != "ok":
            rows.append({"label": label, "error": res.error})
            continue
        acc = float((predicted_labels(res.predictions, data.n_classes) == data.y_test).mean())
        notes = {k: v for k, v in artifact.manifest.get("notes", {}).items() if "sparsity" in k}
        rows.append(
            {
                "label": label,
                "raw": artifact.manifest["size_bytes"]["raw"],
                "gzip": artifact.manifest["size_bytes"]["gzip"],
                "accuracy": acc,
                "p50_ms": res.latency_ms["p50"],
                "params": root.manifest["notes"].get("parameters"),
                "seconds": time.perf_counter() - started,
                "notes": notes,
            }
        )
    return rows


def report(name: str, rows: list[dict]) -> None:
    base = next(r for r in rows if r["label"] == "fp32" and "error" not in r)
    print(f"\n## {name}: {base['params']} parameters, LiteRT 1 thread, test split")
    print("| artifact | size KB | fp32/size | gzip KB | fp32 gzip/gzip | accuracy | Δ vs fp32 (pt) | p50 ms | × fp32 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['label']} | failed: {r['error']} |||||||| ")
            continue
        delta = (r["accuracy"] - base["accuracy"]) * 100
        print(
            f"| {r['label']} | {r['raw'] / 1024:.1f} | {base['raw'] / r['raw']:.2f}x | {r['gzip'] / 1024:.1f} | "
            f"{base['gzip'] / r['gzip']:.2f}x | {r['accuracy']:.4f} | {delta:+.2f} | "
            f"{r['p50_ms']:.4f} | {r['p50_ms'] / base['p50_ms']:.2f} |"
        )
    by = {r["label"]: r for r in rows if "error" not in r}
    goals = []
    for label in ("int8 (PTQ)", "int8 (PTQ, per-tensor)", "int8 (PTQ, per-tensor, stripped)", "int8 QAT"):
        if label in by:
            r = by[label]
            ratio, drop = base["raw"] / r["raw"], (base["accuracy"] - r["accuracy"]) * 100
            goals.append((f"{label} / fp32 size >= 3.5x", f"{ratio:.2f}x", ratio >= 3.5))
            goals.append((f"{label} accuracy drop <= 0.5 pt", f"{drop:+.2f} pt", drop <= 0.5))
    pruned = ("prune 80% + int8 PTQ", "prune 80% + int8 PTQ per-tensor", "prune 80% + int8 PTQ per-tensor, stripped")
    for label in (*pruned, "prune 80% + PQAT int8", PRUNE_PER_LAYER):
        if label in by:
            r = by[label]
            ratio, drop = base["gzip"] / r["gzip"], (base["accuracy"] - r["accuracy"]) * 100
            goals.append((f"{label}: gzip >= 10x smaller", f"{ratio:.2f}x", ratio >= 10))
            goals.append((f"{label}: accuracy drop <= 1 pt", f"{drop:+.2f} pt", drop <= 1))
    print("\n| goal | measured | met |\n|---|---|---|")
    for goal, value, met in goals:
        print(f"| {goal} | {value} | {'yes' if met else 'NO'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="4,000 Adult training rows (digits: all), fewer epochs, short windows"
    )
    parser.add_argument("--task", choices=sorted(TASKS), action="append")
    parser.add_argument("--smoke", action="store_true", default=SMOKE, help="tiny sizes, for a smoke test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.task or sorted(TASKS):
            report(name, run_task(name, args.quick, Path(tmp), args.smoke))


if __name__ == "__main__":
    main()
