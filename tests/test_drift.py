"""Data drift on real Adult features, prediction drift through a real runtime, table files."""

import json

import numpy as np
import pytest

from edge_opt.analysis.drift import drift_check, load_table, render_drift
from edge_opt.analysis.predictor import Predictor
from edge_opt.errors import BadInputError


@pytest.fixture(scope="module")
def adult(adult_small):
    return adult_small.x_train, adult_small.x_test, adult_small.feature_names


def test_shifted_age_drifts_and_nothing_else(adult):
    ref, test, names = adult
    new = test.copy()
    new[:, names.index("age")] += 1.0  # one standard deviation: age is standardised
    res = drift_check(ref, new, names)
    json.dumps(res, allow_nan=False)
    assert res["summary"]["drifted_features"] == ["age"] and res["summary"]["n_drifted"] == 1
    assert res["drifted"] is True
    age = res["features"]["age"]
    assert age["kind"] == "continuous" and age["test"] == "ks" and age["p_value"] < 1e-10 and age["psi"] > 1
    # Adult's one-hot columns are grouped back into their original columns: 6 continuous + 8.
    assert res["summary"]["n_features"] == 14
    assert res["features"]["sex"]["columns"] == ["sex=Female", "sex=Male"]

    same = drift_check(ref, test, names)  # train split vs test split, no shift
    assert same["summary"]["n_drifted"] == 0 and same["drifted"] is False
    assert all(f["verdict"] == "ok" for f in same["features"].values())
    text = render_drift(res)
    assert "| age | continuous | ks |" in text and "**drift**" in text and "Drifted features (1 of 14): age" in text


def test_categorical_frequency_change_drifts(adult):
    ref, test, names = adult
    new = test
    women = np.flatnonzero(new[:, names.index("sex=Female")] == 1)
    keep = np.ones(len(new), dtype=bool)
    keep[women] = False
    keep[women[::10]] = True  # keep one woman in ten
    res = drift_check(ref, new[keep], names)
    sex = res["features"]["sex"]
    assert sex["kind"] == "categorical" and sex["test"] == "chi2" and sex["verdict"] == "drift"
    assert sex["top_shifts"]["Female"][1] < 0.1 < sex["top_shifts"]["Female"][0]
    assert "sex" in res["summary"]["drifted_features"]

    # A categorical column of codes (no one-hot), marked by the mask.
    codes_ref = np.c_[np.repeat([0.0, 1.0, 2.0], [500, 300, 200])]
    codes_new = np.c_[np.repeat([0.0, 1.0, 2.0], [200, 300, 500])]
    res = drift_check(codes_ref, codes_new, ["colour"], categorical=np.array([True]))
    assert res["features"]["colour"]["kind"] == "categorical" and res["summary"]["drifted_features"] == ["colour"]


def test_prediction_drift_through_the_runtime(adult, tiny_artifacts):
    _, test, names = adult
    predictor = Predictor(tiny_artifacts["tflite_int8"].model_path)
    same = drift_check(test[:3000], test[:3000], names, predictor=predictor)
    assert same["prediction"]["psi"] == pytest.approx(0.0, abs=1e-9) and same["prediction"]["verdict"] == "ok"
    assert same["prediction"]["score"] == "P(class 1)" and same["drifted"] is False
    shifted = test[:3000].copy()
    shifted[:, names.index("capital-gain")] += 3.0
    res = drift_check(test[:3000], shifted, names, predictor=predictor)
    assert res["summary"]["prediction_psi"] == res["prediction"]["psi"] > same["prediction"]["psi"]
    assert res["prediction"]["new_mean"] != res["prediction"]["reference_mean"]
    assert "Prediction drift (P(class 1))" in render_drift(res)
    with pytest.raises(BadInputError, match="expects 108 features per row, the data has 50"):
        drift_check(test[:100, :50], test[100:200, :50], names[:50], predictor=predictor)


def test_bad_inputs(adult):
    ref, test, names = adult
    with pytest.raises(BadInputError, match="reference has 108 features per row, new data has 107"):
        drift_check(ref, test[:, :107], names)
    with pytest.raises(BadInputError, match="new data is empty"):
        drift_check(ref, test[:0], names)
    with pytest.raises(BadInputError, match="3 feature names for 108 features"):
        drift_check(ref, test, names[:3])
    with pytest.raises(BadInputError, match="categorical mask has 2 entries"):
        drift_check(ref, test, names, categorical=np.array([True, False]))
    with pytest.raises(BadInputError, match="unknown drift threshold 'alpha'"):
        drift_check(ref, test, names, thresholds={"alpha": 0.05})
    bad = test[:100].copy()
    bad[3, 5] = np.nan
    with pytest.raises(BadInputError, match="NaN or infinite values in feature 5"):
        drift_check(ref, bad, names)


def test_load_table_good_files(tmp_path, adult):
    _, test, names = adult
    np.savez(tmp_path / "t.npz", x=test[:50], feature_names=np.array(names))
    x, got = load_table(tmp_path / "t.npz")
    assert got == names and np.array_equal(x, test[:50]) and x.dtype == np.float32
    np.save(tmp_path / "t.npy", test[:20])
    x, got = load_table(tmp_path / "t.npy")
    assert x.shape == (20, 108) and got[:2] == ["f0", "f1"]
    (tmp_path / "t.csv").write_text("age,hours-per-week\n38,40\n52.5,60\n")
    x, got = load_table(tmp_path / "t.csv")
    assert got == ["age", "hours-per-week"] and x.tolist() == [[38.0, 40.0], [52.5, 60.0]]
    x, got = load_table(tmp_path / "t.npz")
    assert drift_check(x, x, got)["drifted"] is False


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("missing.npz", None, "file not found"),
        ("corrupt.npz", b"PK\x03\x04 not really a zip archive", "cannot read it"),
        ("random.npy", bytes(range(256)) * 4, "cannot read it"),
        ("text.csv", b"age,sex\n38,Male\n", "cannot read it"),
        ("ragged.csv", b"age,hours\n38,40\n52\n", "cannot read it"),
        ("empty.csv", b"", "empty file"),
        ("header-only.csv", b"age,hours\n", "no rows"),
        ("table.parquet", b"PAR1", "unknown table extension '.parquet'"),
        ("nox.npz", "nox", "no array 'x'"),
        ("strings.npy", "strings", "features must be numeric"),
    ],
)
def test_load_table_bad_files(tmp_path, name, content, fragment):
    path = tmp_path / name
    if content == "nox":
        np.savez(path, features=np.zeros((2, 2)))
    elif content == "strings":
        np.save(path, np.array([["a", "b"]]))
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(BadInputError) as info:
        load_table(path)
    message = str(info.value)
    assert fragment in message and "\n" not in message, message
