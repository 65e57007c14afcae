"""The curse-of-dimensionality curve on Adult: accuracy, latency and size against kept dimensions.

For each kept dimension the reduction is fitted, folded into the graph, the head retrained,
the model converted to fp32 LiteRT and measured: accuracy on the test split (through LiteRT),
p50 latency at batch 1 (edge-opt's harness, a fresh process each) and the .tflite size.
"None" is the parent itself, all 108 features.

    python benchmarks/dimensionality_study.py [--quick] [--method pca|ica|select] [--out DIR]

Smoke test: ``--smoke`` (or EDGE_OPT_BENCH_SMOKE=1): 300 training rows, MLP [16], 1 epoch, 2 kept dimensions, few runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from edge_opt.datasets import load_dataset
from edge_opt.measure.harness import HarnessOptions, measure
from edge_opt.models import ModelConfig, predicted_labels, train_artifact
from edge_opt.passes import PassContext, get_pass
from edge_opt.passes.reduce import FeatureSelectPass, ICAPass, PCAPass
from edge_opt.runtimes import get_backend_class

FULL = {"train_rows": None, "model": ModelConfig(), "dims": [2, 4, 8, 16, 32, 48, 64, 80, 96]}
QUICK = {"train_rows": 4000, "model": ModelConfig(hidden=[64, 32], epochs=3, batch_size=64), "dims": [2, 8, 32, 64]}
TIMING = HarnessOptions(min_runs=50, min_time_s=0.5)
# --smoke: the same steps at tiny sizes, whichever mode (its figures mean nothing)
SMOKE_PLAN = {"train_rows": 300, "model": ModelConfig(hidden=[16], epochs=1, batch_size=64), "dims": [2]}
SMOKE_TIMING = HarnessOptions(min_runs=5, min_time_s=0.01, warmup_runs=1)
SMOKE = os.environ.get("EDGE_OPT_BENCH_SMOKE") == "1"  # the same as --smoke


def reduction(method: str, kept: int, n_features: int, model: ModelConfig):
    """The pass and config keeping ``kept`` dimensions; the head trains as the parent did."""
    head = {"epochs": model.epochs, "batch_size": model.batch_size, "learning_rate": model.learning_rate}
    if method == "select":
        return FeatureSelectPass(), {"least_important": n_features - kept, **head}
    return {"pca": PCAPass, "ica": ICAPass}[method](), {"components": kept, **head}


def evaluate(keras_artifact, data, out: Path, window: HarnessOptions = TIMING) -> dict:
    tfl = get_pass("tflite").apply(keras_artifact, {"precision": "fp32"}, out, PassContext())
    backend = get_backend_class("litert")()
    backend.load(str(tfl.model_path))
    accuracy = float((predicted_labels(backend.predict(data.x_test), data.n_classes) == data.y_test).mean())
    timing = measure(tfl.model_path, "litert", options=window)
    if timing.status != "ok":
        raise RuntimeError(f"latency measurement failed: {timing.error}")
    return {"accuracy": accuracy, "p50_us": timing.latency_ms["p50"] * 1e3, "kib": tfl.model_path.stat().st_size / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4000 training rows, a small MLP, 4 dimensions")
    parser.add_argument("--method", choices=("pca", "ica", "select"), default="pca")
    parser.add_argument("--out", type=Path, help="keep the artifacts here (default: a temporary folder)")
    parser.add_argument("--smoke", action="store_true", default=SMOKE, help="tiny sizes, for a smoke test")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    timing = TIMING
    if args.smoke:  # the mode's rows must exist; then its steps at tiny sizes
        load_dataset("adult", train_rows=plan["train_rows"])
        plan, timing = SMOKE_PLAN, SMOKE_TIMING
    start = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="edge-opt-dims-") as tmp:
        out = args.out or Path(tmp)
        data = load_dataset("adult", train_rows=plan["train_rows"])
        model_cfg: ModelConfig = plan["model"]
        parent = train_artifact(model_cfg, data, "adult-dims", out)
        ctx = PassContext(data=data, seed=0)
        n = data.x_train.shape[1]
        rows = []
        for kept in [*plan["dims"], None]:
            if kept is None:
                art, extra = parent, "-"
            else:
                pass_, cfg = reduction(args.method, kept, n, model_cfg)
                art = pass_.apply(parent, cfg, out, ctx)
                variance = art.manifest["notes"].get("explained_variance")
                extra = f"{variance:.3f}" if variance is not None else "-"
            rows.append((kept or n, extra, evaluate(art, data, out, timing)))
            print(f"  kept {kept or n:>3}: done at {time.perf_counter() - start:5.1f} s", file=sys.stderr, flush=True)

    print(f"\nAdult, {args.method}: {len(data.x_train)} train rows, MLP {model_cfg.hidden}, {model_cfg.epochs} epochs")
    print(f"{'kept':>5} {'expl.var':>8} {'test acc':>8} {'p50 µs':>8} {'tflite KiB':>10}")
    for kept, extra, r in rows:
        print(f"{kept:>5} {extra:>8} {r['accuracy']:>8.4f} {r['p50_us']:>8.2f} {r['kib']:>10.1f}")
    base = rows[-1][2]["accuracy"]
    best = max(rows[:-1], key=lambda row: row[2]["accuracy"])
    print(f"best reduced: {best[0]} dims, {best[2]['accuracy'] - base:+.4f} accuracy vs all {n} features")
    print(f"total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
