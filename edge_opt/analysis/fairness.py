"""Sliced metrics and fairness of a deployed artifact, as deltas against its float reference.

Binary tasks only (positive class 1; a row is predicted positive when P(class 1) >= 0.5, the
rule the runner's accuracy uses). Per-slice point metrics and the fairness figures come from
fairlearn's ``MetricFrame`` and metrics; the fairness figures are its between-group
differences and ratios, the definitions of fairlearn's ``demographic_parity_difference`` /
``_ratio``, ``equalized_odds_difference`` and ``equal_opportunity_difference``.
Bootstrap CIs are computed here, vectorised: resampling the rows of a slice is a multinomial
draw over its distinct (score, label) cells, so one draw of ``n_boot`` count vectors gives
every metric, AUC included, without a Python loop.

Slices under ``min_size`` rows are reported and marked ``small``, but left out of the fairness
figures and the worst-slice figures: a handful of rows would dominate them with noise.
A column given as a list of columns (``["sex", "race"]``) is their intersection, named
``"sex&race"``, with slices like ``"Female&White"``.
"""

from __future__ import annotations

import math
import warnings
from functools import partial
from typing import Any

import numpy as np

from edge_opt.analysis.data import EvalData
from edge_opt.core.errors import BadInputError

METRICS = ("accuracy", "precision", "recall", "fpr", "fnr", "selection_rate", "auc")
FAIRNESS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equal_opportunity_difference",
    "worst_slice_accuracy",
)
SEP = "&"  # joins the columns (and the labels) of an intersection


# ---------------------------------------------------------------- slice metrics


def slice_metrics(
    y_true: np.ndarray,
    proba: np.ndarray,
    slices: dict[str, np.ndarray],
    columns: list[str | list[str]] | None = None,
    min_size: int = 30,
    n_boot: int = 200,
    seed: int = 0,
) -> dict:
    """Metrics overall and per slice with bootstrap 95% CIs, and fairness figures per column.

    ``proba``: (n, 2) class probabilities or (n,) P(class 1). ``columns`` defaults to every
    slice column alone, plus sex x race when both exist.
    """
    y = np.asarray(y_true).astype(np.int64).reshape(-1)
    score = _positive_score(proba, len(y))
    if len(y) == 0:
        raise BadInputError("fairness: no rows to evaluate")
    if not set(np.unique(y)) <= {0, 1}:
        raise BadInputError(f"fairness needs binary labels 0/1, got classes {sorted(np.unique(y).tolist())}")
    pred = (score >= 0.5).astype(np.int64)
    groups = _resolve_columns(slices, columns, len(y))
    boot = partial(_bootstrap_ci, n_boot=n_boot, seed=seed)

    overall = _entry(y, pred, score, _point_metrics(y, pred, score), min_size, boot)
    out_columns = {}
    for name, labels in groups.items():
        values, counts = np.unique(labels, return_counts=True)
        big = np.isin(labels, values[counts >= min_size])
        # One frame over the slices big enough to compare (fairness figures come from it),
        # one over the small ones, which are reported but not compared.
        frame = _metric_frame(y[big], pred[big], labels[big]) if big.any() else None
        points = _by_group(frame) if frame is not None else {}
        if not big.all():
            points.update(_by_group(_metric_frame(y[~big], pred[~big], labels[~big])))
        entries = {}
        for value in values.tolist():
            rows = labels == value
            point = {**points[value], "auc": _auc(y[rows], score[rows])}
            entries[value] = _entry(y[rows], pred[rows], score[rows], point, min_size, boot)
        out_columns[name] = {"slices": entries, "fairness": _fairness(frame, entries)}
    return {
        "n": len(y),
        "min_size": min_size,
        "n_boot": n_boot,
        "seed": seed,
        "overall": overall,
        "columns": out_columns,
    }


def _positive_score(proba: np.ndarray, n: int) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 2:
        p = p[:, 1]
    elif p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim != 1 or len(p) != n:
        raise BadInputError(f"fairness needs P(class 1) for {n} rows (binary task), got shape {np.shape(proba)}")
    return p


def _resolve_columns(slices: dict[str, np.ndarray], columns, n: int) -> dict[str, np.ndarray]:
    """Column name -> per-row string labels, intersections joined with ``SEP``."""
    if columns is None:
        columns = list(slices) + ([["sex", "race"]] if {"sex", "race"} <= set(slices) else [])
    available = ", ".join(slices) or "none"
    out = {}
    for col in columns:
        parts = [col] if isinstance(col, str) else list(col)
        if not parts:
            raise BadInputError(f"empty slice column list; available slice columns: {available}")
        for part in parts:
            if part not in slices:
                raise BadInputError(f"unknown slice column '{part}'; available slice columns: {available}")
            if len(slices[part]) == 0:
                raise BadInputError(f"slice column '{part}' has no rows; available slice columns: {available}")
            if len(slices[part]) != n:
                raise BadInputError(f"slice column '{part}' has {len(slices[part])} rows, predictions have {n}")
        labels = np.asarray(slices[parts[0]]).astype(str)
        for part in parts[1:]:
            labels = np.char.add(np.char.add(labels, SEP), np.asarray(slices[part]).astype(str))
        out[SEP.join(parts)] = labels
    if not out:
        raise BadInputError(f"no slice columns to evaluate; available slice columns: {available}")
    return out


def _fairlearn_metrics() -> dict:
    from fairlearn.metrics import false_negative_rate, false_positive_rate, selection_rate, true_positive_rate
    from sklearn.metrics import accuracy_score, precision_score

    return {
        "accuracy": accuracy_score,
        "precision": partial(precision_score, zero_division=np.nan),
        "recall": true_positive_rate,
        "fpr": false_positive_rate,
        "fnr": false_negative_rate,
        "selection_rate": selection_rate,
    }


def _point_metrics(y: np.ndarray, pred: np.ndarray, score: np.ndarray) -> dict:
    out = {name: fn(y, pred) for name, fn in _fairlearn_metrics().items()}
    out["auc"] = _auc(y, score)
    return out


def _compress(y: np.ndarray, pred: np.ndarray, labels: np.ndarray):
    """Distinct (slice, label, prediction) rows and their counts, as sample weights.

    Every figure taken from fairlearn here is a weighted ratio of confusion counts, so this is
    exact, and it keeps fairlearn (which stacks its inputs row by row) off the O(n) path.
    """
    values, code = np.unique(labels, return_inverse=True)
    cells, weight = np.unique((code * 2 + y) * 2 + pred, return_counts=True)
    return values[cells // 4], (cells // 2) % 2, cells % 2, weight


def _metric_frame(y: np.ndarray, pred: np.ndarray, labels: np.ndarray):
    """fairlearn's MetricFrame of the point metrics, by slice label."""
    from fairlearn.metrics import MetricFrame

    groups, y_c, pred_c, weight = _compress(y, pred, labels)
    metrics = _fairlearn_metrics()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MetricFrame(
            metrics=metrics,
            y_true=y_c,
            y_pred=pred_c,
            sensitive_features=groups,
            sample_params={name: {"sample_weight": weight} for name in metrics},
        )


def _by_group(frame) -> dict[str, dict]:
    return {str(value): dict(row) for value, row in frame.by_group.to_dict("index").items()}


def _auc(y: np.ndarray, score: np.ndarray) -> float | None:
    if len(np.unique(y)) < 2:
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score))


def _entry(y, pred, score, point: dict, min_size: int, boot) -> dict:
    """One row of the slice table: size, point metrics (None where undefined), CIs."""
    pos, neg, pred_pos = int(y.sum()), int(len(y) - y.sum()), int(pred.sum())
    undefined = {"recall": pos == 0, "fnr": pos == 0, "fpr": neg == 0, "precision": pred_pos == 0}
    entry: dict[str, Any] = {"n": len(y), "small": len(y) < min_size}
    for name in METRICS:
        entry[name] = None if undefined.get(name) else _num(point.get(name))
    entry["ci"] = boot(y, score)
    return entry


def _bootstrap_ci(y: np.ndarray, score: np.ndarray, n_boot: int, seed: int) -> dict[str, list[float] | None]:
    """Percentile 95% CIs of every metric over ``n_boot`` resamples of the rows."""
    if n_boot <= 0 or len(y) == 0:
        return dict.fromkeys(METRICS)
    # Distinct (score, label) cells, sorted by score; a resample is a count per cell.
    cells, counts = np.unique(np.stack([score, y]), axis=1, return_counts=True)
    s, lab = cells[0], cells[1].astype(bool)
    draws = np.random.default_rng(seed).multinomial(len(y), counts / len(y), size=n_boot).astype(np.float64)
    pos_pred = s >= 0.5
    quadrant = np.stack([lab & pos_pred, ~lab & pos_pred, lab & ~pos_pred, ~lab & ~pos_pred], axis=1)
    tp, fp, fn, tn = (draws @ quadrant.astype(np.float64)).T
    n = len(y)
    with np.errstate(divide="ignore", invalid="ignore"):
        samples = {
            "accuracy": (tp + tn) / n,
            "precision": tp / (tp + fp),
            "recall": tp / (tp + fn),
            "fpr": fp / (fp + tn),
            "fnr": fn / (tp + fn),
            "selection_rate": (tp + fp) / n,
            "auc": _auc_from_counts(s, lab, draws),
        }
    return {name: _percentile_ci(v) for name, v in samples.items()}


def _auc_from_counts(s: np.ndarray, lab: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """AUC per resample: P(score of a positive > score of a negative), ties count half."""
    # Cells are sorted by score: sum the cells of each distinct score into one bucket.
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    p = np.add.reduceat(draws * lab, starts, axis=1)
    q = np.add.reduceat(draws * ~lab, starts, axis=1)
    neg_below = np.cumsum(q, axis=1) - q
    wins = (p * (neg_below + 0.5 * q)).sum(1)
    return wins / (p.sum(1) * q.sum(1))


def _percentile_ci(values: np.ndarray) -> list[float] | None:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return None
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [float(lo), float(hi)]


def _fairness(frame, entries: dict[str, dict]) -> dict:
    """Fairness figures of one column, over its slices of at least ``min_size`` rows.

    ``frame`` is the MetricFrame of those slices. Its between-groups differences and ratios
    are what fairlearn's ``demographic_parity_difference`` / ``_ratio`` (selection rate),
    ``equal_opportunity_difference`` (TPR) and ``equalized_odds_difference`` (worse of TPR
    and FPR) compute; taken from one frame, they cost one pass instead of four.
    """
    kept = [v for v, e in entries.items() if not e["small"]]
    out: dict[str, Any] = dict.fromkeys(FAIRNESS)
    out["worst_slice"] = None
    out["slices_compared"] = kept
    out["excluded_small"] = [v for v, e in entries.items() if e["small"]]
    if kept:
        worst = min(kept, key=lambda v: entries[v]["accuracy"])
        out["worst_slice_accuracy"], out["worst_slice"] = entries[worst]["accuracy"], worst
    if len(kept) < 2:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        diff, ratio = frame.difference(method="between_groups"), frame.ratio(method="between_groups")
    out["demographic_parity_difference"] = _num(diff["selection_rate"])
    out["demographic_parity_ratio"] = _num(ratio["selection_rate"])
    out["equalized_odds_difference"] = _num(max(diff["recall"], diff["fpr"]))
    out["equal_opportunity_difference"] = _num(diff["recall"])
    return out


def _num(value) -> float | None:
    """Plain float, None for missing or NaN (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


# ---------------------------------------------------------------- artifact vs reference


def fairness_groups(data: EvalData, columns: list[str | list[str]] | None = None) -> dict[str, np.ndarray]:
    """The slice labels per column (intersections joined); exit 2 for data fairness cannot judge
    (not binary, an unknown or empty column), before any model is loaded or run."""
    if data.n_classes != 2:
        raise BadInputError(f"fairness checks need a binary task, the data has {data.n_classes} classes")
    return _resolve_columns(data.slices, columns, len(data.y))


def fairness_check(
    predictor,
    data: EvalData,
    reference=None,
    columns: list[str | list[str]] | None = None,
    min_size: int = 30,
    n_boot: int = 200,
    seed: int = 0,
) -> dict:
    """Slice metrics of the artifact (and of the float reference), their deltas and label flips.

    ``predictor`` / ``reference``: ``Predictor``-like callables, x -> (n, 2) probabilities.
    """
    groups = fairness_groups(data, columns)  # fail early, before running models
    measure = partial(
        slice_metrics, data.y, slices=data.slices, columns=columns, min_size=min_size, n_boot=n_boot, seed=seed
    )

    art_proba = _run(predictor, data)
    result: dict[str, Any] = {"model": _name(predictor), "reference_model": None, "columns": list(groups)}
    result["artifact"] = measure(art_proba)
    result["reference"] = result["delta"] = result["flips"] = None
    if reference is not None:
        ref_proba = _run(reference, data)
        result["reference_model"] = _name(reference)
        result["reference"] = measure(ref_proba)
        result["delta"] = _delta(result["artifact"], result["reference"])
        flipped = (_positive_score(art_proba, len(data.y)) >= 0.5) != (_positive_score(ref_proba, len(data.y)) >= 0.5)
        result["flips"] = {
            "overall": int(flipped.sum()),
            "columns": {
                name: {v: int(flipped[labels == v].sum()) for v in result["artifact"]["columns"][name]["slices"]}
                for name, labels in groups.items()
            },
        }
    result["summary"] = _summary(result)
    return result


def _run(predictor, data: EvalData) -> np.ndarray:
    expected = getattr(predictor, "input_shape", None)
    if expected and all(isinstance(d, int) and d > 0 for d in expected):
        if int(np.prod(expected)) != data.n_features:
            raise BadInputError(
                f"{_name(predictor)} expects {int(np.prod(expected))} features per row, the data has {data.n_features}"
            )
        return predictor(data.x.reshape(len(data.x), *expected))
    return predictor(data.x)


def _name(predictor) -> str:
    path = getattr(predictor, "path", None)
    return str(path) if path is not None else repr(predictor)


def _diff(a, b) -> float | None:
    return None if a is None or b is None else float(a - b)


def _delta(art: dict, ref: dict) -> dict:
    """artifact - reference, for every metric of every slice and every fairness figure."""
    out = {"overall": {m: _diff(art["overall"][m], ref["overall"][m]) for m in METRICS}, "columns": {}}
    for name, col in art["columns"].items():
        rcol = ref["columns"][name]
        out["columns"][name] = {
            "slices": {v: {m: _diff(e[m], rcol["slices"][v][m]) for m in METRICS} for v, e in col["slices"].items()},
            "fairness": {f: _diff(col["fairness"][f], rcol["fairness"][f]) for f in FAIRNESS},
        }
    return out


def _summary(result: dict) -> dict:
    """Headline numbers for a release gate (None where they cannot be computed)."""
    cols = result["artifact"]["columns"]

    def most(figure: str, pick) -> float | None:
        values = [c["fairness"][figure] for c in cols.values() if c["fairness"][figure] is not None]
        return pick(values) if values else None

    drops = [
        -d["accuracy"]
        for name, col in (result["delta"] or {"columns": {}})["columns"].items()
        for v, d in col["slices"].items()
        if not cols[name]["slices"][v]["small"] and d["accuracy"] is not None
    ]
    return {
        "worst_slice_accuracy": most("worst_slice_accuracy", min),
        "worst_slice_accuracy_drop": max(drops) if drops else None,
        "demographic_parity_difference": most("demographic_parity_difference", max),
        "equalized_odds_difference": most("equalized_odds_difference", max),
        "flips": result["flips"]["overall"] if result["flips"] else None,
    }


# ---------------------------------------------------------------- rendering


def _fmt(value, digits: int = 3, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def render_fairness(result: dict) -> str:
    """Markdown: one table of slices, one of fairness figures per column, the summary."""
    art, delta, flips, summary = result["artifact"], result["delta"], result["flips"], result["summary"]
    ref_word = "float" if result.get("reference_model") else "reference"
    lines = [f"## Fairness of {result.get('model', 'artifact')}", ""]
    lines += [
        f"| slice | n | accuracy (95% CI) | Δ acc vs {ref_word} | FPR | FNR | flips | |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]

    def row(label: str, e: dict, d: dict | None, f: int | None) -> str:
        ci = e["ci"].get("accuracy")
        acc = _fmt(e["accuracy"]) + (f" ({_fmt(ci[0])}–{_fmt(ci[1])})" if ci else "")
        dacc = _fmt(d["accuracy"], signed=True) if d else "–"
        small = f"small (<{art['min_size']})" if e["small"] else ""
        flip = str(f) if f is not None else "–"
        return f"| {label} | {e['n']} | {acc} | {dacc} | {_fmt(e['fpr'])} | {_fmt(e['fnr'])} | {flip} | {small} |"

    lines.append(row("overall", art["overall"], delta and delta["overall"], flips and flips["overall"]))
    for name, col in art["columns"].items():
        for v, e in col["slices"].items():
            d = delta["columns"][name]["slices"][v] if delta else None
            f = flips["columns"][name][v] if flips else None
            lines.append(row(f"{name}={v}", e, d, f))

    lines += [
        "",
        "| column | DP difference | DP ratio | EO difference | EOpp difference | worst slice (accuracy) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, col in art["columns"].items():
        fair = col["fairness"]
        d = delta["columns"][name]["fairness"] if delta else {}

        def cell(key: str, fair=fair, d=d) -> str:
            text = _fmt(fair[key])
            return text + (f" ({_fmt(d[key], signed=True)})" if d.get(key) is not None else "")

        worst = f"{fair['worst_slice']}: {cell('worst_slice_accuracy')}" if fair["worst_slice"] else "–"
        figures = " | ".join(cell(k) for k in FAIRNESS[:4])
        lines.append(f"| {name} | {figures} | {worst} |")
    lines += [
        "",
        f"Fairness figures compare slices of at least {art['min_size']} rows; "
        f"values in parentheses are deltas vs the {ref_word} model. CIs: percentile bootstrap, "
        f"{art['n_boot']} resamples, seed {art['seed']}.",
        "",
        "Summary: " + ", ".join(f"{k} = {_fmt(v) if isinstance(v, float) else v}" for k, v in summary.items()),
    ]
    return "\n".join(lines) + "\n"
