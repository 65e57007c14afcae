"""edge-opt's harness side by side with the vendors' own benchmark tools.

For each model (0.1 ms to 10 ms per inference, plus the tiny Adult MLP), on the same file
and thread count, alternating A B A B:
  LiteRT:   edge-opt (litert-compiled: CompiledModel, the API litert-benchmark times)
            and edge-opt (litert: the classic Interpreter)    vs  litert-benchmark
  OpenVINO: edge-opt (openvino backend, request latency)     vs  benchmark_app (sync, 1 stream)
and prints the ratio of medians (edge-opt / vendor; the goal is 0.95-1.05 from 0.1 ms to
10 ms). The harness's fidelity is the same-API rows; the Interpreter row shows how the two
LiteRT APIs differ on the same file. Also prints the NullBackend's per-call overhead.

    python benchmarks/compare_vendors.py [--rounds 3] [--threads 1] [--quick]

Smoke test: ``--smoke`` (or EDGE_OPT_BENCH_SMOKE=1): one model (cnn 64x64x3), 1 round, 0.01 s windows.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edge_opt.measure.harness import HarnessOptions, measure

HERE = Path(__file__).resolve().parent
SMOKE = os.environ.get("EDGE_OPT_BENCH_SMOKE") == "1"  # the same as --smoke
SMOKE_MODEL = "cnn 64x64x3"  # --smoke's one model: over 0.1 ms anywhere, so every line of the report prints


def build_models(folder: Path, quick: bool, smoke: bool = False) -> dict[str, tuple[Path, Path, list[int]]]:
    """Keras models spanning 0.1-10 ms on one core → fp32 .tflite and fp32 OpenVINO IR."""
    import openvino as ov

    from edge_opt.core.tfkeras import keras, tf

    k = keras()
    k.utils.set_random_seed(0)

    def cnn(size: int, filters: int) -> tuple[list[int], list]:
        return [size, size, 3], [
            k.layers.Conv2D(filters, 3, activation="relu"),
            k.layers.MaxPooling2D(),
            k.layers.Conv2D(2 * filters, 3, activation="relu"),
            k.layers.GlobalAveragePooling2D(),
            k.layers.Dense(10),
        ]

    specs = {
        "adult-mlp 256-128": ([108], [k.layers.Dense(256, "relu"), k.layers.Dense(128, "relu"), k.layers.Dense(1)]),
        "mlp 1024-1024": ([512], [k.layers.Dense(1024, "relu"), k.layers.Dense(1024, "relu"), k.layers.Dense(10)]),
        "cnn 32x32x3": cnn(32, 16),
        "cnn 64x64x3": cnn(64, 32),
        "cnn 128x128x3": cnn(128, 48),
    }
    if quick:
        specs.pop("cnn 128x128x3")
    if smoke:
        specs = {SMOKE_MODEL: specs[SMOKE_MODEL]}
    models = {}
    for i, (name, (shape, layers)) in enumerate(specs.items()):
        model = k.Sequential([k.Input(shape=shape, batch_size=1), *layers])
        tflite = folder / f"m{i}.tflite"
        tflite.write_bytes(tf().lite.TFLiteConverter.from_keras_model(model).convert())
        ir = folder / f"m{i}.xml"
        ov.save_model(ov.convert_model(str(tflite)), str(ir), compress_to_fp16=False)
        models[name] = (tflite, ir, [1, *shape])
    return models


def edge_opt_p50(model: Path, runtime: str, threads: int, min_time: float) -> float:
    res = measure(model, runtime, threads=threads, options=HarnessOptions(min_runs=100, min_time_s=min_time))
    if res.status != "ok":
        raise SystemExit(f"edge-opt {runtime} failed on {model}: {res.error}")
    # Vendor parity: a runtime's own timer where it has one (OpenVINO, as benchmark_app reports it);
    # the wall clock around the call otherwise (what LiteRT's tool times too).
    return (res.runtime_latency_ms or res.latency_ms)["p50"]


def litert_tool_median(model: Path, threads: int, runs: int) -> float:
    cmd = [
        sys.executable,
        str(HERE / "vendor_litert.py"),
        f"--model={model}",
        f"--num_threads={threads}",
        f"--num_runs={runs}",
        "--warmup_runs=10",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    import json

    return json.loads(out.split("JSON:", 1)[1])["median_ms"]


def benchmark_app_median(model: Path, shape: list[int], threads: int, runs: int) -> float:
    tool = Path(sys.executable).parent / "benchmark_app"
    cmd = [
        str(tool),
        "-m",
        str(model),
        "-d",
        "CPU",
        "-hint",
        "none",
        "-api",
        "sync",
        "-nstreams",
        "1",
        "-nthreads",
        str(threads),
        "-niter",
        str(runs),
        "-shape",
        str(shape).replace(" ", ""),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    value, unit = re.search(r"Median:\s+([\d.]+) (us|ms)", out).groups()
    return float(value) / (1000 if unit == "us" else 1)


def runs_for(p50_ms: float, seconds: float) -> int:
    return int(min(20000, max(100, seconds * 1000 / max(p50_ms, 1e-3))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2 rounds, no 10 ms model, 0.5 s windows")
    parser.add_argument("--smoke", action="store_true", default=SMOKE, help="tiny sizes, for a smoke test")
    args = parser.parse_args()
    rounds, window = (2, 0.5) if args.quick else (args.rounds, 1.0)
    if args.smoke:
        rounds, window = 1, 0.01

    null = measure(None, "null", shapes={"x": (1, 1)}, options=HarnessOptions(min_runs=1000, min_time_s=window))
    lat = null.latency_ms
    print(
        f"NullBackend (harness overhead per call): p50 {lat['p50'] * 1e3:.3f} us, mean {lat['mean'] * 1e3:.3f} us, "
        f"n={lat['n']}"
    )

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = build_models(Path(tmp), args.quick, args.smoke)
        for name, (tflite, ir, shape) in models.items():
            for runtime, path in (("litert-compiled", tflite), ("litert", tflite), ("openvino", ir)):
                ours, theirs = [], []
                for _ in range(rounds):  # A B A B: drift in machine load hits both alike
                    ours.append(edge_opt_p50(path, runtime, args.threads, window))
                    n = runs_for(ours[-1], window)
                    if runtime.startswith("litert"):
                        theirs.append(litert_tool_median(path, args.threads, n))
                    else:
                        theirs.append(benchmark_app_median(path, shape, args.threads, n))
                a, b = statistics.median(ours), statistics.median(theirs)
                # The paired ratio (each round's A over its own B) shrugs off slow drifts of
                # a shared machine better than the ratio of the two medians.
                paired = statistics.median(x / y for x, y in zip(ours, theirs, strict=True))
                rows.append((name, runtime, b, a, a / b, paired))
                print(
                    f"  {name:18} {runtime:15} vendor {b:9.4f} ms  edge-opt {a:9.4f} ms  "
                    f"ratio {a / b:5.3f}  paired {paired:5.3f}",
                    flush=True,
                )

    tools = {"litert": "litert-benchmark", "litert-compiled": "litert-benchmark", "openvino": "benchmark_app"}
    print(f"\nRatio of medians, edge-opt / vendor tool, {args.threads} thread(s), median of {rounds} rounds")
    print("| model | runtime | vendor tool | vendor median ms | edge-opt median ms | ratio | paired | in 0.95-1.05 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, runtime, b, a, ratio, paired in rows:
        goal = "n/a (< 0.1 ms)" if b < 0.09 else ("yes" if 0.95 <= ratio <= 1.05 else "NO")
        print(f"| {name} | {runtime} | {tools[runtime]} | {b:.4f} | {a:.4f} | {ratio:.3f} | {paired:.3f} | {goal} |")
    in_range = [r for r in rows if r[2] >= 0.09 and r[1] != "litert"]  # same API as the tool
    if in_range:
        worst = max(in_range, key=lambda r: abs(np.log(r[4])))
        print(f"\nWorst same-API ratio in the 0.1-10 ms range: {worst[4]:.3f} ({worst[0]}, {worst[1]})")


if __name__ == "__main__":
    main()
