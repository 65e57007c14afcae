"""Data drift between a reference table and new data, for continuous evaluation.

Per feature: a two-sample test (Kolmogorov-Smirnov for continuous features, chi-square on the
category counts for categorical ones) and the population stability index (PSI).

Verdict rule: a feature drifts when its test's p-value < ``p_value`` (default 0.01) AND its
PSI > ``psi`` (default 0.1). Both, because with thousands of rows a shift far too small to
matter is still "significant", and with few rows PSI alone is noisy. The same rule applies to
the prediction drift (the model's P(class 1) on each table).

Which features are categorical: the ``categorical`` mask when given (an ``.npz`` may carry it
as a ``categorical`` array of column names or indices); else it is inferred. One-hot columns
named ``column=value`` (Adult's encoding) are grouped back into one feature per original
column: a row's category is its hot column (``(none)`` when no column is hot, e.g. a category
unknown to the encoder). Unnamed columns holding only 0 and 1 are categorical, and a run of
such columns that sums to exactly 1 on every row is one one-hot feature; a column with at most
``MAX_LEVELS`` distinct values is categorical (codes). Every other column is continuous.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_opt.core.arrays import load_xy
from edge_opt.core.errors import BadInputError

DEFAULT_THRESHOLDS = {"p_value": 0.01, "psi": 0.1, "bins": 10}
PSI_EPS = 1e-4  # stands in for an empty bin's share: PSI has log(share) terms
NONE_HOT = "(none)"
MAX_LEVELS = 10  # a column with at most this many distinct values is categorical (codes)


def drift_check(
    reference: np.ndarray,
    new: np.ndarray,
    feature_names: list[str] | None = None,
    categorical: np.ndarray | None = None,
    thresholds: dict[str, float] | None = None,
    predictor=None,
) -> dict:
    """Compare ``new`` with ``reference`` (rows x features, same layout), feature by feature.

    ``categorical``: bool mask over the (flattened) features; None means the ``col=value``
    columns. ``predictor``: optional ``Predictor`` for prediction drift.
    """
    limits = _thresholds(thresholds)
    ref, cur = _table(reference, "reference"), _table(new, "new")
    if ref.shape[1] != cur.shape[1]:
        raise BadInputError(f"reference has {ref.shape[1]} features per row, new data has {cur.shape[1]}")
    names = [f"f{i}" for i in range(ref.shape[1])] if feature_names is None else [str(n) for n in feature_names]
    if len(names) != ref.shape[1]:
        raise BadInputError(f"{len(names)} feature names for {ref.shape[1]} features")
    if categorical is None:
        groups = _infer(ref, cur, names)
    else:
        is_cat = np.asarray(categorical, dtype=bool).reshape(-1)
        if len(is_cat) != ref.shape[1]:
            raise BadInputError(f"categorical mask has {len(is_cat)} entries for {ref.shape[1]} features")
        groups = {name: (cols, bool(is_cat[cols[0]])) for name, cols in _features(names, is_cat).items()}

    features: dict[str, dict] = {}
    for name, (cols, is_categorical) in groups.items():
        if not is_categorical:
            entry = _continuous(ref[:, cols[0]], cur[:, cols[0]], limits)
        else:
            entry = _categorical(_categories(ref, cols, names), _categories(cur, cols, names), limits)
        features[name] = {"columns": [names[c] for c in cols], **entry}

    prediction = None
    if predictor is not None:
        ref_score, what = _model_score(predictor, reference)
        new_score, _ = _model_score(predictor, new)
        prediction = {"score": what, **_continuous(ref_score, new_score, limits)}
    drifted = [name for name, f in features.items() if f["verdict"] == "drift"]
    return {
        "n_reference": len(ref),
        "n_new": len(cur),
        "thresholds": limits,
        "rule": f"drift when p-value < {limits['p_value']} and PSI > {limits['psi']}",
        "features": features,
        "prediction": prediction,
        "summary": {
            "drifted_features": drifted,
            "n_drifted": len(drifted),
            "n_features": len(features),
            "max_psi": max(f["psi"] for f in features.values()),
            "prediction_psi": prediction["psi"] if prediction else None,
        },
        "drifted": bool(drifted) or bool(prediction and prediction["verdict"] == "drift"),
    }


def _thresholds(given: dict | None) -> dict:
    limits = dict(DEFAULT_THRESHOLDS)
    for key, value in (given or {}).items():
        if key not in limits:
            raise BadInputError(f"unknown drift threshold {key!r}; known: {', '.join(limits)}")
        limits[key] = value
    if int(limits["bins"]) < 2:
        raise BadInputError(f"drift needs at least 2 PSI bins, got {limits['bins']}")
    limits["bins"] = int(limits["bins"])
    return limits


def _table(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 0 or len(x) == 0 or x.size == 0:
        raise BadInputError(f"{what} data is empty")
    if x.dtype.kind not in "biuf":
        raise BadInputError(f"{what} data must be numeric, got {x.dtype}")
    x = x.reshape(len(x), -1).astype(np.float64)
    bad = ~np.isfinite(x).all(axis=0)
    if bad.any():
        raise BadInputError(f"{what} data has NaN or infinite values in feature {int(np.argmax(bad))}")
    return x


def _features(names: list[str], is_cat: np.ndarray) -> dict[str, list[int]]:
    """Feature name -> its column indices; one-hot ``col=value`` columns share one feature."""
    out: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        key = name.split("=", 1)[0] if is_cat[i] and "=" in name else name
        out.setdefault(key, []).append(i)
    return out


def _infer(ref: np.ndarray, cur: np.ndarray, names: list[str]) -> dict[str, tuple[list[int], bool]]:
    """Feature name -> (its columns, categorical?), inferred from the names and both tables' values."""
    both = np.concatenate([ref, cur])
    binary = np.all((both == 0) | (both == 1), axis=0)
    out: dict[str, tuple[list[int], bool]] = {}
    for key, cols in _features(names, np.array(["=" in n for n in names])).items():
        if len(cols) > 1 or "=" in names[cols[0]]:  # named one-hot columns (Adult's "sex=Female")
            out[key] = (cols, True)
    i = 0
    while i < len(names):
        if "=" in names[i]:
            i += 1
            continue
        j, total = i, np.zeros(len(both))
        while j < len(names) and binary[j] and "=" not in names[j] and (total + both[:, j]).max() <= 1:
            total += both[:, j]
            j += 1
        if j - i >= 2 and np.all(total == 1):  # a one-hot group: exactly one hot column per row
            out[f"{names[i]}..{names[j - 1]}"] = (list(range(i, j)), True)
            i = j
            continue
        out[names[i]] = ([i], bool(binary[i]) or len(np.unique(both[:, i])) <= MAX_LEVELS)
        i += 1
    order = {name: cols[0] for name, (cols, _) in out.items()}
    return {name: out[name] for name in sorted(out, key=order.__getitem__)}


def _categories(x: np.ndarray, cols: list[int], names: list[str]) -> np.ndarray:
    """One category label per row: a code, or the hot column of a one-hot group."""
    if len(cols) == 1 and "=" not in names[cols[0]]:
        return x[:, cols[0]].astype(str)  # a categorical column of codes (or 0/1)
    block = x[:, cols]
    labels = np.array([names[c].split("=", 1)[-1] for c in cols] + [NONE_HOT])
    return labels[np.where(block.max(axis=1) > 0, block.argmax(axis=1), len(cols))]


def _psi(p_ref: np.ndarray, p_new: np.ndarray) -> float:
    p_ref, p_new = np.maximum(p_ref, PSI_EPS), np.maximum(p_new, PSI_EPS)
    return float(np.sum((p_new - p_ref) * np.log(p_new / p_ref)))


def _verdict(p_value: float, psi: float, limits: dict) -> str:
    return "drift" if p_value < limits["p_value"] and psi > limits["psi"] else "ok"


def _continuous(ref: np.ndarray, new: np.ndarray, limits: dict) -> dict:
    from scipy.stats import ks_2samp

    ks = ks_2samp(ref, new)
    # Quantile bins of the reference. A point mass (capital-gain is 90% zeros) merges bins
    # into one; then the other values get quantile bins of their own, or PSI would be blind.
    qs = np.linspace(0, 1, limits["bins"] + 1)[1:-1]
    edges = np.unique(np.quantile(ref, qs))
    if len(edges) < len(qs):
        values, counts = np.unique(ref, return_counts=True)
        rest = ref[ref != values[counts.argmax()]]
        edges = np.unique(np.r_[edges, np.quantile(rest, qs)]) if len(rest) else edges
    count = len(edges) + 1
    p_ref = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=count) / len(ref)
    p_new = np.bincount(np.searchsorted(edges, new, side="right"), minlength=count) / len(new)
    psi = _psi(p_ref, p_new)
    p_value = float(ks.pvalue)
    return {
        "kind": "continuous",
        "test": "ks",
        "statistic": float(ks.statistic),
        "p_value": p_value,
        "psi": psi,
        "reference_mean": float(ref.mean()),
        "new_mean": float(new.mean()),
        "verdict": _verdict(p_value, psi, limits),
    }


def _categorical(ref: np.ndarray, new: np.ndarray, limits: dict) -> dict:
    from scipy.stats import chi2_contingency

    cats, code = np.unique(np.concatenate([ref, new]), return_inverse=True)
    counts = np.stack(
        [np.bincount(code[: len(ref)], minlength=len(cats)), np.bincount(code[len(ref) :], minlength=len(cats))]
    )
    if len(cats) < 2:  # one category on both sides: nothing can have moved
        statistic, p_value = 0.0, 1.0
    else:
        test = chi2_contingency(counts, correction=False)
        statistic, p_value = float(test.statistic), float(test.pvalue)
    p_ref, p_new = counts[0] / len(ref), counts[1] / len(new)
    psi = _psi(p_ref, p_new)
    moved = np.argsort(-np.abs(p_new - p_ref))[:3]
    return {
        "kind": "categorical",
        "test": "chi2",
        "statistic": statistic,
        "p_value": p_value,
        "psi": psi,
        "top_shifts": {str(cats[i]): [float(p_ref[i]), float(p_new[i])] for i in moved},  # share ref -> new
        "verdict": _verdict(p_value, psi, limits),
    }


def _model_score(predictor, x: np.ndarray) -> tuple[np.ndarray, str]:
    """P(class 1) for a binary model; the top class's probability (confidence) otherwise."""
    x = np.asarray(x, dtype=np.float32)
    shape = tuple(getattr(predictor, "input_shape", ()) or ())
    if shape and all(isinstance(d, int) and d > 0 for d in shape):
        if int(np.prod(shape)) != int(np.prod(x.shape[1:])):
            raise BadInputError(
                f"{getattr(predictor, 'path', 'the model')} expects {int(np.prod(shape))} features per row, "
                f"the data has {int(np.prod(x.shape[1:]))}"
            )
        x = x.reshape(len(x), *shape)
    proba = np.asarray(predictor(x), dtype=np.float64)
    return (proba[:, 1], "P(class 1)") if proba.shape[1] == 2 else (proba.max(axis=1), "top-class probability")


# ---------------------------------------------------------------- files and rendering


@dataclass(frozen=True, eq=False)
class Table:
    """A table of features from a file, and which columns it says are categorical."""

    x: np.ndarray  # float32, rows first
    names: list[str]
    categorical: np.ndarray | None = None  # bool mask over the columns; None: infer them


def load_table(path: str | Path) -> Table:
    """Features from ``.npz`` (array ``x``, optional ``feature_names`` and ``categorical``: the
    categorical columns' names or indices), ``.npy`` or ``.csv`` (a header of column names,
    numeric cells; every column is a feature). The file checks (size, NaN, Inf) are ``load_xy``'s."""
    path = Path(path)
    x, _, names = load_xy(path, labels=False)
    width = int(np.prod(x.shape[1:]))
    names = names if names is not None else [f"f{i}" for i in range(width)]
    if len(names) != width:
        raise BadInputError(f"{path}: {len(names)} feature names for {width} features")
    categorical = None
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            if "categorical" in npz.files:
                categorical = _mask(path, npz["categorical"], names)
    return Table(x.reshape(len(x), -1), names, categorical)


def _mask(path: Path, given: np.ndarray, names: list[str]) -> np.ndarray:
    """The ``categorical`` array of a file (column names or indices) as a mask over the columns."""
    mask = np.zeros(len(names), dtype=bool)
    for item in np.asarray(given).reshape(-1).tolist():
        if isinstance(item, str):
            if item not in names:
                raise BadInputError(f"{path}: categorical column {item!r} is not one of its feature names")
            mask[names.index(item)] = True
        elif isinstance(item, int) and not isinstance(item, bool) and 0 <= item < len(names):
            mask[item] = True
        else:
            raise BadInputError(
                f"{path}: 'categorical' must list column names or indices 0..{len(names) - 1}, got {item!r}"
            )
    return mask


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.1e}"
    return f"{value:.3f}"


def render_drift(result: dict[str, Any]) -> str:
    """Markdown: one row per feature (drifted first), then prediction drift and the verdict."""
    rows = sorted(result["features"].items(), key=lambda kv: (kv[1]["verdict"] != "drift", -kv[1]["psi"]))
    lines = [
        f"## Data drift: {result['n_new']} new rows vs {result['n_reference']} reference rows",
        "",
        "| feature | kind | test | statistic | p-value | PSI | verdict |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for name, f in rows:
        verdict = "**drift**" if f["verdict"] == "drift" else "ok"
        lines.append(
            f"| {name} | {f['kind']} | {f['test']} | {_fmt(f['statistic'])} | {_fmt(f['p_value'])} | "
            f"{_fmt(f['psi'])} | {verdict} |"
        )
    pred = result["prediction"]
    if pred:
        lines += [
            "",
            f"Prediction drift ({pred['score']}): KS {_fmt(pred['statistic'])}, p-value {_fmt(pred['p_value'])}, "
            f"PSI {_fmt(pred['psi'])}, mean {_fmt(pred['reference_mean'])} -> {_fmt(pred['new_mean'])}: "
            f"{pred['verdict']}",
        ]
    summary = result["summary"]
    drifted = ", ".join(summary["drifted_features"]) or "none"
    lines += [
        "",
        f"Rule: {result['rule']}.",
        f"Drifted features ({summary['n_drifted']} of {summary['n_features']}): {drifted}. "
        f"Overall: {'DRIFT' if result['drifted'] else 'no drift'}.",
    ]
    return "\n".join(lines) + "\n"
