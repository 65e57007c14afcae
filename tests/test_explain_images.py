"""Explanations of a 32x32x3 image classifier: patches, a budget, saliency maps, degenerate rankings.

The classifier is trained here on synthetic images (a bright square whose place is the class)
and converted by edge-opt's own tflite pass, so the check sees a real deployed file.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_opt.analysis.data import EvalData
from edge_opt.analysis.explain import explain_check, render_explain, stability
from edge_opt.analysis.predictor import Predictor
from edge_opt.core.errors import BadInputError
from tests.conftest import assert_clean_error, cli, run_cli

SQUARES = ((0, 0), (12, 12), (24, 24))  # the class is where the bright 8x8 square sits
SMALL = {"rows": 40, "shap_rows": 3, "shap_samples": 80, "permutation_repeats": 2}


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(SQUARES), n)
    x = rng.uniform(0.0, 0.3, (n, 32, 32, 3)).astype(np.float32)
    for i, c in enumerate(y):
        r, q = SQUARES[c]
        x[i, r : r + 8, q : q + 8] += 0.7
    return x, y.astype(np.int64)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """The float CNN (keras), its fp32 TFLite artifact, and test rows as EvalData and .npz."""
    from edge_opt.models import ModelConfig, train_artifact
    from edge_opt.passes import PassContext, get_pass
    from edge_opt.run.optimize import user_dataset

    out = tmp_path_factory.mktemp("images")
    ds = user_dataset(*_images(300, seed=0), seed=0)
    root = train_artifact(ModelConfig(kind="cnn", hidden=[4], epochs=4, batch_size=32), ds, "squares", out)
    ctx = PassContext(target="cpu", calibration=ds.calibration(16), calibration_source="test")
    lite = get_pass("tflite").apply(root, {"precision": "fp32"}, out, ctx)
    x, y = _images(60, seed=1)
    np.savez(out / "test.npz", x=x, y=y)
    data = EvalData(x, y, [f"f{i}" for i in range(32 * 32 * 3)], len(SQUARES))
    return root.model_path, lite.model_path, data, out / "test.npz"


def test_image_defaults_patches_saliency_and_progress(images):
    keras_path, lite_path, data, _ = images
    lines: list[str] = []
    r = explain_check(
        Predictor(lite_path), data, float_model_path=keras_path, budget_s=300, progress=lines.append, **SMALL
    )
    # Defaults for images: SHAP and permutation over patches, integrated gradients on the float model.
    assert list(r["methods"]) == ["shap", "permutation", "ig"]
    assert r["patches"] == {"side": 4, "count": 64, "image": [32, 32, 3]}
    for method in ("shap", "permutation"):
        entry = r["methods"][method]
        assert "skipped" not in entry, entry
        assert len(entry["artifact"]) == len(entry["float"]) == 64 and "r0-3 c0-3" in entry["artifact"]
        assert "degenerate" not in entry and entry["rank_corr"] is not None
    # The model looks at the squares: the top SHAP patch lies inside one of them.
    top = next(iter(r["methods"]["shap"]["float"]))
    rows, cols = (tuple(int(v) for v in part[1:].split("-")) for part in top.split())
    assert any(r0 <= rows[0] and rows[1] < r0 + 8 and c0 <= cols[0] and cols[1] < c0 + 8 for r0, c0 in SQUARES), top
    ig = r["methods"]["ig"]
    assert ig["saliency"]["shape"] == [32, 32] and np.asarray(ig["saliency"]["map"]).shape == (32, 32)
    assert len(ig["float"]) == 64  # ranked by patch, not by flat pixel index
    # One estimate line before each method and one line after it.
    for method in ("shap", "permutation", "ig"):
        assert any(ln.startswith(f"explain: {method} on 2 model(s)") and "about" in ln for ln in lines), lines
        assert any(ln.startswith(f"explain: {method} done in") for ln in lines), lines
    assert r["budget_s"] == 300 and r["seconds"] > 0
    text = render_explain(r)
    assert "64 patches of 4x4 pixels" in text and "Saliency map 32x32" in text and "budget 300 s" in text
    json.dumps(r, allow_nan=False)


def test_a_budget_too_small_skips_methods_with_the_reason(images):
    keras_path, lite_path, data, _ = images
    lines: list[str] = []
    r = explain_check(
        Predictor(lite_path), data, float_model_path=keras_path, budget_s=1e-6, progress=lines.append, **SMALL
    )
    assert set(r["methods"]) == {"shap", "permutation", "ig"}
    for entry in r["methods"].values():
        assert entry["skipped"].startswith("over the 1e-06 s budget"), entry
    assert not any(k.endswith("rank_corr") for k in r["summary"])
    assert "Skipped shap: over the 1e-06 s budget" in render_explain(r)
    assert sum("skipped" in ln for ln in lines) == 3
    with pytest.raises(BadInputError, match="positive number of seconds"):
        explain_check(Predictor(lite_path), data, budget_s=0)


def test_a_constant_model_gives_a_degenerate_ranking_never_a_stable_one(images, tmp_path):
    """Permutation importance of a model that ignores its input is all zeros: undefined, not ρ = 1."""
    from edge_opt.core.tfkeras import keras

    _, _, data, _ = images
    k = keras()
    model = k.Sequential([k.Input(shape=(32, 32, 3)), k.layers.Flatten(), k.layers.Dense(3, "softmax")])
    model.layers[-1].set_weights([np.zeros((3072, 3), np.float32), np.array([2.0, 0.0, 0.0], np.float32)])
    model.save(str(tmp_path / "constant.keras"))
    constant = Predictor(tmp_path / "constant.keras")
    r = explain_check(constant, data, reference=constant, methods=("permutation",), **SMALL)
    entry, s = r["methods"]["permutation"], r["summary"]
    assert entry["degenerate"]["artifact"].startswith("all 64 attributions are equal")
    assert entry["rank_corr"] is None and "undefined" in entry and "all 64 attributions are equal" in entry["undefined"]
    assert s["permutation_rank_corr"] is None and s["permutation_top5_overlap"] is None
    assert s["permutation_degenerate"] == 1.0
    text = render_explain(r)
    assert "| permutation | undefined | – | – |" in text and "Degenerate" in text and "100%" not in text


def test_stability_of_ties_is_undefined():
    zeros = np.zeros(64)
    out = stability(zeros, zeros)
    assert out["rank_corr"] is None and out["top5_overlap"] is None and "equal" in out["undefined"]
    two = np.zeros(64)
    two[[3, 9]] = [0.01, 0.02]  # two features of 64 moved accuracy: no ranking to correlate
    out = stability(two, two)
    assert out["rank_corr"] is None and "too few to rank" in out["undefined"]
    assert out["top5_overlap"] == 1.0  # the top features that exist are shared; the tied zeros are not "top"
    other = np.zeros(64)
    other[[3, 20]] = [0.01, 0.02]
    assert stability(two, other)["top5_overlap"] == 0.5  # before: 1.0, the tied zeros counted as shared


def test_explain_command_on_images_shows_progress_and_says_float(images, tmp_path):
    keras_path, lite_path, _, npz = images
    out = tmp_path / "e.json"
    proc = run_cli(
        "explain",
        str(lite_path),
        "--data",
        str(npz),
        "--float",
        str(keras_path),
        "--methods",
        "permutation,ig",
        "--rows",
        "20",
        "--budget",
        "300",
        "--json",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert "explain: permutation on 2 model(s), 20 rows: about" in proc.stderr
    assert "explain: ig done in" in proc.stderr
    result = json.loads(out.read_text())
    assert result["methods"]["ig"]["saliency"]["shape"] == [32, 32]
    # A file outside its artifact folder, without --float: integrated gradients name the option to
    # pass, not an internal parameter (before: "pass float_model_path").
    foreign = tmp_path / "model.tflite"
    foreign.write_bytes(lite_path.read_bytes())
    assert_clean_error(cli("explain", str(foreign), "--data", str(npz), "--methods", "ig"), "pass --float FLOAT.keras")
