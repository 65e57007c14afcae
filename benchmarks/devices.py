"""Figures for devices and transports.

ssh: the same model measured on this machine through the local transport and through ssh to
127.0.0.1 (a real sshd), medians side by side; the transport stays outside the timed loop, so
the ratio should be 1.00 +- 0.05.
ray: the wall time of a matrix of measurements under ``--engine ray`` with one device, then
with two (two "devices" of this machine, each pinned to its own core, as two nodes of a
ray.cluster_utils.Cluster); measurement-bound, two devices should take about half the time.
Run: PYTHONPATH=. python benchmarks/devices.py [--part ssh|ray|all] [--rounds 5] [--min-time 1.0] [--jobs 6]
Smoke test: ``--smoke`` (or EDGE_OPT_BENCH_SMOKE=1): 500 training rows, 1 round, 2 jobs, 0.01 s windows, few runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
SMOKE = os.environ.get("EDGE_OPT_BENCH_SMOKE") == "1"  # the same as --smoke


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5, help="alternating local/ssh measurements each")
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds of timed runs per measurement")
    ap.add_argument("--part", choices=["ssh", "ray", "all"], default="all")
    ap.add_argument("--jobs", type=int, default=6, help="measurements in the Ray matrix")
    ap.add_argument("--smoke", action="store_true", default=SMOKE, help="tiny sizes, for a smoke test")
    args = ap.parse_args()
    rows, few = 2000, {}
    if args.smoke:  # the same steps at tiny sizes
        args.rounds, args.min_time, args.jobs = 1, 0.01, 2
        rows, few = 500, {"min_runs": 5, "warmup_runs": 1}
    if args.part in ("ray", "all"):
        ray_figures(args.jobs, args.min_time, rows, few)
    if args.part == "ray":
        return

    from edge_opt.datasets import load_dataset
    from edge_opt.measure.devices import Device
    from edge_opt.measure.harness import HarnessOptions, measure
    from edge_opt.models import ModelConfig, train_artifact
    from edge_opt.passes import PassContext, get_pass
    from tests import sshd

    reason = sshd.available()
    if reason:
        sys.exit(f"devices.py: {reason}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = load_dataset("adult", train_rows=rows)
        root = train_artifact(ModelConfig(hidden=[1024, 1024], epochs=1), data, "bench", tmp / "art")
        ctx = PassContext(target="cpu", calibration=data.calibration(32), calibration_source="bench")
        model = get_pass("tflite").apply(root, {"precision": "fp32"}, tmp / "art", ctx).model_path
        server = sshd.start_sshd(tmp / "sshd")
        device = Device(server.device(workdir=tmp / "remote"))
        opts = HarnessOptions(**{"min_runs": 200, "min_time_s": args.min_time, "warmup_runs": 50, **few})
        local, remote = [], []
        try:
            for _ in range(args.rounds):
                local.append(measure(model, "litert", default_batch=1, options=opts).latency_ms["p50"])
                remote.append(device.measure(model, "litert", default_batch=1, options=opts).latency_ms["p50"])
        finally:
            device.close()
            server.stop()
    lm, rm = statistics.median(local), statistics.median(remote)
    print(f"model: MLP 108-1024-1024-1, LiteRT fp32, 1 thread; {args.rounds} alternating measurements each")
    for label, values, med in (("local transport", local, lm), ("ssh 127.0.0.1", remote, rm)):
        each = ", ".join(f"{v * 1000:.2f}" for v in values)
        print(f"{label:16} median of p50s: {med * 1000:.2f} us  (each: {each})")
    print(f"ratio ssh/local: {rm / lm:.3f}")


def ray_figures(jobs: int, min_time: float, rows: int = 2000, few: dict | None = None) -> None:
    """``rows``: training rows; ``few``: HarnessOptions overriding the runs (--smoke)."""
    import time

    from edge_opt.measure.ray_engine import LOOPBACK, local_only

    local_only()  # before Ray is imported: its nodes listen and connect on 127.0.0.1 only
    try:
        import ray
        from ray.cluster_utils import Cluster
    except ImportError:
        sys.exit("devices.py: the ray part needs Ray: pip install 'edge-opt[ray]'")
    from edge_opt.datasets import load_dataset
    from edge_opt.measure.devices import DeviceConfig
    from edge_opt.measure.harness import HarnessOptions
    from edge_opt.measure.ray_engine import RayEngine
    from edge_opt.models import ModelConfig, train_artifact
    from edge_opt.passes import PassContext, get_pass

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        sys.exit("devices.py: the ray part needs 2 CPUs (one per device)")
    small = {"num_cpus": 1, "object_store_memory": 80 * 1024**2}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = load_dataset("adult", train_rows=rows)
        root = train_artifact(ModelConfig(hidden=[256, 256], epochs=1), data, "bench", tmp / "art")
        ctx = PassContext(target="cpu", calibration=data.calibration(32), calibration_source="bench")
        model = get_pass("tflite").apply(root, {"precision": "fp32"}, tmp / "art", ctx).model_path
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                **small,
                "resources": {"device:a": 1},
                "include_dashboard": False,
            },
        )
        cluster.add_node(**small, resources={"device:b": 1}, node_ip_address=LOOPBACK)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False, _node_ip_address=LOOPBACK)
        devices = [DeviceConfig(name="a", core_mask=str(cpus[0])), DeviceConfig(name="b", core_mask=str(cpus[-1]))]
        opts = HarnessOptions(**{"min_runs": 50, "min_time_s": min_time, "warmup_runs": 10, **(few or {})})
        kwargs = {"default_batch": 1, "options": opts}
        walls = {}
        try:
            engine = RayEngine(devices)
            engine.measure_many([("a", model, "litert", kwargs), ("b", model, "litert", kwargs)])  # warm the actors
            for n in (1, 2):
                names = ["a", "b"][:n]
                matrix = [(names[i % n], model, "litert", kwargs) for i in range(jobs)]
                t0 = time.perf_counter()
                results = engine.measure_many(matrix)
                walls[n] = time.perf_counter() - t0
                bad = [r.error for r in results if r.status != "ok"]
                if bad:
                    sys.exit(f"devices.py: a measurement failed: {bad[0]}")
            engine.close()
        finally:
            ray.shutdown()
            cluster.shutdown()
    print(f"ray: {jobs} measurements (MLP 108-256-256-1, LiteRT fp32, 1 thread, >= {min_time} s timed each)")
    print(f"ray: one device {walls[1]:.1f} s, two devices {walls[2]:.1f} s; speed-up {walls[1] / walls[2]:.2f}x")


if __name__ == "__main__":
    main()
