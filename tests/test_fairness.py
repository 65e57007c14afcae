"""Sliced metrics and fairness: hand-computed figures, then real artifacts through their runtimes."""

import json

import numpy as np
import pytest

from edge_opt.analysis.data import EvalData
from edge_opt.analysis.fairness import fairness_check, render_fairness, slice_metrics
from edge_opt.analysis.predictor import Predictor
from edge_opt.core.errors import BadInputError

# Two groups of six rows, written out by hand.
#   A: y 1 1 1 0 0 0 / pred 1 1 0 1 1 0 -> TP 2, FN 1, FP 2, TN 1: acc 3/6, sel 4/6, TPR 2/3, FPR 2/3
#   B: y 1 1 0 0 0 0 / pred 1 0 0 0 0 0 -> TP 1, FN 1, FP 0, TN 4: acc 5/6, sel 1/6, TPR 1/2, FPR 0
# DP difference 4/6 - 1/6 = 1/2, DP ratio (1/6)/(4/6) = 1/4, equal opportunity |2/3 - 1/2| = 1/6,
# equalized odds max(1/6, |2/3 - 0|) = 2/3. Scores 0.8 / 0.2: AUC A 4.5/9 = 0.5 (ties count half),
# AUC B 6/8 = 0.75.
Y = np.array([1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0])
PRED = np.array([1, 1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0])
GROUP = np.array(["A"] * 6 + ["B"] * 6)
SUMMARY_KEYS = {
    "worst_slice_accuracy",
    "worst_slice_accuracy_drop",
    "demographic_parity_difference",
    "equalized_odds_difference",
    "flips",
}


def test_hand_computed_example():
    res = slice_metrics(Y, np.where(PRED == 1, 0.8, 0.2), {"grp": GROUP}, min_size=1)
    a, b = res["columns"]["grp"]["slices"]["A"], res["columns"]["grp"]["slices"]["B"]
    assert (a["n"], b["n"]) == (6, 6)
    assert a["accuracy"] == pytest.approx(3 / 6) and b["accuracy"] == pytest.approx(5 / 6)
    assert a["precision"] == pytest.approx(2 / 4) and b["precision"] == pytest.approx(1.0)
    assert a["recall"] == pytest.approx(2 / 3) and b["recall"] == pytest.approx(1 / 2)
    assert a["fpr"] == pytest.approx(2 / 3) and b["fpr"] == pytest.approx(0.0)
    assert a["fnr"] == pytest.approx(1 / 3) and b["fnr"] == pytest.approx(1 / 2)
    assert a["auc"] == pytest.approx(0.5) and b["auc"] == pytest.approx(0.75)
    assert res["overall"]["accuracy"] == pytest.approx(8 / 12)
    fair = res["columns"]["grp"]["fairness"]
    assert fair["demographic_parity_difference"] == pytest.approx(1 / 2)
    assert fair["demographic_parity_ratio"] == pytest.approx(1 / 4)
    assert fair["equal_opportunity_difference"] == pytest.approx(1 / 6)
    assert fair["equalized_odds_difference"] == pytest.approx(2 / 3)
    assert (fair["worst_slice"], fair["worst_slice_accuracy"]) == ("A", pytest.approx(0.5))


def test_figures_agree_with_fairlearn_functions():
    from fairlearn.metrics import (
        demographic_parity_difference,
        demographic_parity_ratio,
        equal_opportunity_difference,
        equalized_odds_difference,
    )

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 900)
    proba = np.clip(0.3 * y + rng.random(900) * 0.7, 0, 1)
    groups = rng.choice(["x", "y", "z"], 900, p=[0.5, 0.3, 0.2])
    fair = slice_metrics(y, proba, {"g": groups}, n_boot=0)["columns"]["g"]["fairness"]
    pred, kw = (proba >= 0.5).astype(int), {"sensitive_features": groups}
    assert fair["demographic_parity_difference"] == pytest.approx(demographic_parity_difference(y, pred, **kw))
    assert fair["demographic_parity_ratio"] == pytest.approx(demographic_parity_ratio(y, pred, **kw))
    assert fair["equalized_odds_difference"] == pytest.approx(equalized_odds_difference(y, pred, **kw))
    assert fair["equal_opportunity_difference"] == pytest.approx(equal_opportunity_difference(y, pred, **kw))


def test_bootstrap_cis_are_reproducible_and_match_a_plain_bootstrap():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    proba = np.clip(0.3 * y + rng.normal(0.35, 0.2, 400), 0, 1).round(2)
    slices = {"g": np.array(["a", "b"] * 200)}
    res = slice_metrics(y, proba, slices, n_boot=300, seed=7)
    assert res == slice_metrics(y, proba, slices, n_boot=300, seed=7)
    assert res["overall"]["ci"] != slice_metrics(y, proba, slices, n_boot=300, seed=8)["overall"]["ci"]
    for entry in [res["overall"], *res["columns"]["g"]["slices"].values()]:
        for metric in ("accuracy", "precision", "recall", "fpr", "fnr", "auc"):
            lo, hi = entry["ci"][metric]
            assert lo <= entry[metric] <= hi, (metric, lo, entry[metric], hi)
    # The vectorised AUC bootstrap against a loop over index resamples through scikit-learn.
    idx = rng.integers(0, len(y), (300, len(y)))
    plain = np.percentile([roc_auc_score(y[i], proba[i]) for i in idx], [2.5, 97.5])
    assert res["overall"]["ci"]["auc"] == pytest.approx(plain, abs=0.01)
    acc = np.percentile([np.mean((proba[i] >= 0.5) == y[i]) for i in idx], [2.5, 97.5])
    assert res["overall"]["ci"]["accuracy"] == pytest.approx(acc, abs=0.01)


def test_small_and_one_class_slices_are_marked_not_hidden():
    y = np.r_[Y, [0, 0, 0]]
    proba = np.r_[np.where(PRED == 1, 0.8, 0.2), [0.9, 0.1, 0.1]]
    res = slice_metrics(y, proba, {"grp": np.r_[GROUP, ["C"] * 3]}, min_size=5)
    col = res["columns"]["grp"]
    c = col["slices"]["C"]
    assert c["small"] is True and c["n"] == 3 and c["accuracy"] == pytest.approx(2 / 3)
    assert c["auc"] is None and c["recall"] is None and c["fnr"] is None  # no positive rows
    assert not col["slices"]["A"]["small"]
    assert col["fairness"]["excluded_small"] == ["C"] and col["fairness"]["slices_compared"] == ["A", "B"]
    assert col["fairness"]["demographic_parity_difference"] == pytest.approx(1 / 2)  # as without C


@pytest.fixture(scope="module")
def eval_data(adult_small):
    return EvalData.from_dataset(adult_small, rows=3000)


@pytest.fixture(scope="module")
def biased_tflite(tmp_path_factory, adult_small):
    """A real model that says ">50K" exactly for men: one sigmoid unit reading ``sex=Male``."""
    from edge_opt.core.tfkeras import keras, tf

    k = keras()
    n = len(adult_small.feature_names)
    model = k.Sequential([k.Input(shape=(n,)), k.layers.Dense(1, activation="sigmoid")])
    weights = np.zeros((n, 1), dtype=np.float32)
    weights[adult_small.feature_names.index("sex=Male")] = 20.0
    model.layers[0].set_weights([weights, np.array([-10.0], dtype=np.float32)])
    path = tmp_path_factory.mktemp("biased") / "biased.tflite"
    path.write_bytes(tf().lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def test_biased_model_is_flagged(biased_tflite, tiny_artifacts, eval_data):
    res = fairness_check(Predictor(biased_tflite), eval_data, columns=["sex", "race"], n_boot=20)
    sex = res["artifact"]["columns"]["sex"]
    assert sex["slices"]["Male"]["selection_rate"] == 1.0 and sex["slices"]["Female"]["selection_rate"] == 0.0
    assert sex["fairness"]["demographic_parity_difference"] == pytest.approx(1.0)
    assert sex["fairness"]["demographic_parity_ratio"] == pytest.approx(0.0)
    assert res["summary"]["demographic_parity_difference"] == pytest.approx(1.0)
    assert res["reference"] is None and res["delta"] is None and res["summary"]["flips"] is None
    fair = fairness_check(Predictor(tiny_artifacts["tflite"].model_path), eval_data, columns=["sex"], n_boot=20)
    assert fair["summary"]["demographic_parity_difference"] < 0.5


def test_int8_artifact_against_float_reference(tiny_artifacts, eval_data):
    art, ref = Predictor(tiny_artifacts["tflite_int8"].model_path), Predictor(tiny_artifacts["keras"].model_path)
    res = fairness_check(art, eval_data, reference=ref, min_size=100, n_boot=50)
    json.dumps(res, allow_nan=False)  # plain, finite JSON
    assert res["columns"] == ["sex", "race", "age_bucket", "sex&race"]

    # Predictions recomputed here, through the same runtimes.
    art_pred, ref_pred = art(eval_data.x)[:, 1] >= 0.5, ref(eval_data.x)[:, 1] >= 0.5
    flipped = art_pred != ref_pred
    assert res["flips"]["overall"] == int(flipped.sum()) == res["summary"]["flips"]
    for name in ("sex", "race", "age_bucket"):
        labels = eval_data.slices[name]
        per_slice = res["flips"]["columns"][name]
        assert per_slice == {v: int(flipped[labels == v].sum()) for v in np.unique(labels)}
        assert sum(per_slice.values()) == res["flips"]["overall"]
    y = eval_data.y
    delta_acc = np.mean(art_pred == y) - np.mean(ref_pred == y)
    assert res["delta"]["overall"]["accuracy"] == pytest.approx(delta_acc)

    drops = []
    for name, col in res["artifact"]["columns"].items():
        for v, e in col["slices"].items():
            r = res["reference"]["columns"][name]["slices"][v]
            d = res["delta"]["columns"][name]["slices"][v]
            assert d["accuracy"] == pytest.approx(e["accuracy"] - r["accuracy"])
            assert e["small"] == (e["n"] < 100)
            if not e["small"]:
                drops.append(r["accuracy"] - e["accuracy"])
        dfair = res["delta"]["columns"][name]["fairness"]
        rfair = res["reference"]["columns"][name]["fairness"]
        if col["fairness"]["demographic_parity_difference"] is not None:
            expected = col["fairness"]["demographic_parity_difference"] - rfair["demographic_parity_difference"]
            assert dfair["demographic_parity_difference"] == pytest.approx(expected)

    # 3000 rows leave some race slices under 100 rows: marked, listed, left out of the figures.
    race = res["artifact"]["columns"]["race"]
    small = [v for v, e in race["slices"].items() if e["small"]]
    assert small and race["fairness"]["excluded_small"] == small
    summary = res["summary"]
    assert set(summary) == SUMMARY_KEYS
    assert summary["worst_slice_accuracy_drop"] == pytest.approx(max(drops))
    worst = min(c["fairness"]["worst_slice_accuracy"] for c in res["artifact"]["columns"].values())
    assert summary["worst_slice_accuracy"] == pytest.approx(worst)

    text = render_fairness(res)
    assert "| overall | 3000 |" in text and "| sex=Female |" in text and "small (<100)" in text
    assert "Δ acc vs float" in text and "worst_slice_accuracy_drop" in text


def test_bad_inputs(tiny_artifacts, eval_data):
    proba = np.where(PRED == 1, 0.8, 0.2)
    with pytest.raises(BadInputError, match=r"unknown slice column 'nope'.*available slice columns: grp"):
        slice_metrics(Y, proba, {"grp": GROUP}, columns=["nope"])
    with pytest.raises(BadInputError, match="unknown slice column 'nope'.*sex, race, age_bucket"):
        fairness_check(Predictor(tiny_artifacts["tflite"].model_path), eval_data, columns=[["sex", "nope"]])
    with pytest.raises(BadInputError, match="slice column 'grp' has no rows"):
        slice_metrics(Y, proba, {"grp": np.array([], dtype=str)})
    with pytest.raises(BadInputError, match="empty slice column list"):
        slice_metrics(Y, proba, {"grp": GROUP}, columns=[[]])
    with pytest.raises(BadInputError, match="no slice columns"):
        slice_metrics(Y, proba, {})
    narrow = EvalData(eval_data.x[:, :50], eval_data.y, eval_data.feature_names[:50], 2, eval_data.slices)
    with pytest.raises(BadInputError, match="expects 108 features per row, the data has 50"):
        fairness_check(Predictor(tiny_artifacts["tflite"].model_path), narrow)
    multiclass = EvalData(eval_data.x, eval_data.y, eval_data.feature_names, 3, eval_data.slices)
    with pytest.raises(BadInputError, match="binary task"):
        fairness_check(Predictor(tiny_artifacts["tflite"].model_path), multiclass)
