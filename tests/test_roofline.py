"""The roofline's MAC count: the same model gives the same count from every format's file."""

import math

from edge_opt.analysis.roofline import count_macs, host_peak, roofline_rows


def test_every_format_counts_the_macs_of_the_keras_model(tiny_artifacts):
    from edge_opt.models import load_keras

    model = load_keras(tiny_artifacts["keras"].model_path)
    dense = [layer for layer in model.layers if hasattr(layer, "kernel")]
    expected = sum(math.prod(layer.kernel.shape) for layer in dense)  # batch 1: in x out per Dense layer
    assert expected > 0
    for key in ("tflite", "tflite_int8", "onnx", "openvino"):
        art = tiny_artifacts[key]
        assert count_macs(art.model_path, art.format) == expected, key
    assert count_macs(tiny_artifacts["keras"].model_path, "keras") is None


def test_roofline_rows_hold_host_rows_to_the_probe_and_device_rows_to_the_profile():
    probe = host_peak(size=64, repeats=2)
    assert probe["gops_per_thread"] > 0 and "GEMM" in probe["method"]
    rec = {
        "id": "r1",
        "task": "t",
        "target": "x",
        "status": "ok",
        "artifact": {"id": "a", "label": "m"},
        "runtime": {"name": "litert", "device": "cpu", "threads": 2},
        "latency_ms": {"p50": 0.002},
    }
    gpu = {**rec, "id": "r2", "runtime": {"name": "onnxruntime", "device": "gpu", "threads": 1}}
    results = {
        "measurements": [rec, gpu],
        "roofline": {"a": {"macs": 1000, "method": "test"}},
        "provenance": {"host_peak": {"gops_per_thread": 10.0, "method": "test"}},
        "targets": {"x": {"peak": {"gops": 100.0}}},
    }
    host_row, gpu_row = roofline_rows(results, "t", "x")
    assert math.isclose(host_row.achieved_gops, 2 * 1000 / 2e-6 / 1e9)  # 1 GOP/s
    assert math.isclose(host_row.share, 1.0 / 20) and "probe" in host_row.peak_source
    assert math.isclose(gpu_row.share, 1.0 / 100) and "peak.gops" in gpu_row.peak_source
