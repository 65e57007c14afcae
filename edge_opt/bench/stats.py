"""Summaries of raw latency samples. Pure functions: the samples are the truth."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def summarize(samples_ms: Sequence[float], confidence: float = 0.95) -> dict:
    """Percentiles, moments, a distribution-free CI of the median, and a Tukey outlier count."""
    x = np.sort(np.asarray(samples_ms, dtype=np.float64))
    n = int(x.size)
    if n == 0:
        raise ValueError("no samples to summarize")
    p50, p90, p95, p99 = np.percentile(x, [50, 90, 95, 99])
    q1, q3 = np.percentile(x, [25, 75])
    iqr = q3 - q1
    outliers = int(np.count_nonzero((x < q1 - 1.5 * iqr) | (x > q3 + 1.5 * iqr)))
    lo, hi = median_ci(x, confidence)
    return {
        "p50": float(p50),
        "p90": float(p90),
        "p95": float(p95),
        "p99": float(p99),
        "mean": float(x.mean()),
        "std": float(x.std(ddof=1)) if n > 1 else 0.0,
        "min": float(x[0]),
        "max": float(x[-1]),
        "n": n,
        "median_ci": [float(lo), float(hi)],
        "ci_level": confidence,
        "outliers": outliers,
    }


def median_ci(sorted_x: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Order-statistic CI of the median (binomial, no normality assumption).

    The number of samples below the median is Binomial(n, 1/2); the ranks j < k with
    P(j <= B < k) >= confidence bound the median.
    """
    from scipy.stats import binom

    n = len(sorted_x)
    if n < 6:  # too few samples for a meaningful interval at 95%
        return float(sorted_x[0]), float(sorted_x[-1])
    alpha = 1 - confidence
    j = int(binom.ppf(alpha / 2, n, 0.5))
    k = int(math.ceil(binom.isf(alpha / 2, n, 0.5)))
    j = max(j - 1, 0)
    k = min(k, n - 1)
    return float(sorted_x[j]), float(sorted_x[k])
