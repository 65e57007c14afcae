import numpy as np
import pytest

from edge_opt.bench.stats import median_ci, summarize


def test_summary_matches_numpy():
    x = np.random.default_rng(1).lognormal(0, 0.3, 2000)
    s = summarize(x)
    assert s["n"] == 2000
    for key, q in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99)):
        assert s[key] == pytest.approx(np.percentile(x, q))
    assert s["mean"] == pytest.approx(x.mean())
    assert s["std"] == pytest.approx(x.std(ddof=1))
    assert (s["min"], s["max"]) == (x.min(), x.max())
    assert s["min"] <= s["p50"] <= s["p90"] <= s["p95"] <= s["p99"] <= s["max"]


def test_median_ci_brackets_median_and_narrows_with_n():
    rng = np.random.default_rng(2)
    small, large = np.sort(rng.normal(10, 1, 50)), np.sort(rng.normal(10, 1, 5000))
    lo_s, hi_s = median_ci(small)
    lo_l, hi_l = median_ci(large)
    assert lo_s <= np.median(small) <= hi_s
    assert lo_l <= np.median(large) <= hi_l
    assert hi_l - lo_l < hi_s - lo_s


def test_median_ci_coverage_is_near_nominal():
    rng = np.random.default_rng(3)
    hits = sum(lo <= 0 <= hi for lo, hi in (median_ci(np.sort(rng.normal(0, 1, 101))) for _ in range(400)))
    assert 0.92 <= hits / 400 <= 0.99


def test_outliers_counted_with_tukey_fences():
    x = np.concatenate([np.full(100, 1.0) + np.linspace(0, 0.01, 100), [50.0, 80.0]])
    assert summarize(x)["outliers"] == 2


def test_empty_samples_rejected():
    with pytest.raises(ValueError):
        summarize([])
