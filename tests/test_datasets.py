"""The shipped datasets, loaded from the real files (no mocks)."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from edge_opt.core.errors import BadInputError
from edge_opt.datasets import DATASETS, Dataset, load_dataset
from edge_opt.datasets.adult import AGE_BUCKETS, CONTINUOUS

ADULT_TRAIN_FILE_ROWS = 32_561
ADULT_TEST_ROWS = 16_281


@pytest.fixture(scope="module")
def adult() -> Dataset:
    return load_dataset("adult")


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def _splits(d: Dataset):
    return [
        (d.x_train, d.y_train, d.slices_train),
        (d.x_val, d.y_val, d.slices_val),
        (d.x_test, d.y_test, d.slices_test),
    ]


def test_registry():
    assert DATASETS == ("adult", "digits")


def test_unknown_name_raises_bad_input():
    with pytest.raises(BadInputError, match="adult, digits"):
        load_dataset("mnist")


def test_adult_row_counts(adult):
    assert len(adult.x_train) + len(adult.x_val) == ADULT_TRAIN_FILE_ROWS
    assert len(adult.x_val) == pytest.approx(ADULT_TRAIN_FILE_ROWS * 0.1, abs=1)
    assert len(adult.x_test) == ADULT_TEST_ROWS


def test_adult_arrays(adult):
    assert (adult.name, adult.task, adult.n_classes) == ("adult", "binary", 2)
    n_features = len(adult.feature_names)
    assert len(set(adult.feature_names)) == n_features
    assert adult.input_shape == (n_features,)
    for x, y, _ in _splits(adult):
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.shape == (len(y), n_features)
        assert np.isfinite(x).all()
        assert set(np.unique(y)) == {0, 1}


def test_adult_positive_rate(adult):
    assert adult.y_train.mean() == pytest.approx(0.24, abs=0.01)
    assert adult.y_test.mean() == pytest.approx(0.24, abs=0.01)


def test_adult_feature_names(adult):
    names = adult.feature_names
    # 6 continuous + 102 categories, whatever the seed: native-country
    # "Holand-Netherlands" has one row in the train file, which seed 6 puts in val.
    assert len(names) == 108
    assert len(load_dataset("adult", seed=6).feature_names) == 108
    assert names[: len(CONTINUOUS)] == list(CONTINUOUS)
    assert {"sex=Male", "sex=Female", "workclass=?", "race=White"} <= set(names)


def test_adult_encoding(adult):
    k = len(CONTINUOUS)
    cont = adult.x_train[:, :k]
    np.testing.assert_allclose(cont.mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(cont.std(axis=0), 1, atol=1e-3)
    # One-hot block: one 1 per categorical column, except categories unseen in train.
    onehot = adult.x_train[:, k:]
    assert set(np.unique(onehot)) == {0.0, 1.0}
    assert (onehot.sum(axis=1) == 8).all()
    assert (adult.x_test[:, k:].sum(axis=1) <= 8).all()


def test_adult_slices(adult):
    expected = {
        "sex": {"Male", "Female"},
        "race": {"White", "Black", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other"},
        "age_bucket": {"<25", "25-44", "45-64", "65+"},
    }
    for _, y, slices in _splits(adult):
        assert set(slices) == set(expected)
        for key, values in slices.items():
            assert len(values) == len(y)
            assert set(np.unique(values)) == expected[key]


def test_adult_age_buckets_follow_age(adult):
    age = adult.x_test[:, adult.feature_names.index("age")]
    buckets = adult.slices_test["age_bucket"]
    for younger, older in itertools.pairwise(AGE_BUCKETS):
        assert age[buckets == younger].max() < age[buckets == older].min()


def test_adult_sex_slice_matches_features(adult):
    is_male = adult.x_train[:, adult.feature_names.index("sex=Male")] == 1
    np.testing.assert_array_equal(is_male, adult.slices_train["sex"] == "Male")


def test_adult_seed(adult):
    same = load_dataset("adult", seed=0)
    for (x, y, s), (x2, y2, s2) in zip(_splits(adult), _splits(same), strict=True):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
        for key in s:
            np.testing.assert_array_equal(s[key], s2[key])
    other = load_dataset("adult", seed=1)
    assert not np.array_equal(adult.x_val, other.x_val)
    np.testing.assert_array_equal(adult.y_test, other.y_test)


def test_adult_train_rows(adult):
    small = load_dataset("adult", train_rows=500)
    assert small.x_train.shape == (500, len(adult.feature_names))
    assert len(small.y_train) == 500
    assert all(len(v) == 500 for v in small.slices_train.values())
    # Only train shrinks; encoders and the other splits stay as in the full load.
    assert small.feature_names == adult.feature_names
    np.testing.assert_array_equal(small.x_val, adult.x_val)
    np.testing.assert_array_equal(small.x_test, adult.x_test)
    # The subsample is made of rows of the full train split.
    full_rows = {row.tobytes() for row in adult.x_train}
    assert all(row.tobytes() in full_rows for row in small.x_train)


@pytest.mark.parametrize("rows", [0, -1, ADULT_TRAIN_FILE_ROWS])
def test_adult_train_rows_out_of_range(rows):
    with pytest.raises(BadInputError, match="train_rows"):
        load_dataset("adult", train_rows=rows)


def test_loads_do_not_share_mutable_state():
    first = load_dataset("adult", train_rows=50)
    first.y_test[:] = 7
    first.slices_test["sex"][:] = "x"
    second = load_dataset("adult", train_rows=50)
    assert set(np.unique(second.y_test)) == {0, 1}
    assert set(np.unique(second.slices_test["sex"])) == {"Male", "Female"}


def test_calibration(adult):
    calib = adult.calibration(100)
    assert calib.shape == (100, *adult.input_shape)
    assert calib.dtype == np.float32
    np.testing.assert_array_equal(calib, adult.calibration(100))
    np.testing.assert_array_equal(calib, adult.calibration(100, seed=0))
    assert not np.array_equal(calib, adult.calibration(100, seed=1))
    # Distinct rows of x_train (sampled without replacement).
    full_rows = {row.tobytes() for row in adult.x_train}
    assert all(row.tobytes() in full_rows for row in calib)


@pytest.mark.parametrize("n", [0, 10**6])
def test_calibration_size_out_of_range(digits, n):
    with pytest.raises(BadInputError, match="calibration"):
        digits.calibration(n)


def test_dataset_is_frozen(digits):
    with pytest.raises(dataclasses.FrozenInstanceError):
        digits.name = "other"


def test_digits(digits):
    assert (digits.name, digits.task, digits.n_classes) == ("digits", "multiclass", 10)
    assert digits.input_shape == (8, 8, 1)
    assert len(digits.feature_names) == 64
    assert digits.feature_names[:2] == ["px_0_0", "px_0_1"]
    sizes = [len(y) for _, y, _ in _splits(digits)]
    assert sum(sizes) == 1797
    np.testing.assert_allclose(np.array(sizes) / 1797, [0.7, 0.1, 0.2], atol=0.01)
    for x, y, slices in _splits(digits):
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.shape == (len(y), 8, 8, 1)
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert set(np.unique(y)) == set(range(10))
        assert slices == {}
    assert digits.x_train.max() == 1.0


def test_digits_seed_and_train_rows(digits):
    np.testing.assert_array_equal(load_dataset("digits").x_test, digits.x_test)
    assert not np.array_equal(load_dataset("digits", seed=1).x_test, digits.x_test)
    small = load_dataset("digits", train_rows=100)
    assert small.x_train.shape == (100, 8, 8, 1)
    assert len(small.y_train) == 100
    np.testing.assert_array_equal(small.x_test, digits.x_test)


def test_the_dataset_says_what_an_attack_may_move_and_what_pdp_shows():
    """Dataset rules live in the dataset, and the trust checks take them from there."""
    from dataclasses import replace

    from edge_opt.analysis.data import EvalData
    from edge_opt.datasets import load_dataset

    adult = load_dataset("adult", train_rows=500)
    moved = [n for n, ok in zip(adult.feature_names, adult.attackable, strict=True) if ok]
    assert moved == ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
    assert adult.pdp_features == ("age", "hours-per-week")
    digits = load_dataset("digits")
    assert digits.attackable is None and digits.pdp_features == ()
    assert EvalData.from_dataset(digits).perturbable.all()
    # Any dataset's own rules reach the checks, not only Adult's (no name is special-cased).
    custom = replace(digits, name="adult-like", attackable=np.arange(64) < 8, pdp_features=("px_0_1",))
    data = EvalData.from_dataset(custom, rows=20)
    assert data.perturbable.sum() == 8 and data.pdp_features == ("px_0_1",)
