"""Explainers on real models and runtimes: a model that reads one feature, and the tiny Adult artifacts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_opt.analysis.data import EvalData
from edge_opt.analysis.explain import FlatModel, _batched, explain_check, render_explain, shap_values, stability
from edge_opt.analysis.predictor import Predictor
from edge_opt.core.errors import BadInputError

USED = "education-num"  # the only input the one-feature model reads; not the first column
SMALL = {"rows": 150, "shap_rows": 8, "permutation_repeats": 2}


@pytest.fixture(scope="module")
def data(adult_small) -> EvalData:
    return EvalData.from_dataset(adult_small)


@pytest.fixture(scope="module")
def one_feature(tmp_path_factory, data):
    """Keras and fp32 TFLite files of an MLP whose first Dense layer reads only ``USED``."""
    from edge_opt.core.tfkeras import keras, tf

    k = keras()
    model = k.Sequential([k.Input(shape=(data.n_features,)), k.layers.Dense(8, "relu"), k.layers.Dense(1, "sigmoid")])
    w1 = np.zeros((data.n_features, 8), dtype=np.float32)
    w1[data.feature_names.index(USED)] = np.linspace(0.5, 2.0, 8)
    model.layers[0].set_weights([w1, np.linspace(-1.0, 1.0, 8).astype(np.float32)])
    model.layers[1].set_weights([np.full((8, 1), 0.5, dtype=np.float32), np.array([-2.0], dtype=np.float32)])
    out = tmp_path_factory.mktemp("one_feature")
    model.save(str(out / "model.keras"))
    (out / "model.tflite").write_bytes(tf().lite.TFLiteConverter.from_keras_model(model).convert())
    return out / "model.keras", out / "model.tflite"


@pytest.fixture(scope="module")
def tiny_check(tiny_artifacts, data):
    """The default check of the tiny Adult fp32 TFLite artifact against its float model."""
    reference = Predictor(tiny_artifacts["keras"].model_path)
    return explain_check(Predictor(tiny_artifacts["tflite"].model_path), data, reference=reference), reference


def test_one_feature_model_ranks_its_feature_first(one_feature, data):
    keras_path, tflite_path = one_feature
    r = explain_check(
        Predictor(tflite_path),
        data,
        float_model_path=keras_path,
        methods=("shap", "permutation", "pdp", "ig", "lime"),  # LIME: row 0 by default
        pdp_features=[USED, "age"],
        **SMALL,
    )
    m = r["methods"]
    for method in ("shap", "permutation"):
        for role in ("float", "artifact"):
            ranked = list(m[method][role].items())
            assert ranked[0][0] == USED and ranked[0][1] > 0, (method, role, ranked[:3])
            assert all(abs(v) < 1e-6 for _, v in ranked[1:]), (method, role, ranked[:3])
    assert next(iter(m["ig"]["float"])) == USED
    assert m["ig"]["completeness_gap"] < 0.02
    assert r["lime"]["row"] == 0 and r["lime"]["implementation"].startswith("lime ")
    assert USED in r["lime"]["artifact"][0][0]

    used, unused = m["pdp"]["features"][USED], m["pdp"]["features"]["age"]
    assert np.ptp(used["artifact"]) > 0.05 and np.all(np.diff(used["artifact"]) >= 0)  # increasing by construction
    assert np.ptp(unused["artifact"]) < 1e-6 and np.ptp(unused["ice"], axis=1).max() < 1e-6
    assert len(used["grid"]) == len(used["artifact"]) == len(used["float"]) and len(used["ice"]) == 5
    assert r["summary"]["pdp_max_delta"] < 1e-4
    assert json.loads(json.dumps(r, allow_nan=False))["summary"] == r["summary"]  # the CLI writes it as JSON


def test_tflite_keeps_the_float_models_attributions(tiny_check):
    r, _ = tiny_check
    s = r["summary"]
    assert s["shap_rank_corr"] > 0.9 and s["permutation_rank_corr"] > 0.9
    assert s["shap_top5_overlap"] >= 0.8 and s["permutation_top5_overlap"] >= 0.8
    assert list(r["methods"]["pdp"]["features"]) == ["age", "hours-per-week"]
    assert 0 < s["seconds"] == r["seconds"]  # the time it took is recorded (never asserted: machines differ)


def test_int8_stability_is_computed(tiny_artifacts, tiny_check, data):
    _, reference = tiny_check
    r = explain_check(Predictor(tiny_artifacts["tflite_int8"].model_path), data, reference=reference, **SMALL)
    s = r["summary"]
    for method in ("shap", "permutation"):
        assert -1 <= s[f"{method}_rank_corr"] <= 1
        assert 0 <= s[f"{method}_top5_overlap"] <= 1 and 0 <= s[f"{method}_top10_overlap"] <= 1
    assert s["shap_rank_corr"] > 0.8


def test_same_seed_same_attributions(tiny_artifacts, data):
    lite = Predictor(tiny_artifacts["tflite"].model_path)

    def run(seed):
        r = explain_check(lite, data, seed=seed, lime_row=0, **SMALL)
        methods = {m: {k: v for k, v in e.items() if k != "seconds"} for m, e in r["methods"].items()}
        return methods, r["lime"]["artifact"]

    (first, lime), (again, lime_again), (other, _) = run(0), run(0), run(1)
    assert first == again and lime == lime_again
    assert first["shap"]["artifact"] != other["shap"]["artifact"]  # the seed does reach the sampling


def test_batched_calls_give_the_direct_results(tiny_artifacts, data):
    x = data.x[:150].reshape(150, -1)
    keras = FlatModel(Predictor(tiny_artifacts["keras"].model_path), data.x.shape[1:], 2)
    assert keras.batch
    args = (x[:2], x[:20], np.ones(2, dtype=np.int64), 0, 120)
    batched = shap_values(keras, *args)
    keras.batch = False
    np.testing.assert_allclose(batched, shap_values(keras, *args), atol=1e-6)

    # A query that depends on an earlier answer misses the recording and goes to the model.
    lite = FlatModel(Predictor(tiny_artifacts["tflite"].model_path), data.x.shape[1:], 2)
    lite.batch = True

    def adaptive(f):
        first = f(x[:4])
        return f(x[:4] + first[:, :1])

    np.testing.assert_array_equal(_batched(lite, adaptive), lite(x[:4] + lite(x[:4])[:, :1]))


def test_stability_figures():
    a = np.array([0.5, 0.4, 0.3, 0.2, 0.1, 0.0, 0.0])
    same = stability(a, a * 2)
    assert same == {"rank_corr": pytest.approx(1.0), "top5_overlap": 1.0, "top10_overlap": 1.0}
    swapped = stability(a, np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.0, 0.0]))
    assert swapped["rank_corr"] == pytest.approx(-1.0) and swapped["top5_overlap"] == 1.0
    assert stability(np.zeros(3), np.zeros(3))["rank_corr"] is None


def test_render_shows_top_features_stability_and_time(tiny_check):
    r, _ = tiny_check
    md = render_explain(r)
    top = next(iter(r["methods"]["shap"]["float"]))
    assert "## Explanations: model.tflite" in md and top in md
    assert "| shap |" in md and "| permutation |" in md and "Spearman" in md
    assert f"Time: {r['seconds']:.1f} s" in md


def test_bad_input(tiny_artifacts, data):
    lite = Predictor(tiny_artifacts["tflite"].model_path)
    with pytest.raises(BadInputError, match="unknown feature.*no-such-feature"):
        explain_check(lite, data, pdp_features=["no-such-feature"])
    narrow = EvalData(data.x[:20, :50], data.y[:20], data.feature_names[:50], 2)
    with pytest.raises(BadInputError, match="takes 108 features"):
        explain_check(lite, narrow)
    with pytest.raises(BadInputError, match="unknown explanation method"):
        explain_check(lite, data, methods=("shap", "saliency"))
    with pytest.raises(BadInputError, match="float Keras model"):
        explain_check(lite, data, methods=("ig",))
    with pytest.raises(BadInputError, match="LIME row"):
        explain_check(lite, data, lime_row=len(data.x))


def test_time_estimates_follow_the_batches_the_methods_send():
    """Issue 19 (13): before, a 64-row probe charged every row its small-batch cost: SHAP was
    estimated at 28.3 s and took 1.0 s, and `--budget 5` cut it to 6 of 50 rows. Here a model
    whose cost per row falls with the batch (as vectorized runtimes do), on a clock it advances."""
    from edge_opt.analysis.explain import _Planner

    now = [0.0]

    def cost(rows: int) -> float:  # 1 ms a call; 50 µs a row up to 64 rows, 1 µs a row beyond
        return 1e-3 + 50e-6 * min(rows, 64) + 1e-6 * max(rows - 64, 0)

    def model(x):
        now[0] += cost(len(x))
        return np.zeros((len(x), 1))

    x = np.zeros((400, 8), dtype=np.float32)
    plan = _Planner({"m": model}, x, budget_s=5.0, start=0.0, progress=lambda _: None, clock=lambda: now[0])
    # Kernel SHAP on 50 rows: per row one call of (samples + 1) x background rows (here 100 x 50).
    calls = [100 * 50] * 50 + [1] * 51
    true = sum(cost(r) for r in calls)
    est = plan.estimate(rows=50 * 100 * 50, calls=2 * 50 + 1)
    assert true / 2 <= est <= true * 2, (est, true)
    now[0] = 0.0  # the budget's clock starts again: all 50 rows fit 5 s
    assert plan.fit("shap", 50, 2, lambda k: k * 100 * 50, lambda k: 2 * k + 1) == 50
