"""ONNX Runtime and NNCF post-training quantization of the tiny real model, run on the real runtimes."""

import importlib.util
import json

import numpy as np
import pytest

from edge_opt.core.artifacts import verify
from edge_opt.core.errors import ConfigError, UnsupportedTargetError
from edge_opt.models import predicted_labels
from edge_opt.passes import PassContext, get_pass
from edge_opt.passes.quantize_ext import NNCFQuantizePass, OrtQuantizePass

AGREEMENT = 0.95  # label agreement with the fp32 parent on ROWS test rows
MEAN_ABS_DIFF = 0.05
ROWS = 500
HAS_NNCF = importlib.util.find_spec("nncf") is not None


def _predict(artifact, runtime, x):
    from edge_opt.runtimes import get_backend_class

    backend = get_backend_class(runtime)()
    backend.load(str(artifact.model_path))
    return backend.predict(x)


def _assert_close(quantized, reference, n_classes):
    assert quantized.shape == reference.shape
    assert float(np.mean(np.abs(quantized - reference))) < MEAN_ABS_DIFF
    agree = np.mean(predicted_labels(quantized, n_classes) == predicted_labels(reference, n_classes))
    assert agree >= AGREEMENT


def _size(artifact):
    return artifact.manifest["size_bytes"]["raw"]


@pytest.fixture(scope="module")
def ctx(adult_small):
    return PassContext(target="cpu", calibration=adult_small.calibration(256), calibration_source="adult train")


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("quantize_ext")


@pytest.fixture(scope="module")
def x_test(adult_small):
    return adult_small.x_test[:ROWS]


@pytest.fixture(scope="module")
def fp32_onnx(tiny_artifacts, x_test):
    return tiny_artifacts["onnx"], _predict(tiny_artifacts["onnx"], "onnxruntime", x_test)


def test_ort_static_is_int8_qdq_and_agrees_on_ort_and_openvino(fp32_onnx, ctx, out, x_test, adult_small):
    parent, reference = fp32_onnx
    parent_manifest = json.dumps(parent.manifest, sort_keys=True)
    q = OrtQuantizePass().apply(parent, {}, out, ctx)

    assert (q.format, q.precision, q.parent) == ("onnx", "int8", parent.id)
    notes = q.manifest["notes"]
    assert notes["calibration"] == {"rows": 256, "source": "adult train"}
    assert notes["quantize_nodes"] > 0 and notes["quantized_ops"]
    assert _size(q) < _size(parent)
    _assert_close(_predict(q, "onnxruntime", x_test), reference, adult_small.n_classes)

    ir = get_pass("openvino").apply(q, {}, out, ctx)
    _assert_close(_predict(ir, "openvino", x_test), reference, adult_small.n_classes)

    assert verify(parent) == [] and json.dumps(parent.manifest, sort_keys=True) == parent_manifest
    assert OrtQuantizePass().apply(parent, {}, out, ctx).id == q.id  # reused, not rebuilt
    other = PassContext(target="cpu", calibration=adult_small.calibration(64, seed=1), calibration_source="other")
    assert OrtQuantizePass().apply(parent, {}, out, other).id != q.id  # other scales, other artifact


@pytest.mark.parametrize("options", [{"per_channel": True}, {"calibrate_method": "entropy"}])
def test_ort_static_options(fp32_onnx, ctx, out, x_test, adult_small, options):
    parent, reference = fp32_onnx
    q = OrtQuantizePass().apply(parent, options, out, ctx)
    assert q.manifest["config"]["per_channel"] == options.get("per_channel", False)
    _assert_close(_predict(q, "onnxruntime", x_test), reference, adult_small.n_classes)


def test_ort_dynamic_needs_no_calibration_and_shrinks_weights(fp32_onnx, out, x_test, adult_small):
    parent, reference = fp32_onnx
    q = OrtQuantizePass().apply(parent, {"mode": "dynamic"}, out, PassContext(target="cpu"))

    assert (q.format, q.precision, q.parent) == ("onnx", "int8-dynamic", parent.id)
    assert "calibration" not in q.manifest["notes"]
    assert "MatMulInteger" in q.manifest["notes"]["quantized_ops"]
    assert _size(q) < _size(parent)
    _assert_close(_predict(q, "onnxruntime", x_test), reference, adult_small.n_classes)
    assert verify(parent) == []


def test_static_without_calibration_is_unsupported(tiny_artifacts, tmp_path):
    for quantizer, artifact in (
        (OrtQuantizePass(), tiny_artifacts["onnx"]),
        (NNCFQuantizePass(), tiny_artifacts["openvino"]),
    ):
        with pytest.raises(UnsupportedTargetError, match="needs calibration data"):
            quantizer.apply(artifact, {}, tmp_path, PassContext(target="cpu"))
    assert list(tmp_path.iterdir()) == []


def test_wrong_input_format_is_unsupported(tiny_artifacts, ctx, tmp_path):
    with pytest.raises(UnsupportedTargetError, match="takes onnx input"):
        OrtQuantizePass().apply(tiny_artifacts["tflite"], {}, tmp_path, ctx)


@pytest.mark.parametrize(
    ("quantizer", "good", "bad"),
    [
        (OrtQuantizePass(), {"mode": "dynamic", "per_channel": True}, {"mode": "qat"}),
        (OrtQuantizePass(), {"calibrate_method": "percentile"}, {"calibration_samples": 0}),
        (OrtQuantizePass(), {}, {"calibrate_method": "kl"}),
        (NNCFQuantizePass(), {"preset": "mixed", "subset_size": 64}, {"preset": "fast"}),
        (NNCFQuantizePass(), {}, {"subset_size": 0}),
        (NNCFQuantizePass(), {}, {"bogus": 1}),
    ],
)
def test_config_round_trip_and_rejects_bad(quantizer, good, bad):
    cfg = quantizer.config(good)
    assert quantizer.config(cfg.model_dump()) == cfg
    with pytest.raises(ConfigError):
        quantizer.config(bad)


@pytest.mark.skipif(not HAS_NNCF, reason="nncf is not installed: pip install nncf")
@pytest.mark.parametrize("source", ["openvino", "onnx"])
def test_nncf_quantizes_ir_or_onnx_to_int8_ir(tiny_artifacts, fp32_onnx, ctx, out, x_test, adult_small, source):
    parent = tiny_artifacts[source]
    _, reference = fp32_onnx
    q = NNCFQuantizePass().apply(parent, {"subset_size": 128}, out, ctx)

    assert (q.format, q.precision, q.parent) == ("openvino", "int8", parent.id)
    notes = q.manifest["notes"]
    assert notes["calibration"] == {"rows": 128, "source": "adult train"}
    assert notes["fake_quantize_nodes"] > 0 and "MatMul" in notes["quantized_ops"]
    # The weights shrink; on a model this tiny the .xml grows by more (FakeQuantize nodes).
    fp32_bin = tiny_artifacts["openvino"].folder / "model.bin"
    assert (q.folder / "model.bin").stat().st_size < fp32_bin.stat().st_size / 2
    _assert_close(_predict(q, "openvino", x_test), reference, adult_small.n_classes)
    assert verify(parent) == []


def test_an_ir_is_converted_from_a_folder_whose_name_has_a_comma(tmp_path, tiny_artifacts):
    """Before: OpenVINO's convert_model read "mlp, relu/model.onnx" as two files and the pass failed."""
    from edge_opt.passes import PassContext, get_pass

    folder, ctx = tmp_path / "mlp, relu outlier", PassContext(target="cpu")
    onnx = get_pass("onnx").apply(tiny_artifacts["keras"], {}, folder, ctx)
    ir = get_pass("openvino").apply(onnx, {}, folder, ctx)
    assert ir.model_path.is_file() and "," in str(onnx.model_path)
