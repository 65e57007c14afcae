"""The CLI as a user runs it: real files, real runtimes, exit codes and one-line errors."""

import json
import os
import subprocess
import sys

import pytest

from tests import runs
from tests.conftest import ROOT, assert_clean_error, cli, run_cli

FAST = ("--runs", "10", "--min-time", "0.05", "--warmup", "2")


def test_help_is_fast_and_does_not_import_tensorflow():
    code = "import sys; from edge_opt import cli; assert 'tensorflow' not in sys.modules, 'TF imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    proc = run_cli("--help")
    assert proc.returncode == 0
    for command in ("run", "bench", "gate", "report", "targets"):
        assert command in proc.stdout


def test_version_prints_the_version_the_records_name():
    from edge_opt import __version__

    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout == f"edge-opt {__version__}\n" and not proc.stderr


@pytest.mark.parametrize(
    ("key", "extra"), [("tflite", ()), ("onnx", ("--shape", "1,108")), ("openvino", ("--shape", "input_0:1,108"))]
)
def test_bench_writes_the_record(tiny_artifacts, tmp_path, key, extra):
    out = tmp_path / "bench.json"
    proc = run_cli("bench", str(tiny_artifacts[key].model_path), *FAST, *extra, "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(out.read_text())
    assert rec["status"] == "ok" and rec["error"] is None
    for key_ in ("p50", "p90", "p95", "p99", "mean", "std", "min", "max", "n", "median_ci"):
        assert key_ in rec["latency_ms"]
    assert rec["load_ms"] > 0 and rec["cold_start_ms"] > 0
    assert set(rec["memory_mb"]) >= {"peak_rss", "peak_uss", "baseline_rss"}
    assert rec["size_bytes"]["raw"] >= tiny_artifacts[key].model_path.stat().st_size
    assert rec["runtime"]["version"] and rec["runtime"]["threads"] == 1
    assert len(rec["latency_samples_ms"]) == rec["latency_ms"]["n"]
    assert rec["provenance"]["machine"]["cores_logical"] >= 1
    assert "p50" in proc.stdout


def test_bench_threads_and_runtime_options(tiny_artifacts, tmp_path):
    from edge_opt.bench.process import usable_cpus

    if usable_cpus() < 2:
        pytest.skip("one usable CPU here: --threads 2 is refused as oversubscribed")
    out = tmp_path / "b.json"
    proc = run_cli(
        "bench", str(tiny_artifacts["tflite"].model_path), "-r", "litert", "-t", "2", *FAST, "--json", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["runtime"]["threads"] == 2


def _bad_files(tmp_path, tiny_artifacts):
    tflite = tiny_artifacts["tflite"].model_path.read_bytes()
    files = {
        "truncated.tflite": tflite[: len(tflite) // 3],
        "random.tflite": os.urandom(4096),
        "random-with-magic.tflite": b"\0\0\0\0TFL3" + os.urandom(4096),
        "tflite-bytes.onnx": tflite,
        "random.onnx": b"\x08" + os.urandom(2048),
        "empty.tflite": b"",
        "model.pt": b"not a model",
        "notxml.xml": b"\x00\x01binary",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "nobin.xml").write_text("<?xml version='1.0'?><net></net>")
    return tmp_path


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("missing.tflite", "file not found"),
        ("model.pt", "unknown model extension '.pt'"),
        ("empty.tflite", "empty file"),
        ("truncated.tflite", "LiteRT cannot load it"),
        ("random.tflite", "not a TFLite flatbuffer"),
        ("random-with-magic.tflite", "LiteRT cannot load it"),
        ("tflite-bytes.onnx", "not an ONNX model"),
        ("random.onnx", "ONNX Runtime cannot load it"),
        ("notxml.xml", "not an OpenVINO IR"),
        ("nobin.xml", "needs its weights file nobin.bin"),
    ],
)
def test_bad_model_files_exit_2_with_one_line(tmp_path, tiny_artifacts, name, fragment):
    folder = _bad_files(tmp_path, tiny_artifacts)
    out = tmp_path / "never.json"
    assert_clean_error(run_cli("bench", str(folder / name), *FAST, "--json", str(out)), fragment)
    assert not out.exists()


@pytest.mark.parametrize(
    ("shape", "fragment"),
    [
        ("1,7", "does not fit the model's input shape"),
        ("1,108,1", "does not fit"),
        ("nope:1,108", "unknown input 'nope'"),
        ("1,abc", "dimensions must be integers"),
        ("0,108", "positive dimensions"),
    ],
)
def test_wrong_shape_exits_2(tiny_artifacts, shape, fragment):
    assert_clean_error(run_cli("bench", str(tiny_artifacts["onnx"].model_path), *FAST, "--shape", shape), fragment)


def test_a_dynamic_batch_runs_at_1_on_every_runtime_with_a_note(tiny_artifacts, tmp_path):
    """Issue 19 (6): before, a file with no manifest beside it needed --shape for its ? batch on
    ONNX Runtime and OpenVINO, while LiteRT ran it at 1."""
    import shutil

    from edge_opt.measure.harness import HarnessOptions, measure

    alone = shutil.copy(tiny_artifacts["onnx"].model_path, tmp_path / "model.onnx")
    out = tmp_path / "r.json"
    proc = run_cli("bench", str(alone), "-r", "openvino", *FAST, "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    assert record["inputs"][0]["shape"] == [1, 108]
    note = "input input_0 has a dynamic batch: measured at batch 1 (--shape input_0:1,108 with another batch"
    assert note in proc.stderr and any(note in w for w in record["warnings"])
    ort = measure(alone, "onnxruntime", options=HarnessOptions(min_runs=5, min_time_s=0))
    assert ort.status == "ok" and ort.raw["inputs"][0]["shape"] == [1, 108] and note in ort.raw["warnings"][0]


def test_runtime_that_cannot_read_the_format_exits_2(tiny_artifacts):
    proc = cli("bench", str(tiny_artifacts["onnx"].model_path), "-r", "litert")
    assert_clean_error(proc, "does not read onnx")
    assert "runtimes that do: onnxruntime, openvino" in proc.stderr


def test_malformed_suite_yaml_exits_2(tmp_path):
    bad = tmp_path / "suite.yaml"
    bad.write_text("name: broken\ntasks: [\n")
    out = tmp_path / "out"
    assert_clean_error(cli("run", str(bad), "--out", str(out)), "malformed YAML")
    assert not out.exists() or not any(out.iterdir())


def test_suite_with_unknown_target_exits_2(tmp_path):
    bad = tmp_path / "suite.yaml"
    bad.write_text("name: x\ntasks: [{name: a, dataset: adult}]\ntargets: [cpu, tpu]\n")
    assert_clean_error(cli("run", str(bad), "--out", str(tmp_path / "out")), "unknown target profile 'tpu'")


def test_gate_on_a_folder_without_results_exits_2(tmp_path):
    assert_clean_error(cli("gate", str(tmp_path)), "no results.json")


def test_gate_with_malformed_budgets_exits_2(tmp_path):
    runs.write(tmp_path, runs.results())
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("cpu:\n  - latency.p90 <= fast\n")
    assert_clean_error(cli("gate", str(tmp_path), "--budgets", str(budgets)), "budgets.yaml")


def test_targets_command_lists_and_shows():
    proc = cli("targets")
    assert proc.returncode == 0 and all(n in proc.stdout for n in ("cpu", "gpu", "edgetpu", "mobile"))
    proc = cli("targets", "edgetpu")
    assert proc.returncode == 0 and "io: int8" in proc.stdout


def test_a_runtime_crash_on_a_corrupt_file_is_contained(tiny_artifacts, tmp_path):
    """LiteRT's CompiledModel API may SIGSEGV on a truncated file: the child dies, not edge-opt."""
    data = tiny_artifacts["tflite"].model_path.read_bytes()
    bad = tmp_path / "half.tflite"
    bad.write_bytes(data[: len(data) // 2])
    proc = run_cli("bench", str(bad), "-r", "litert-compiled", *FAST)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "crashed with SIG" in proc.stderr or "cannot load it" in proc.stderr, proc.stderr


def test_engine_ray_without_ray_is_one_line_exit_2(tmp_path):
    """--engine ray where Ray is not installed (hidden from this child): one line, exit 2, before any work."""
    code = (
        "import sys; sys.modules['ray'] = None; from edge_opt.cli import main; "
        f"sys.argv = ['edge-opt', 'run', 'quick', '--engine', 'ray', '--out', {str(tmp_path / 'out')!r}]; main()"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert_clean_error(proc, "edge-opt[ray]")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
