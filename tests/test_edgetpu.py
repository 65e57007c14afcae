"""EdgeTPU mapping analysis of real .tflite files made by edge-opt's passes and the TFLite converter."""

from __future__ import annotations

import numpy as np
import pytest

from edge_opt.analysis.edgetpu import analyze, render_edgetpu
from edge_opt.core.errors import ModelLoadError
from edge_opt.targets import Peak


@pytest.fixture(scope="module")
def leaky_int8(tmp_path_factory):
    """Dense → LeakyReLU → Dense → Dense(sigmoid), full-integer int8 with int8 I/O.

    LeakyReLU has an int8 TFLite kernel but is not in the EdgeTPU's supported-op table.
    """
    from edge_opt.core.tfkeras import keras, tf

    k, tf_ = keras(), tf()
    k.utils.set_random_seed(0)
    inputs = k.Input(shape=(4,))
    x = k.layers.LeakyReLU(0.1)(k.layers.Dense(8)(inputs))
    x = k.layers.Dense(4, activation="relu")(x)
    model = k.Model(inputs, k.layers.Dense(1, activation="sigmoid")(x))
    calib = np.random.default_rng(0).normal(size=(16, 1, 4)).astype(np.float32)
    converter = tf_.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf_.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([row] for row in calib)
    converter.target_spec.supported_ops = [tf_.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf_.int8
    path = tmp_path_factory.mktemp("edgetpu") / "leaky.tflite"
    path.write_bytes(converter.convert())
    return path


def test_adult_int8_mlp_maps_entirely(tiny_artifacts, adult_small):
    r = analyze(tiny_artifacts["tflite_int8"].model_path)
    # int8 I/O: no Quantize/Dequantize at the ends, only the two dense layers and the sigmoid.
    assert [op["op"] for op in r["ops"]] == ["FULLY_CONNECTED", "FULLY_CONNECTED", "LOGISTIC"]
    assert all(op["mapped"] and op["reason"] is None for op in r["ops"])
    assert (r["fraction_ops"], r["fraction_macs"]) == (1.0, 1.0)
    assert r["split"] == {"index": None, "op": None, "reason": None, "cpu_after_split": []}
    assert all(t["dtype"] in ("INT8", "INT32") for op in r["ops"] for t in op["inputs"] + op["outputs"])
    params = r["parameters"]
    assert params["fits_on_chip"] and params["off_chip_bytes"] == 0 and params["on_chip_bytes"] == 8_000_000
    n = adult_small.input_shape[-1]
    assert params["bytes"] == n * 16 + 16 * 4 + 16 + 4  # int8 weights + int32 biases
    assert "| 0 | FULLY_CONNECTED | yes |" in render_edgetpu(r)


def test_dense_macs_are_inputs_times_outputs(tiny_artifacts, adult_small):
    r = analyze(tiny_artifacts["tflite_int8"].model_path)
    n = adult_small.input_shape[-1]
    assert [op["macs"] for op in r["ops"]] == [n * 16, 16 * 1, 0]
    assert r["macs_total"] == r["macs_mapped"] == n * 16 + 16


def test_latency_is_a_labelled_roofline_estimate(tiny_artifacts, adult_small):
    r = analyze(tiny_artifacts["tflite_int8"].model_path)
    est, n = r["estimate"], adult_small.input_shape[-1]
    assert est["estimate"] is True and "not a measurement" in est["note"] and "max(" in est["note"]
    assert est["io_bytes"] == n + 1  # int8 input row in, one int8 score out
    assert est["compute_ms"] == pytest.approx(2 * (n * 16 + 16) / 4000e9 * 1e3)
    assert est["transfer_ms"] == pytest.approx((n + 1) / 4e9 * 1e3)
    assert est["latency_ms"] == max(est["compute_ms"], est["transfer_ms"]) and est["bound"] == "bandwidth"
    assert "**Estimated** EdgeTPU latency (estimate, not measured)" in render_edgetpu(r)


def test_parameters_beyond_on_chip_memory_are_streamed(tiny_artifacts):
    small = Peak(gops=4000, bandwidth_gbs=4, on_chip_mb=0.001)  # 1000 bytes on chip
    r = analyze(tiny_artifacts["tflite_int8"].model_path, small)
    params, est = r["parameters"], r["estimate"]
    assert not params["fits_on_chip"] and params["off_chip_bytes"] == params["mapped_bytes"] - 1000
    assert est["bytes_streamed"] == est["io_bytes"] + params["off_chip_bytes"]


def test_float_file_maps_nothing(tiny_artifacts):
    r = analyze(tiny_artifacts["tflite"].model_path)
    assert r["ops"] and not any(op["mapped"] for op in r["ops"])
    assert all(op["reason"].startswith("not 8-bit quantized") for op in r["ops"])
    assert r["fraction_ops"] == 0.0 and r["fraction_macs"] == 0.0 and r["estimate"]["latency_ms"] is None


def test_first_unsupported_op_splits_the_graph(leaky_int8):
    r = analyze(leaky_int8)
    names = [op["op"] for op in r["ops"]]
    assert names == ["FULLY_CONNECTED", "LEAKY_RELU", "FULLY_CONNECTED", "FULLY_CONNECTED", "LOGISTIC"]
    assert [op["mapped"] for op in r["ops"]] == [True, False, False, False, False]
    assert r["split"]["index"] == 1 and r["split"]["op"] == "LEAKY_RELU"
    assert r["split"]["cpu_after_split"] == [2, 3, 4]  # supported, but after the split
    assert r["ops"][2]["reason"].startswith("after the split at op #1")
    assert r["fraction_ops"] == pytest.approx(0.2)
    assert r["macs_mapped"] == 4 * 8 and r["macs_total"] == 4 * 8 + 8 * 4 + 4 * 1
    assert "Split at op #1 (LEAKY_RELU)" in render_edgetpu(r)


def test_missing_or_corrupt_file_is_a_model_load_error(tmp_path, tiny_artifacts):
    good = tiny_artifacts["tflite_int8"].model_path.read_bytes()
    (tmp_path / "garbage.tflite").write_bytes(b"not a flatbuffer" * 8)
    (tmp_path / "truncated.tflite").write_bytes(good[: len(good) // 2])
    for name, fragment in [("missing", "not found"), ("garbage", "not a TFLite"), ("truncated", "corrupt")]:
        with pytest.raises(ModelLoadError, match=fragment) as info:
            analyze(tmp_path / f"{name}.tflite")
        assert len(str(info.value).splitlines()) == 1
