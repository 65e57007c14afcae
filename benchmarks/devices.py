"""Figures for devices and transports: the same model measured on this machine through the
local transport and through ssh to 127.0.0.1 (a real sshd), medians side by side.

The transport stays outside the timed loop, so the ratio should be 1.00 +- 0.05.
Run: PYTHONPATH=. python benchmarks/devices.py [--rounds 5] [--min-time 1.0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5, help="alternating local/ssh measurements each")
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds of timed runs per measurement")
    args = ap.parse_args()

    from edge_opt.bench.harness import HarnessOptions, measure
    from edge_opt.datasets import load_dataset
    from edge_opt.devices import Device
    from edge_opt.models import ModelConfig, train_artifact
    from edge_opt.passes import PassContext, get_pass
    from tests import sshd

    reason = sshd.available()
    if reason:
        sys.exit(f"devices.py: {reason}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = load_dataset("adult", train_rows=2000)
        root = train_artifact(ModelConfig(hidden=[1024, 1024], epochs=1), data, "bench", tmp / "art")
        ctx = PassContext(target="cpu", calibration=data.calibration(32), calibration_source="bench")
        model = get_pass("tflite").apply(root, {"precision": "fp32"}, tmp / "art", ctx).model_path
        server = sshd.start_sshd(tmp / "sshd")
        device = Device(server.device(workdir=tmp / "remote"))
        opts = HarnessOptions(min_runs=200, min_time_s=args.min_time, warmup_runs=50)
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


if __name__ == "__main__":
    main()
