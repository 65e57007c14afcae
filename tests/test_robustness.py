"""Robustness checks on real models and runtimes: Adult (tiny LiteRT artifacts) and digits."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from edge_opt.analysis.data import EvalData
from edge_opt.analysis.predictor import Predictor
from edge_opt.analysis.robustness import (
    ATTACKS,
    SUMMARY_KEYS,
    box_of,
    render_robustness,
    robustness_check,
    square_attack,
)
from edge_opt.attacks import FloatModel, fgsm, gaussian_noise, pgd
from edge_opt.core.errors import BadInputError

SMALL = {"epsilons": (0.0, 0.3), "sigmas": (0.0, 0.3), "pgd_steps": 5, "blackbox_queries": 20}


@pytest.fixture(scope="module")
def adult_data(adult_small) -> EvalData:
    return EvalData.from_dataset(adult_small, rows=200)


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """A small MLP trained 3 epochs on digits, its fp32 LiteRT file, and 200 test rows."""
    from edge_opt.datasets import load_dataset
    from edge_opt.models import ModelConfig, train_artifact
    from edge_opt.passes import PassContext, get_pass

    ds = load_dataset("digits")
    out = tmp_path_factory.mktemp("digits")
    root = train_artifact(ModelConfig(hidden=[32], epochs=3, batch_size=32, learning_rate=3e-3), ds, "digits", out)
    ctx = PassContext(target="cpu", calibration=ds.calibration(32), calibration_source="test")
    tflite = get_pass("tflite").apply(root, {"precision": "fp32"}, out, ctx)
    return root.model_path, tflite.model_path, EvalData.from_dataset(ds, rows=200)


@pytest.fixture(scope="module")
def digits_result(digits_model):
    keras_path, tflite_path, data = digits_model
    return robustness_check(
        {"tflite": Predictor(tflite_path)}, keras_path, data, epsilons=(0.0, 0.1, 0.2), sigmas=(0.0, 0.1),
        blackbox_queries=50,
    )  # fmt: skip


def test_pgd_lowers_float_accuracy_and_beats_fgsm(digits_result):
    f = digits_result["float"]
    clean, pgd_acc, fgsm_acc = f["clean_accuracy"], f["curves"]["pgd"]["accuracy"], f["curves"]["fgsm"]["accuracy"]
    assert clean > 0.8  # a model worth attacking
    assert pgd_acc[0] == fgsm_acc[0] == clean
    assert pgd_acc[1] < clean - 0.15  # eps 0.1 of the [0, 1] pixel range
    assert all(p <= g for p, g in zip(pgd_acc, fgsm_acc, strict=True))
    assert f["curves"]["pgd"]["success_rate"][2] > 0.5
    assert 0 < f["curves"]["pgd"]["linf"][1] <= 0.1 + 1e-6


def test_blackbox_attack_lowers_litert_accuracy_within_budget(digits_model):
    _, tflite_path, data = digits_model
    pred = Predictor(tflite_path)
    x, y = data.x, data.y
    clean = pred.labels(x)
    before = pred.calls
    adv, used = square_attack(pred, x, y, 0.2, box_of(data), max_queries=30, seed=0)
    assert pred.calls - before <= len(x) * 30
    assert pred.calls - before == used.sum() and used.max() <= 30
    assert (used[clean != y] == 1).all()  # rows already wrong cost only the clean query
    robust = np.mean(pred.labels(adv) == y)
    assert robust < np.mean(clean == y) - 0.3
    assert np.abs(adv - x).max() <= 0.2 + 1e-6


def test_digits_check_reports_blackbox_and_noise(digits_result):
    art = digits_result["artifacts"]["tflite"]
    bb = art["curves"]["blackbox"]
    assert bb["epsilon"] == [0.0, 0.1, 0.2]
    assert bb["accuracy"][0] == art["clean_accuracy"] and bb["queries"][0] == 0
    assert bb["accuracy"][2] < art["clean_accuracy"] - 0.3
    assert all(q <= 50 for q in bb["queries"])
    # Clean rows, the shared fgsm / pgd / noise rows, then per epsilon the attack and its result.
    n, n_eps, n_sig = 200, 3, 2
    assert art["queries_total"] <= n * (1 + 2 * n_eps + n_sig + n_eps * (50 + 1))
    for res in (art, digits_result["float"]):
        noise = res["curves"]["noise"]
        assert noise["accuracy"][0] == res["clean_accuracy"] and noise["success_rate"][0] == 0.0
        assert noise["accuracy"][1] > res["clean_accuracy"] - 0.1  # sigma 0.1 pixel noise is mild


def test_transfer_to_litert_artifacts(tiny_artifacts, adult_data):
    arts = {name: Predictor(tiny_artifacts[name].model_path) for name in ("tflite", "tflite_int8")}
    res = robustness_check(arts, tiny_artifacts["keras"].model_path, adult_data, **SMALL)
    f = res["float"]["curves"]
    for name, art in res["artifacts"].items():
        c = art["curves"]
        assert c["pgd"]["accuracy"][1] < c["pgd"]["accuracy"][0], name  # the float model's rows transfer
        for attack in ATTACKS:
            want = [a - b for a, b in zip(c[attack]["accuracy"], f[attack]["accuracy"], strict=True)]
            assert art["deltas"][attack]["accuracy"] == pytest.approx(want)
    # The fp32 file computes what the float model does: the same rows fool it.
    fp32 = res["artifacts"]["tflite"]["curves"]
    for attack in ("fgsm", "pgd", "noise"):
        assert fp32[attack]["accuracy"] == pytest.approx(f[attack]["accuracy"], abs=0.011)
    summary = res["summary"]["tflite_int8"]
    assert summary["robust_accuracy@0.3"] == res["artifacts"]["tflite_int8"]["curves"]["pgd"]["accuracy"][1]
    assert summary["robust_accuracy_drop@0.3"] == pytest.approx(
        f["pgd"]["accuracy"][1] - summary["robust_accuracy@0.3"]
    )
    documented = {re.sub(r"@.*", "@", k) for k in SUMMARY_KEYS}
    assert {re.sub(r"@.*", "@", k) for k in summary} == documented
    json.dumps(res)  # a plain JSON document, for results.json


def test_perturbations_move_only_perturbable_features_within_range(tiny_artifacts, adult_data):
    model = FloatModel.load(tiny_artifacts["keras"].model_path)
    pred = Predictor(tiny_artifacts["tflite_int8"].model_path)
    x, y, box, eps = adult_data.x, adult_data.y, box_of(adult_data), 0.5
    lo, hi = np.minimum(adult_data.lower, x), np.maximum(adult_data.upper, x)
    inside = ((x >= adult_data.lower) & (x <= adult_data.upper)).all(axis=1)
    frozen = ~adult_data.perturbable
    assert frozen.sum() > 90 and adult_data.perturbable.sum() == 6
    outputs = {
        "fgsm": fgsm(model, x, y, eps, box),
        "pgd": pgd(model, x, y, eps, box, steps=5),
        "square": square_attack(pred, x, y, eps, box, max_queries=20)[0],
        "noise": gaussian_noise(x, eps, box),
    }
    for name, adv in outputs.items():
        assert adv.shape == x.shape and adv.dtype == np.float32, name
        assert np.array_equal(adv[:, frozen], x[:, frozen]), name
        assert (adv >= lo).all() and (adv <= hi).all(), name
        assert (adv[inside] >= adult_data.lower).all() and (adv[inside] <= adult_data.upper).all(), name
        assert (adv[:, adult_data.perturbable] != x[:, adult_data.perturbable]).any(), name
        if name != "noise":
            assert np.abs(adv - x).max() <= eps + 1e-6, name


def test_same_call_gives_identical_numbers(tiny_artifacts, adult_data):
    arts = lambda: {"int8": Predictor(tiny_artifacts["tflite_int8"].model_path)}  # noqa: E731
    path = tiny_artifacts["keras"].model_path
    first = robustness_check(arts(), path, adult_data, rows=100, seed=3, **SMALL)
    second = robustness_check(arts(), path, adult_data, rows=100, seed=3, **SMALL)
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_render_is_a_markdown_table(digits_result):
    text = render_robustness(digits_result)
    for attack in ATTACKS:
        assert f"**{attack}** accuracy" in text
    assert "| model | ε=0 | ε=0.1 | ε=0.2 |" in text and "| model | σ=0 | σ=0.1 |" in text
    assert "| tflite | " in text and "| float (keras) | " in text


def test_plot_curves(digits_result, tmp_path):
    pytest.importorskip("matplotlib")
    from edge_opt.analysis.robustness import plot_curves

    path = plot_curves(digits_result, tmp_path / "curves.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"epsilons": (0.0, -0.1)}, "epsilons must be finite and >= 0, got -0.1"),
        ({"sigmas": (float("nan"),)}, "sigmas must be finite and >= 0"),
        ({"epsilons": ()}, "epsilons must list at least one value"),
        ({"pgd_steps": 0}, "pgd_steps must be at least 1"),
        ({"blackbox_queries": 1}, "blackbox_queries must be at least 2"),
    ],
)
def test_bad_budgets(tiny_artifacts, adult_data, kwargs, fragment):
    with pytest.raises(BadInputError, match=re.escape(fragment)):
        robustness_check({}, tiny_artifacts["keras"].model_path, adult_data, **kwargs)


def test_data_with_the_wrong_features(tiny_artifacts, digits_model, adult_data):
    _, _, digits_data = digits_model
    wrong = r"data has 64 features per row \(shape \(8, 8, 1\)\) but the float model \(model.keras\) expects 10\d"
    with pytest.raises(BadInputError, match=wrong):
        robustness_check({}, tiny_artifacts["keras"].model_path, digits_data)
    # The float model fits, the artifact does not.
    digits_keras, _, _ = digits_model
    arts = {"adult": Predictor(tiny_artifacts["tflite"].model_path)}
    with pytest.raises(BadInputError, match=r"artifact 'adult' \(model.tflite\) expects 10\d"):
        robustness_check(arts, digits_keras, digits_data)
