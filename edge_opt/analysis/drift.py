"""Data drift between a reference table and new data, for continuous evaluation.

Per feature: a two-sample test (Kolmogorov-Smirnov for continuous features, chi-square on the
category counts for categorical ones) and the population stability index (PSI).

Verdict rule: a feature drifts when its test's p-value < ``p_value`` (default 0.01) AND its
PSI > ``psi`` (default 0.1). Both, because with thousands of rows a shift far too small to
matter is still "significant", and with few rows PSI alone is noisy. The same rule applies to
the prediction drift (the model's P(class 1) on each table).

One-hot columns named ``column=value`` (Adult's encoding) are categorical by default, and are
grouped back into one feature per original column: a row's category is its hot column
(``(none)`` when no column is hot, e.g. a category unknown to the encoder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_opt.errors import BadInputError, first_line

DEFAULT_THRESHOLDS = {"p_value": 0.01, "psi": 0.1, "bins": 10}
PSI_EPS = 1e-4  # stands in for an empty bin's share: PSI has log(share) terms
NONE_HOT = "(none)"


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
        is_cat = np.array(["=" in n for n in names], dtype=bool)
    else:
        is_cat = np.asarray(categorical, dtype=bool).reshape(-1)
        if len(is_cat) != ref.shape[1]:
            raise BadInputError(f"categorical mask has {len(is_cat)} entries for {ref.shape[1]} features")

    features: dict[str, dict] = {}
    for name, cols in _features(names, is_cat).items():
        if len(cols) == 1 and not is_cat[cols[0]]:
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


def _categories(x: np.ndarray, cols: list[int], names: list[str]) -> np.ndarray:
    """One category label per row."""
    if len(cols) == 1 and "=" not in names[cols[0]]:
        return x[:, cols[0]].astype(str)  # a categorical column of codes
    block = x[:, cols]
    labels = np.array([names[c].split("=", 1)[1] for c in cols] + [NONE_HOT])
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


def load_table(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Features from ``.npz`` (array ``x``, optional ``feature_names``), ``.npy`` or ``.csv``
    (a header of column names, numeric cells). Returns (x float32, feature names)."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                if "x" not in archive.files:
                    raise BadInputError(f"{path}: no array 'x' (arrays: {', '.join(archive.files) or 'none'})")
                x = archive["x"]
                names = archive["feature_names"].tolist() if "feature_names" in archive.files else None
        elif suffix == ".npy":
            x, names = np.load(path, allow_pickle=False), None
        elif suffix == ".csv":
            x, names = _read_csv(path)
        else:
            raise BadInputError(f"{path}: unknown table extension '{suffix}'; use .npz, .npy or .csv")
    except BadInputError:
        raise
    except Exception as exc:  # numpy raises ValueError, OSError, EOFError, BadZipFile... for bad files
        raise BadInputError(f"{path}: cannot read it: {first_line(exc)}") from None
    x = np.asarray(x)
    if x.ndim == 1:
        x = x.reshape(-1, 1)
    if x.size == 0:
        raise BadInputError(f"{path}: no rows")
    if x.dtype.kind not in "biuf":
        raise BadInputError(f"{path}: features must be numeric, got {x.dtype}")
    width = int(np.prod(x.shape[1:]))
    names = [str(n) for n in names] if names is not None else [f"f{i}" for i in range(width)]
    if len(names) != width:
        raise BadInputError(f"{path}: {len(names)} feature names for {width} features")
    return x.astype(np.float32), names


def _read_csv(path: Path) -> tuple[np.ndarray, list[str]]:
    import csv
    import warnings

    with path.open(newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh), None)
    if not header:
        raise BadInputError(f"{path}: empty file, expected a header row")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "input contained no data": reported as "no rows" below
        x = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64, encoding="utf-8")
    if x.size and x.shape[1] != len(header):
        raise BadInputError(f"{path}: {x.shape[1]} columns of numbers under a header of {len(header)}")
    return x, [h.strip() for h in header]


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
