"""The adb transport: benchmark_model's output parsed into the record, and the transport against
a real adb server on 127.0.0.1 (Android's own `adb`, tests/setup_adb.sh). A phone is used only
when EDGE_OPT_ADB_SERIAL names one (and EDGE_OPT_BENCHMARK_MODEL its benchmark_model binary)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edge_opt.measure.devices import Device, DeviceConfig
from edge_opt.measure.records import build_record
from edge_opt.transports.adb import NO_SAMPLES, hex_mask, parse_benchmark_output, parse_op_profile
from tests import sshd
from tests.conftest import run_cli

FIXTURE = Path(__file__).parent / "data" / "benchmark_model_output.txt"

# TF >= 2.12's lines (BenchmarkLoggingListener::OnBenchmarkEnd, Stat with percentiles), as a
# Linux aarch64 run printed them with --report_peak_memory_footprint=true.
NEWER = """\
INFO: Running benchmark for at least 5 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=9 first=87112 curr=51629 min=51629 max=87112 avg=58147.4 std=11478 p5=51629 median=51962 p95=87112

INFO: Running benchmark for at least 1000 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=1000 first=52162 curr=49785 min=49088 max=686105 avg=63743.2 std=60716 p5=49620 median=51891 p95=68628

INFO: Inference timings in us: Init: 119515, First inference: 87112, Warmup (avg): 58147.4, Inference (avg): 63743.2
INFO: Memory footprint delta from the start of the tool (MB): init=55.4961 overall=55.4961
INFO: Overall peak memory footprint (MB) via periodic monitoring: 61.25
"""


def test_the_captured_output_becomes_the_record_fields():
    out = parse_benchmark_output(FIXTURE.read_text(encoding="utf-8"))
    assert out["load_ms"] == pytest.approx(1451.507) and out["cold_start_ms"] == pytest.approx(11.147)
    assert out["warmup_avg_ms"] == pytest.approx(8.77968) and out["warmup_runs"] == 56
    summary = out["latency_summary_ms"]
    # the timed runs' stat line, not the warm-up's nor the op profiler's "count=110 ... avg=8671.49"
    assert summary["n"] == 110 and summary["mean"] == pytest.approx(8.68033) and summary["std"] == pytest.approx(0.591)
    assert summary["min"] == pytest.approx(7.863) and summary["max"] == pytest.approx(10.688)
    assert "p50" not in summary  # this version prints no median: none is made up
    assert out["samples_ms"] is None and summary["samples"] == NO_SAMPLES
    assert out["memory_mb"] == {"footprint_init": 63.4883, "footprint_overall": 63.4883}


def test_the_newer_output_gives_its_percentiles_and_peak_memory():
    out = parse_benchmark_output(NEWER)
    summary = out["latency_summary_ms"]
    assert summary["n"] == 1000 and summary["p50"] == pytest.approx(51.891) and summary["p95"] == pytest.approx(68.628)
    assert out["warmup_runs"] == 9 and out["min_runs_asked"] == 1000
    assert out["memory_mb"] == {"footprint_init": 55.4961, "footprint_overall": 55.4961, "footprint_peak": 61.25}


# --enable_op_profiling=true: TFLite's table (with [start]), the initialization's table first, as
# the tool prints them (columns tab-separated), and LiteRT's newer one with XNNPACK's own rows.
def _row(*cells: str) -> str:
    return "\t" + "\t".join(cells) + "\n"


RUN_ORDER = "============================== Run Order ==============================\n"
OLD_HEAD = _row(
    "[node type]", "[start]", "[first]", "[avg ms]", "[%]", "[cdf%]", "[mem KB]", "[times called]", "[Name]"
)
OPS_TFLITE = (
    "Profiling Info for Benchmark Initialization:\n"
    + RUN_ORDER
    + OLD_HEAD
    + _row("AllocateTensors", "0.000", "1.356", "1.356", "100.000%", "100.000%", "0.000", "1", "AllocateTensors/0")
    + "\nOperator-wise Profiling Info for Regular Benchmark Runs:\n"
    + RUN_ORDER
    + OLD_HEAD
    + _row("CONV_2D", "0.000", "4.269", "4.180", "60.0%", "60.0%", "0.000", "1", "[MobilenetV1/Conv2d_0/Relu6]")
    + _row(
        "DEPTHWISE_CONV_2D", "4.270", "2.150", "2.100", "30.0%", "90.0%", "0.000", "1", "[MobilenetV1/Conv2d_1/Relu6]"
    )
    + _row("SOFTMAX", "6.421", "0.700", "0.700", "10.0%", "100.0%", "0.000", "0", "[MobilenetV1/Predictions/Softmax]")
    + "\n============================== Top by Computation Time ==============================\n"
)
OPS_LITERT = (
    RUN_ORDER
    + _row("[node type]", "[first]", "[avg ms]", "[%]", "[cdf%]", "[mem KB]", "[times called]", "[Name]")
    + _row("LiteRT::Run[buffer registration]", "0.020", "0.014", "3.3%", "3.3%", "0.000", "1", "LiteRT::Run[buffer]/0")
    + _row("Static Reshape (NC)", "0.085", "0.003", "0.7%", "4.0%", "0.000", "1", "Delegate/Static Reshape (NC):0")
    + _row("Fully Connected (NC, PF32) GEMM", "0.538", "0.382", "93%", "97%", "0.000", "1", "Delegate/FC GEMM:1")
    + _row("LOGISTIC", "0.013", "0.012", "2.9%", "100.0%", "0.000", "1", "StatefulPartitionedCall:0")
    + "\n"
)


def test_benchmark_models_op_tables_become_the_records_op_profile():
    old = parse_op_profile(OPS_TFLITE).to_dict()  # the timed runs' table, not the initialization's
    assert old["ops_method"] == "benchmark_model" and [op["type"] for op in old["ops"]] == [
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "SOFTMAX",
    ]
    assert old["ops"][0]["name"] == "MobilenetV1/Conv2d_0/Relu6" and old["ops"][0]["ms"] == 4.18
    assert old["ops_total_ms"] == pytest.approx(6.98) and old["ops_fallback"] == 0 and old["ops"][2]["calls"] == 1
    new = parse_op_profile(OPS_LITERT).to_dict()  # LiteRT: no [start]; XNNPACK's rows; its bookkeeping left out
    assert [op["type"] for op in new["ops"]] == ["Fully Connected (NC, PF32) GEMM", "LOGISTIC", "Static Reshape (NC)"]
    assert {op["exec"] for op in new["ops"]} == {"delegate", "builtin"} and new["ops_fallback"] == 1
    none = parse_op_profile("Inference timings in us: Init: 1, First inference: 2, Warmup (avg): 3, Inference (avg): 4")
    assert none.method is None and "no 'Run Order' table" in none.reason


def test_output_without_the_summary_is_an_error():
    with pytest.raises(ValueError, match="Inference timings"):
        parse_benchmark_output("STARTING!\nFailed to load model /data/local/tmp/x.tflite\n")


def test_a_summary_only_result_is_recorded_as_one():
    from edge_opt.bench.process import WorkerResult

    raw = parse_benchmark_output(FIXTURE.read_text(encoding="utf-8"))
    raw["runtime"] = {"name": "benchmark_model", "threads": 1, "device": "cpu", "serial": "R58M1234"}
    art = {"id": "a1", "path": "m.tflite", "format": "tflite", "precision": "fp32", "target": "mobile"}
    rec = build_record(
        artifact=art, runtime="litert", device="cpu", threads=1, size_bytes=None, result=WorkerResult("ok", None, raw)
    )
    assert rec.latency_ms is None and rec.latency_samples_ms is None  # nothing edge-opt did not measure
    assert rec.latency_summary_ms["n"] == 110 and rec.runtime["name"] == "benchmark_model"
    assert rec.runtime["serial"] == "R58M1234" and rec.load_ms == pytest.approx(1451.507)
    assert rec.to_json()["latency_summary_ms"]["samples"] == NO_SAMPLES


def test_core_mask_becomes_tasksets_hex_mask():
    assert hex_mask([4, 5, 6, 7]) == "f0" and hex_mask([0]) == "1" and hex_mask([0, 2]) == "5"


# --- a real adb server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def adb_server(tmp_path_factory):
    """Android's adb server on 127.0.0.1 at a free port, its keys in a throw-away HOME."""
    adb = shutil.which("adb")
    if adb is None:
        pytest.skip("no adb here (tests/setup_adb.sh installs it as root)")
    home = tmp_path_factory.mktemp("adb-home")
    port = sshd.free_port()
    env = {**os.environ, "HOME": str(home), "ANDROID_USER_HOME": str(home / ".android"), "ADB_MDNS": "0"}
    env["ADB_MDNS_OPENSCREEN"] = "0"
    subprocess.run([adb, "-P", str(port), "start-server"], env=env, check=True, timeout=60)
    yield port
    subprocess.run([adb, "-P", str(port), "kill-server"], env=env, timeout=30)


def _phone_cfg(tmp_path: Path, port: int | None, **fields) -> DeviceConfig:
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF not really")
    return DeviceConfig(name="phone", transport="adb", benchmark_model=binary, adb_server_port=port, **fields)


def test_no_device_attached_is_a_skipped_record_with_the_reason(adb_server, tmp_path):
    model = tmp_path / "model.tflite"
    model.write_bytes(b"TFL3")
    device = Device(_phone_cfg(tmp_path, adb_server, targets=["mobile"]))
    result = device.measure(model, "litert", default_batch=1)
    device.close()
    rec = build_record(
        artifact={"id": "a1", "path": str(model), "format": "tflite", "precision": "fp32", "target": "mobile"},
        runtime="litert",
        device="cpu",
        threads=1,
        size_bytes=None,
        result=result,
    )
    assert rec.status == "skipped" and "unreachable" in rec.error and "found none" in rec.error, rec.error
    assert f"127.0.0.1:{adb_server}" in rec.error and rec.device["transport"] == "adb"
    named = Device(_phone_cfg(tmp_path, adb_server, address="emulator-5554"))
    assert "no device 'emulator-5554' attached" in named.unreachable()


def test_devices_lists_an_unattached_phone_in_one_line(adb_server, tmp_path):
    folder = tmp_path / "devices"
    folder.mkdir()
    (tmp_path / "benchmark_model").write_bytes(b"\x7fELF")
    (folder / "phone.yaml").write_text(
        f"name: phone\ntransport: adb\nbenchmark_model: ../benchmark_model\nadb_server_port: {adb_server}\n"
        f"targets: [mobile]\n",
        encoding="utf-8",
    )
    (folder / "gone.yaml").write_text(
        f"name: gone\ntransport: adb\nbenchmark_model: ../benchmark_model\nadb_server_port: {sshd.free_port()}\n",
        encoding="utf-8",
    )
    proc = run_cli("devices", "--devices", str(folder), timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if "unreachable" in ln]
    assert len(lines) == 2 and "Traceback" not in proc.stdout + proc.stderr
    assert any("found none" in ln for ln in lines) and any("start-server" in ln for ln in lines), lines


def test_an_adb_device_measures_only_tflite_on_litert(tmp_path):
    from edge_opt.transports.adb import ADBTransport

    transport = ADBTransport(_phone_cfg(tmp_path, None))
    assert transport.cannot_run("onnxruntime", "m.onnx") and transport.cannot_run("litert", "m.tflite") is None


# --- a phone, when one is named ----------------------------------------------------------


SERIAL, BINARY = os.environ.get("EDGE_OPT_ADB_SERIAL"), os.environ.get("EDGE_OPT_BENCHMARK_MODEL")
needs_phone = pytest.mark.skipif(
    not (SERIAL and BINARY),
    reason="no phone: set EDGE_OPT_ADB_SERIAL (adb devices) and EDGE_OPT_BENCHMARK_MODEL (its benchmark_model)",
)


@pytest.fixture
def phone():
    return DeviceConfig(name="phone", transport="adb", address=SERIAL, benchmark_model=Path(BINARY))


@needs_phone
def test_adb_transport_conformance(phone, tiny_artifacts, adult_small, tmp_path):
    from edge_opt.conformance import check_transport
    from edge_opt.transports import open_transport

    transport = open_transport(phone)
    try:
        check_transport(transport, tiny_artifacts["tflite"].model_path, adult_small.x_test[:9], tmp_path / "local")
    finally:
        transport.close()


@needs_phone
def test_bench_on_a_phone_records_what_ran(phone, tiny_artifacts):
    from edge_opt.measure.harness import HarnessOptions

    device = Device(phone)
    opts = HarnessOptions(min_runs=5, min_time_s=0.0, warmup_runs=1)
    try:
        result = device.measure(tiny_artifacts["tflite"].model_path, "litert", default_batch=1, options=opts)
    finally:
        device.close()
    rec = build_record(
        artifact=tiny_artifacts["tflite"].summary(),
        runtime="litert",
        device="cpu",
        threads=1,
        size_bytes=None,
        result=result,
    )
    assert rec.status == "ok", rec.error
    assert rec.runtime["name"] == "benchmark_model" and rec.runtime["serial"] == phone.address
    assert rec.latency_samples_ms is None and rec.latency_summary_ms["n"] >= 5 and rec.load_ms > 0
