"""Data drift on real Adult features, prediction drift through a real runtime, table files."""

import json

import numpy as np
import pytest

from edge_opt.analysis.drift import drift_check, load_table, render_drift
from edge_opt.analysis.predictor import Predictor
from edge_opt.core.errors import BadInputError


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
    t = load_table(tmp_path / "t.npz")
    assert t.names == names and np.array_equal(t.x, test[:50]) and t.x.dtype == np.float32
    assert t.categorical is None  # inferred by drift_check
    np.save(tmp_path / "t.npy", test[:20])
    t = load_table(tmp_path / "t.npy")
    assert t.x.shape == (20, 108) and t.names[:2] == ["f0", "f1"]
    (tmp_path / "t.csv").write_text("age,label\n38,1\n52.5,0\n")
    t = load_table(tmp_path / "t.csv")  # every column of a table is a feature, "label" too
    assert t.names == ["age", "label"] and t.x.tolist() == [[38.0, 1.0], [52.5, 0.0]]
    t = load_table(tmp_path / "t.npz")
    assert drift_check(t.x, t.x, t.names)["drifted"] is False
    np.savez(tmp_path / "c.npz", x=test[:5, :3], feature_names=np.array(names[:3]), categorical=np.array(["fnlwgt"]))
    assert load_table(tmp_path / "c.npz").categorical.tolist() == [False, True, False]
    np.savez(tmp_path / "i.npz", x=test[:5, :3], categorical=np.array([0, 2]))
    assert load_table(tmp_path / "i.npz").categorical.tolist() == [True, False, True]


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("missing.npz", None, "file not found"),
        ("corrupt.npz", b"PK\x03\x04 not really a zip archive", "cannot read it"),
        ("random.npy", bytes(range(256)) * 4, "cannot read it"),
        ("text.csv", b"age,sex\n38,Male\n", "every value must be numeric"),
        ("ragged.csv", b"age,hours\n38,40\n52\n", "rows do not all have 2 columns"),
        ("empty.csv", b"", "needs a header row"),
        ("header-only.csv", b"age,hours\n", "at least one data row"),
        ("table.parquet", b"PAR1", "unknown data extension '.parquet'"),
        ("nox.npz", "nox", "no array named 'x'"),
        ("strings.npy", "strings", "features must be numeric"),
        ("nan.npy", "nan", "NaN, Inf"),
        ("badcat.npz", "badcat", "categorical column 'colour' is not one of its feature names"),
    ],
)
def test_load_table_bad_files(tmp_path, name, content, fragment):
    path = tmp_path / name
    if content == "nox":
        np.savez(path, features=np.zeros((2, 2)))
    elif content == "strings":
        np.save(path, np.array([["a", "b"]]))
    elif content == "nan":
        np.save(path, np.array([[1.0, np.nan]]))
    elif content == "badcat":
        np.savez(path, x=np.zeros((2, 2)), feature_names=np.array(["a", "b"]), categorical=np.array(["colour"]))
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(BadInputError) as info:
        load_table(path)
    message = str(info.value)
    assert fragment in message and "\n" not in message, message


def _one_hot(rng: np.random.Generator, n: int, shares: list[float]) -> np.ndarray:
    return np.eye(len(shares), dtype=np.float32)[rng.choice(len(shares), size=n, p=shares)]


def test_unnamed_one_hot_groups_and_codes_get_chi_square():
    """An .npz of unnamed columns (f0, f1, ...): a one-hot group, a 0/1 flag, codes, a continuous one."""
    rng = np.random.default_rng(0)

    def table(shares, flag_p, code_p, shift):
        n = 2000
        return np.c_[
            rng.normal(shift, 1.0, n),  # f0: continuous
            _one_hot(rng, n, shares),  # f1..f4: one categorical column, one-hot
            rng.random(n) < flag_p,  # f5: a 0/1 flag
            rng.choice(4, size=n, p=code_p),  # f6: codes 0..3
        ].astype(np.float32)

    ref = table([0.4, 0.3, 0.2, 0.1], 0.5, [0.25, 0.25, 0.25, 0.25], 0.0)
    new = table([0.1, 0.2, 0.3, 0.4], 0.5, [0.25, 0.25, 0.25, 0.25], 0.0)
    res = drift_check(ref, new)
    # Before: KS on each of the 7 columns, no chi-square anywhere.
    assert list(res["features"]) == ["f0", "f1..f4", "f5", "f6"]
    group = res["features"]["f1..f4"]
    assert group["kind"] == "categorical" and group["test"] == "chi2" and group["verdict"] == "drift"
    assert group["columns"] == ["f1", "f2", "f3", "f4"] and set(group["top_shifts"]) <= {"f1", "f2", "f3", "f4"}
    assert res["features"]["f5"]["test"] == res["features"]["f6"]["test"] == "chi2"
    assert res["features"]["f0"]["test"] == "ks"
    assert res["summary"]["drifted_features"] == ["f1..f4"]


def test_drift_command_takes_categorical_columns_from_the_file(tmp_path):
    from tests.conftest import run_cli

    rng = np.random.default_rng(1)
    ref = np.c_[rng.normal(size=600), rng.choice(30, size=600)].astype(np.float32)
    new = np.c_[rng.normal(size=600), rng.choice(30, size=600)].astype(np.float32)
    names = np.array(["x", "zip"])
    np.savez(tmp_path / "ref.npz", x=ref, feature_names=names, categorical=np.array(["zip"]))
    np.savez(tmp_path / "new.npz", x=new, feature_names=names)
    out = tmp_path / "d.json"
    proc = run_cli("drift", str(tmp_path / "ref.npz"), str(tmp_path / "new.npz"), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    features = json.loads(out.read_text())["features"]
    # 30 codes: more than inference would call categorical; the file's metadata says so.
    assert features["zip"]["test"] == "chi2" and features["x"]["test"] == "ks"
