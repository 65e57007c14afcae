"""edge-opt debug (issue 21, 4): the layer a model's int8 file breaks is the layer it names first.

The broken model is built here: the tiny MLP of the shared fixture with one unit of its hidden
layer scaled up 300x (and the next layer's weights from it scaled down 300x, so the float model
computes the same function). That unit's activations dwarf the others', so the int8 file's
per-tensor scale of that layer leaves the other units a few levels: the hidden layer adds the
error, and the debugger must rank it first.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_opt.analysis.debug import debug_tflite
from edge_opt.models import load_keras
from edge_opt.passes.convert import TFLiteConfig, tflite_bytes
from tests.conftest import assert_clean_error, cli


@pytest.fixture(scope="module")
def outlier(tmp_path_factory, tiny_artifacts, adult_small):
    """(float .keras with one outlier unit, its int8 .tflite, rows)."""
    model = load_keras(tiny_artifacts["keras"].model_path)
    hidden, head = (layer for layer in model.layers if layer.weights)
    (w1, b1), (w2, b2) = hidden.get_weights(), head.get_weights()
    unit = int(np.argmax(np.abs(w2[:, 0])))
    w1[:, unit] *= 300.0
    b1[unit] *= 300.0
    w2[unit, :] /= 300.0  # relu(300 z) = 300 relu(z): the float function is unchanged
    hidden.set_weights([w1, b1])
    head.set_weights([w2, b2])
    folder = tmp_path_factory.mktemp("outlier")
    model.save(folder / "float.keras")
    calib = adult_small.calibration(128)
    (folder / "int8.tflite").write_bytes(tflite_bytes(model, TFLiteConfig(precision="int8"), calib))
    return folder / "float.keras", folder / "int8.tflite", adult_small.x_test[:40], hidden.name


def test_debug_names_the_layer_with_the_outlier_unit_first(outlier):
    float_path, int8_path, x, hidden = outlier
    result = debug_tflite(int8_path, float_path, tflite_bytes(load_keras(float_path)), x)
    worst = result.layers[0]
    assert f"/{hidden}/" in worst.name and f"/{hidden}_" not in worst.name, [layer.name for layer in result.layers]
    assert worst.float_max > 100 and worst.scale > 0.5  # the outlier's range, and the scale it forces on all
    assert worst.added > result.layers[-1].added
    assert not result.unmatched and result.rows == 40


def test_debug_command_finds_the_float_model_through_lineage_and_writes_json(tmp_path, tiny_artifacts):
    out = tmp_path / "d.json"
    proc = cli("debug", tiny_artifacts["tflite_int8"].folder, "--rows", "20", "--json", out)
    assert proc.returncode == 0, proc.stderr
    assert "worst layers first" in proc.stdout and "FULLY_CONNECTED" in proc.stdout
    result = json.loads(out.read_text())
    assert result["rows"] == 20 and len(result["layers"]) >= 2 and not result["unmatched"]
    assert all(layer["total"] >= 0 and layer["added"] is not None for layer in result["layers"])
    # an fp32 file departs from its own float model by rounding only, as .tflite, .onnx or IR
    for fp32 in (tiny_artifacts["tflite"], tiny_artifacts["onnx"], tiny_artifacts["openvino"]):
        assert cli("debug", fp32.folder, "--rows", "5", "--json", out).returncode == 0
        assert max(layer["total"] for layer in json.loads(out.read_text())["layers"]) < 1e-4


def test_debug_refuses_what_it_cannot_compare_in_one_line(tmp_path, tiny_artifacts, outlier):
    assert_clean_error(cli("debug", tiny_artifacts["keras"].model_path), "debug reads .tflite, .onnx and OpenVINO IR")
    lone = tmp_path / "lone.tflite"
    lone.write_bytes(tiny_artifacts["tflite"].model_path.read_bytes())
    assert_clean_error(cli("debug", lone), "pass --float FLOAT.keras")
    digits = tmp_path / "d.npz"
    np.savez(digits, x=np.ones((5, 64), np.float32), y=np.zeros(5, np.int64))
    assert_clean_error(cli("debug", lone, "--float", outlier[0], "--data", digits), "the rows have shape (64,)")
    assert_clean_error(cli("debug", lone, "--rows", "0"), "--rows")


def test_debug_of_an_onnx_file_names_the_broken_layer_first(outlier, tiny_artifacts, tmp_path):
    """ONNX Runtime's dynamic int8 quantizes weights per tensor: the 300x column of the hidden layer's
    kernel leaves its other columns a few levels, so that layer's MatMul adds the error."""
    from onnxruntime.quantization import quantize_dynamic

    from edge_opt.analysis.debug_onnx import debug_onnx
    from edge_opt.passes.convert import onnx_bytes

    float_path, _, x, hidden = outlier
    errors = {}
    for name, keras_path in (("broken", float_path), ("clean", tiny_artifacts["keras"].model_path)):
        f32 = tmp_path / f"{name}.onnx"
        f32.write_bytes(onnx_bytes(load_keras(keras_path)))
        quantize_dynamic(f32, tmp_path / f"{name}8.onnx")
        errors[name] = debug_onnx(tmp_path / f"{name}8.onnx", keras_path, f32.read_bytes(), x)
    worst = errors["broken"].layers[0]
    assert errors["broken"].method == "onnxruntime-all-outputs" and f"/{hidden}/" in worst.name, worst
    clean = {layer.name: layer.added for layer in errors["clean"].layers}
    assert worst.added > 5 * clean[worst.name]  # the outlier made it so


def test_debug_of_an_openvino_ir_names_the_broken_layer_first(outlier, tiny_artifacts, tmp_path):
    """NNCF's int8 IR of the outlier model: the hidden layer's MatMul adds the error (its input and
    its kernel quantized to one scale each), many times what it adds in the clean model's IR."""
    import nncf
    import openvino as ov

    from edge_opt.analysis.debug_openvino import debug_openvino
    from edge_opt.passes.convert import onnx_bytes

    float_path, _, x, hidden = outlier
    errors = {}
    for name, keras_path in (("broken", float_path), ("clean", tiny_artifacts["keras"].model_path)):
        f32 = onnx_bytes(load_keras(keras_path))
        (tmp_path / f"{name}.onnx").write_bytes(f32)
        rows = nncf.Dataset([row[None].astype(np.float32) for row in x])
        quantized = nncf.quantize(ov.Core().read_model(str(tmp_path / f"{name}.onnx")), rows, subset_size=len(x))
        ov.save_model(quantized, str(tmp_path / f"{name}.xml"), compress_to_fp16=False)
        errors[name] = debug_openvino(tmp_path / f"{name}.xml", keras_path, f32, x)
    worst = errors["broken"].layers[0]
    assert errors["broken"].method == "openvino-extra-outputs" and f"/{hidden}/" in worst.name, worst
    clean = {layer.name: layer.added for layer in errors["clean"].layers}
    assert worst.added > 5 * clean[worst.name] and not errors["broken"].unmatched
    assert any(layer.scale for layer in errors["broken"].layers)  # NNCF's activation quantizer, read back


def test_a_run_debugs_the_chosen_file_whose_accuracy_dropped(tiny_artifacts, adult_small, tmp_path):
    """checks.debug: the picked file's worst layers join its trust-check entry, checks.md and
    report.html (a chart of the error each layer adds and the error so far)."""
    from edge_opt.analysis.checks import checks_markdown, run_checks
    from edge_opt.analysis.config import ChecksConfig, DebugConfig
    from edge_opt.targets import load_profile
    from tests import runs

    art = tiny_artifacts["tflite_int8"]
    rec = runs.record("int8", target="cpu", artifact=art.summary(), accuracy_drop=0.02)
    off = {"fairness": None, "robustness": None, "explain": None, "edgetpu": False}
    cfg = ChecksConfig(**off, debug=DebugConfig(min_drop=0.01, rows=20, layers=2))
    out = run_checks(adult_small, tiny_artifacts["keras"], [rec], [load_profile("cpu")], cfg)
    found = out["artifacts"][art.id]["debug"]
    assert found["accuracy_drop"] == 0.02 and found["rows"] == 20 and len(found["layers"]) == 2
    assert "### debug" in checks_markdown({"adult": out}) and "worst layers first" in checks_markdown({"adult": out})
    quiet = run_checks(
        adult_small, tiny_artifacts["keras"], [{**rec, "accuracy_drop": 0.001}], [load_profile("cpu")], cfg
    )
    assert "debug" not in quiet["artifacts"][art.id]  # under min_drop: nothing to explain
    for name, checks in (("dropped", out), ("quiet", quiet)):
        runs.write(tmp_path / name, runs.results(rec, checks={"t": checks}))
        assert cli("report", tmp_path / name, "--html", tmp_path / f"{name}.html").returncode == 0
    html = (tmp_path / "dropped.html").read_text()
    block = html[html.index('data-section="debug"') : html.index("</section>", html.index('data-section="debug"'))]
    assert "lost 2.00% accuracy" in block and "<svg" in block and "per-layer error of" in block
    assert "No chosen file lost enough accuracy" in (tmp_path / "quiet.html").read_text()
