"""The architecture search's figures: `python benchmarks/nas.py [--quick] [--out DIR]`.

Runs `edge-opt nas benchmarks/nas.yaml` (LiteRT, int8, 1 thread, the mobile profile) and prints,
per task: the headline (fastest front member within 0.5 points of the hand-designed baseline,
its speed-up), Bayesian vs random hypervolume at equal trials, the search's wall time, and the
latency predictor's share within ±10% (a prediction). `--quick` runs 6 trials instead of 20;
`--parallel N` trains N trials at once in local processes (each still measured alone), so the
wall time of the same search with 1 and with N workers can be set side by side.
Smoke test: `--smoke` (or EDGE_OPT_BENCH_SMOKE=1): nas.yaml at tiny sizes (4 trials, 200 rows, 1 epoch, few runs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edge_opt.nas.predictor import describe_accuracy

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "benchmarks" / "nas.yaml"
SMOKE = os.environ.get("EDGE_OPT_BENCH_SMOKE") == "1"  # the same as --smoke
SMOKE_TRIALS = 4  # the fewest that print every figure: the predictor fits after 3, held out needs 4


def smoke_suite(folder: Path) -> Path:
    """benchmarks/nas.yaml at tiny sizes (--smoke): the same tasks, spaces, searches and options."""
    import yaml

    suite = yaml.safe_load(SUITE.read_text())
    for task in suite["tasks"]:
        task["calibration_rows"] = 32
        task["model"].update(epochs=1, train_rows=200, val_rows=100, predictor={"after": 3})
        task["model"]["baseline"]["epochs"] = 1
    suite["harness"] = {"min_runs": 5, "min_time_s": 0.01, "warmup_runs": 1}
    path = folder / "nas.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="6 trials per search instead of 20")
    ap.add_argument("--parallel", type=int, default=None, help="trials trained at once (default: the suite's)")
    ap.add_argument("--out", type=Path, help="default: reports/nas-bench (--smoke: reports/nas-bench-smoke)")
    ap.add_argument("--smoke", action="store_true", default=SMOKE, help="tiny sizes, for a smoke test")
    args = ap.parse_args()
    # A search resumes from its folder's state: a smoke run's trials must not become the real run's.
    args.out = args.out or Path("reports/nas-bench-smoke" if args.smoke else "reports/nas-bench")
    with tempfile.TemporaryDirectory() as tmp:
        suite = smoke_suite(Path(tmp)) if args.smoke else SUITE
        cmd = [sys.executable, "-m", "edge_opt.cli", "nas", str(suite), "--out", str(args.out)]
        cmd += ["--trials", str(SMOKE_TRIALS)] if args.smoke else ["--trials", "6"] if args.quick else []
        cmd += ["--parallel", str(args.parallel)] if args.parallel else []
        started = time.perf_counter()
        subprocess.run([*cmd, "-q"], check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
    nas = json.loads((args.out / "nas-nas" / "nas.json").read_text())
    workers = f", {args.parallel} trials trained at once" if args.parallel else ""
    sizes = " at smoke sizes" if args.smoke else ""
    print(f"edge-opt nas benchmarks/nas.yaml{sizes}: {wall:.0f} s wall for every search below (this machine{workers})")
    for task, by_target in nas["tasks"].items():
        for target, r in by_target.items():
            h, rnd, p = r["headline"] or {}, r["random_search"], r["predictor"] or {}
            print(f"\n{task} on {target} ({r['trials_used']} trials of {r['grid_size']:,}; search {r['wall_s']} s)")
            if h.get("trial"):
                print(
                    f"  headline: {h['label']} acc {h['accuracy']:.4f} vs baseline {h['baseline_accuracy']:.4f}; "
                    f"p50 {h['latency_p50_ms']:.4g} vs {h['baseline_latency_p50_ms']:.4g} ms: {h['speedup']:.2f}x"
                )
                if h.get("confirmed"):
                    c = h["confirmed"]
                    print(
                        f"  confirmed, paired ({c['order']}, {c['rounds']} rounds): p50 {c['latency_p50_ms']:.4g} vs "
                        f"{c['baseline_latency_p50_ms']:.4g} ms: {c['speedup']:.2f}x"
                    )
            else:
                print("  headline: no front member within 0.5 points of the baseline")
            print(f"  hypervolume {r['oracle']}: {r['hypervolume']:.4g}", end="")
            print(f"; random at equal trials: {rnd['hypervolume']:.4g}" if rnd else "")
            print(f"  trials to target: {r['trials_to_target']}; cost s: {r['cost_s']}")
            if describe_accuracy(p):
                print(f"  predictor (a prediction): {describe_accuracy(p)}")


if __name__ == "__main__":
    main()
