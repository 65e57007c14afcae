"""Every script in benchmarks/ runs in its documented modes, at tiny sizes, so that none rots.

Each script is run as a user runs it (a child process, from the repository root) with ``--smoke``
(or EDGE_OPT_BENCH_SMOKE=1): the mode's own steps at the smallest sizes that still execute them.
A test passes when the script exits 0 *and* prints its figures (its table headings and rows).
About 2 minutes on 2 cores, most of it each child's TensorFlow start-up; ``-m "not slow"``: under 1 minute.

They are the ``smoke`` tests: ``tox -e smoke`` runs them (CI runs it after ``tox -e test``, whose
suite leaves them out to stay within 10 minutes); a bare ``pytest`` runs them with the rest.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import sshd

pytestmark = pytest.mark.smoke

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run_script(*args: str, timeout: float = 300) -> str:
    """Run ``python <args>`` from the repository root in smoke mode; its stdout, after checking it exited 0."""
    env = dict(
        os.environ,
        EDGE_OPT_BENCH_SMOKE="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
    )
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


def assert_prints(out: str, *fragments: str) -> None:
    missing = [f for f in fragments if f not in out]
    assert not missing, f"missing {missing} in the output:\n{out[-3000:]}"


def _devices_part() -> tuple[str | None, str]:
    """devices.py's default part (all: ray, then ssh) where both can run here, else the one that can."""
    why_not = {"ssh": sshd.available(), "ray": None}
    if importlib.util.find_spec("ray") is None:
        why_not["ray"] = "Ray is not installed (pip install 'edge-opt[ray]')"
    elif len(os.sched_getaffinity(0)) < 2:
        why_not["ray"] = "the ray part needs 2 CPUs (one per device)"
    can = [part for part, reason in why_not.items() if reason is None]
    return ("all" if len(can) == 2 else can[0] if can else None), "; ".join(r for r in why_not.values() if r)


@pytest.mark.slow
def test_optimization_figures_quick_on_digits():
    # Issue 18 (c): --quick asked digits, which has 1,257 training rows, for 4,000.
    out = run_script("benchmarks/optimization_figures.py", "--quick", "--task", "digits", "--smoke")
    assert_prints(out, "## digits:", "| fp32 |", "| int8 (PTQ) |", "| prune 80% + PQAT int8 |", "| goal | measured |")
    assert_prints(out, "| cluster 16 + int8 PTQ |", "int8 QAT accuracy drop <= 0.5 pt")
    assert_prints(out, "| prune 90% per layer (first conv dense) + int8 PTQ per-tensor, stripped |")
    assert "failed:" not in out, out  # a pipeline that raises is reported as a row, not as an exit code


@pytest.mark.skipif(not (BIN / "benchmark_app").exists(), reason="OpenVINO's benchmark_app is not installed")
def test_compare_vendors():
    out = run_script("benchmarks/compare_vendors.py", "--quick", "--smoke")
    assert_prints(out, "NullBackend (harness overhead per call)", "Ratio of medians, edge-opt / vendor tool")
    for runtime, tool in (("litert-compiled", "litert-benchmark"), ("litert", "litert-benchmark")):
        assert_prints(out, f"| cnn 64x64x3 | {runtime} | {tool} |")
    assert_prints(out, "| cnn 64x64x3 | openvino | benchmark_app |", "Worst same-API ratio in the 0.1-10 ms range")


def test_vendor_litert(tiny_artifacts):
    model = tiny_artifacts["tflite"].model_path
    out = run_script("benchmarks/vendor_litert.py", f"--model={model}", "--num_threads=1", "--num_runs=5", timeout=120)
    latency = json.loads(out.split("JSON:", 1)[1])
    assert latency["median_ms"] > 0


@pytest.mark.slow
def test_devices():
    part, reason = _devices_part()
    if part is None:
        pytest.skip(reason)
    out = run_script("benchmarks/devices.py", "--part", part, "--smoke")
    if part in ("ray", "all"):
        assert_prints(out, "ray: 2 measurements", "ray: one device", "two devices")
    if part in ("ssh", "all"):
        assert_prints(out, "local transport  median of p50s", "ssh 127.0.0.1    median of p50s", "ratio ssh/local:")


@pytest.mark.parametrize("args", [["--quick"], ["--method", "select"]], ids=["quick-pca", "full-select"])
def test_dimensionality_study(args):
    out = run_script("benchmarks/dimensionality_study.py", *args, "--smoke")
    method = args[-1] if "--method" in args else "pca"
    assert_prints(out, f"Adult, {method}: 300 train rows", "kept expl.var test acc", "best reduced: 2 dims")


@pytest.mark.slow
def test_distillation():
    out = run_script("benchmarks/distillation.py", "--smoke")  # the full grid, every setting
    for name in ("adult", "digits"):
        assert_prints(out, f"== {name}: teacher")
    assert out.count("  TEST  teacher") == 2 and out.count(" T2 a0.5 mixup") == 5 and " shift1" in out, out
    assert out.count("gap recovered") == 2 and "agree: dist" in out, out


def test_remediation():
    out = run_script("benchmarks/remediation.py", "--smoke")
    assert_prints(out, "## Adult MLP 256x128, each candidate as a full-int8 LiteRT file", "| goal | measured | met |")
    for row in (
        "| plain |",
        "| reweigh sex |",
        "| fair_thresholds sex (demographic parity) |",
        "| adversarial pgd 0.2 |",
    ):
        assert row in out, out
    assert "failed:" not in out, out


def test_input_pipeline():
    out = run_script("benchmarks/input_pipeline.py", "--smoke")
    for plan in ("adult MLP", "digits CNN"):
        assert_prints(out, f"== {plan}: 256 train rows", f"model.fit cross-check ({plan}")
    for row in ("naive      warm", "tuned      cold", "map+cache  warm"):
        assert out.count(row) == 2, out


@pytest.mark.slow
def test_nas(tmp_path):
    out = run_script("benchmarks/nas.py", "--quick", "--smoke", "--out", str(tmp_path))
    for task in ("adult-nas", "digits-nas"):
        assert_prints(out, f"{task} on mobile (4 trials of")
    assert out.count("  headline: ") == 2 and out.count("random at equal trials") == 2, out
    assert out.count("  predictor (a prediction): ") == 2, out


def test_overhead_benchmarks():
    # `pytest benchmarks --benchmark-only` (tox -e bench), each benchmark timed for a moment only.
    out = run_script(
        "-m",
        "pytest",
        "benchmarks",
        "-q",
        "-p",
        "no:cacheprovider",
        "--benchmark-only",
        "--benchmark-max-time=0.001",
        "--benchmark-min-rounds=1",
        "--benchmark-warmup=off",
    )
    assert_prints(out, "benchmark: 5 tests", "test_invoke[openvino]", "test_summarize_100k", "5 passed")


def test_op_profiles():
    out = run_script("benchmarks/op_profiles.py", "--smoke")
    assert_prints(
        out,
        "| mlp 64x32 | tflite fp32 | litert | isolated |",
        "| cnn 16x32 | onnx fp32 | onnxruntime | onnxruntime-profiler |",
    )
    assert_prints(out, "| cnn 16x32 | openvino fp32 | openvino | openvino-perf-counters |", "sum / p50 over 100%")
    assert_prints(out, "# edge-opt debug on the MLP with one outlier unit", "| nncf IR |")
    assert "failed" not in out, out


def test_repair():
    out = run_script("benchmarks/repair.py", "--smoke")
    assert_prints(out, "| adult mlp 256x128 |", "| digits cnn 16x32 |", "| adult mlp 64x32, elu outlier |")
    assert_prints(out, "# ONNX Runtime int8, dynamic against static", "| digits cnn 16x32 | ort-int8 |")
    assert_prints(out, "| adult mlp 64x32, elu outlier | edge-opt repair |", "| NNCF accuracy control |")
