"""Explanations of a deployed artifact, set against the float model's.

SHAP (Kernel SHAP), permutation importance, partial dependence / ICE and LIME see each model
only through its ``Predictor``; integrated gradients need the float Keras model itself. For
SHAP and permutation importance ``explain_check`` reports how far the artifact's global
attributions moved from the float model's: Spearman rank correlation and top-k overlap.

Summary keys (``result["summary"]``; a stability figure is None without a reference):

- ``shap_rank_corr``, ``shap_top5_overlap``, ``shap_top10_overlap``
- ``permutation_rank_corr``, ``permutation_top5_overlap``, ``permutation_top10_overlap``
- ``pdp_max_delta``: largest |artifact - float| of a partial-dependence average
- ``seconds``: wall time of the whole check

Only the keys of the methods that ran are present. Rank correlations leave out the features
whose attribution is zero for both models (one-hot columns that never vary in the rows):
their agreement says nothing. Overlaps are the shared fraction of the k top features.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from threadpoolctl import threadpool_limits

from edge_opt.analysis.data import EvalData
from edge_opt.analysis.predictor import Predictor
from edge_opt.errors import BadInputError

METHODS = ("shap", "permutation", "pdp", "ig", "lime")
DEFAULT_METHODS = ("shap", "permutation", "pdp")
COMPARED = ("shap", "permutation")  # black-box global attributions, float vs artifact
TOP_K = (5, 10)

Proba = Callable[[np.ndarray], np.ndarray]  # flat features (n, d) -> (n, n_classes)
T = TypeVar("T")


class FlatModel:
    """A predictor as a probability function over flat features, ``(n, d) -> (n, n_classes)``."""

    def __init__(self, predictor: Predictor, input_shape: tuple[int, ...], n_classes: int) -> None:
        self.predictor, self.input_shape, self.n_classes = predictor, input_shape, n_classes
        self.batch = predictor.format == "keras"  # its per-call overhead dominates: see _batched

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.predictor(np.asarray(x, dtype=np.float32).reshape(-1, *self.input_shape))


def explain_check(
    predictor: Predictor,
    data: EvalData,
    reference: Predictor | None = None,
    float_model_path: str | Path | None = None,
    methods: Sequence[str] = DEFAULT_METHODS,
    rows: int = 400,
    seed: int = 0,
    *,
    shap_rows: int = 50,
    shap_samples: int = 200,
    background: int = 10,
    permutation_repeats: int = 5,
    pdp_features: Sequence[str] | None = None,
    lime_row: int | None = None,
    trust_model: bool = False,
) -> dict[str, Any]:
    """Explain ``predictor`` on the first ``rows`` rows of ``data`` and compare with ``reference``.

    ``reference`` is the float model's Predictor; given only ``float_model_path``, it is loaded
    from there. Method "ig" (integrated gradients) needs a Keras model: ``float_model_path``, or
    the reference or the artifact when it is a .keras file. SHAP explains the first ``shap_rows``
    rows against ``background`` k-means centroids of the rows, with ``shap_samples`` coalitions per
    row. Method "lime" explains row ``lime_row`` of ``data`` (default 0); giving ``lime_row`` adds
    it. The explained output is P(class 1) for binary tasks, else each row's true class's probability.

    Returns ``{"artifact", "float", "rows", "seed", "methods", "seconds", "summary"}`` and
    ``"lime"`` when asked. ``methods["shap" | "permutation"]`` holds per role ("float",
    "artifact") the global attribution of each feature, largest first, and the stability
    figures; ``methods["pdp"]["features"][name]`` the grid, the average per role and 5 ICE
    lines of the artifact; ``methods["ig"]["float"]`` mean |IG| per feature. Every method
    entry has its ``seconds``.
    """
    start = time.perf_counter()
    methods = tuple(methods.split(",")) if isinstance(methods, str) else tuple(methods)
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise BadInputError(f"unknown explanation method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    if reference is None and float_model_path is not None:
        reference = Predictor(float_model_path, trust_model=trust_model)
    predictors = {"artifact": predictor} | ({"float": reference} if reference is not None else {})
    for p in predictors.values():
        _check_shape(p, data)
    if "lime" in methods and lime_row is None:
        lime_row = 0
    if lime_row is not None and not 0 <= lime_row < len(data.x):
        raise BadInputError(f"LIME row {lime_row} is outside the data's {len(data.x)} rows")
    if pdp_features is not None:
        _pdp_features(pdp_features, data.feature_names, {})  # fail before the slow work
    ig_path = _keras_path(float_model_path, reference, predictor) if "ig" in methods else None

    head = data.head(rows)
    x, y, names, target = _flat(head.x), head.y, head.feature_names, _targets(head.y, head.n_classes)
    models = {role: FlatModel(p, data.x.shape[1:], data.n_classes) for role, p in predictors.items()}
    out: dict[str, Any] = {
        "artifact": str(predictor.path),
        "float": str(reference.path) if reference is not None else None,
        "rows": len(x),
        "seed": seed,
        "methods": {},
    }
    found = out["methods"]
    # One thread for NumPy and scikit-learn: the arrays are small, and OpenMP's spinning
    # threads slow k-means tenfold when the two cores are busy.
    with threadpool_limits(limits=1):
        if "shap" in methods:
            bg = shap_background(x, background)  # shared by both models
            found["shap"] = _timed(
                _compared,
                models,
                names,
                lambda m: shap_values(m, x[:shap_rows], bg, target[:shap_rows], seed, shap_samples),
            )
        if "permutation" in methods:
            found["permutation"] = _timed(
                _compared, models, names, lambda m: permutation_values(m, x, y, seed, permutation_repeats)
            )
        if "pdp" in methods:
            # The dataset's own default features (Adult: age, hours-per-week), else the top two.
            requested = pdp_features if pdp_features is not None else (head.pdp_features or None)
            found["pdp"] = _timed(_pdp, models, x, _pdp_features(requested, names, found), names)
        if ig_path is not None:
            found["ig"] = _timed(_ig, ig_path, head.x, target, names, trust_model)
        if lime_row is not None:
            row, row_target = _flat(data.x[lime_row : lime_row + 1])[0], _targets(data.y, data.n_classes)[lime_row]
            out["lime"] = {"row": lime_row, "implementation": f"lime {metadata.version('lime')}"} | _timed(
                lambda: {
                    role: lime_explanation(m, x, row, names, _categorical(data), row_target, seed)
                    for role, m in models.items()
                }
            )
    out["seconds"] = round(time.perf_counter() - start, 3)
    out["summary"] = _summary(out)
    return out


def _timed(fn: Callable[..., dict], *args: Any) -> dict:
    t = time.perf_counter()
    return fn(*args) | {"seconds": round(time.perf_counter() - t, 3)}


def _compared(models: dict[str, FlatModel], names: list[str], attribute: Callable[[FlatModel], np.ndarray]) -> dict:
    """Global attributions per model, ranked, and their stability when there is a float model."""
    values = {role: attribute(m) for role, m in models.items()}
    entry: dict[str, Any] = {role: _ranked(names, v) for role, v in values.items()}
    return entry | (stability(values["float"], values["artifact"]) if "float" in values else {})


def _pdp(models: dict[str, FlatModel], x: np.ndarray, features: list[str], names: list[str]) -> dict:
    curves = {role: partial_dependence(m, x, features, names) for role, m in models.items()}
    pdp: dict[str, Any] = {"features": {}}
    for f in features:
        pdp["features"][f] = {"grid": curves["artifact"][f]["grid"], "ice": curves["artifact"][f]["ice"]}
        pdp["features"][f] |= {role: c[f]["average"] for role, c in curves.items()}
    if "float" in curves:
        pdp["max_delta"] = max(
            float(np.max(np.abs(np.subtract(c["artifact"], c["float"])))) for c in pdp["features"].values()
        )
    return pdp


def _ig(path: Path, x: np.ndarray, target: np.ndarray, names: list[str], trust_model: bool = False) -> dict:
    values, gap = integrated_gradients(path, x, target, trust_model=trust_model)
    return {"float": _ranked(names, np.abs(values).mean(axis=0)), "model": str(path), "completeness_gap": gap}


# --- the methods: each takes a probability function over flat features ---


def shap_background(x: np.ndarray, k: int):
    """``k`` k-means centroids of the rows, each column rounded to a value it takes (valid one-hots)."""
    import shap

    return shap.kmeans(x, min(k, len(x)))


def shap_values(
    model: FlatModel, x: np.ndarray, background: Any, target: np.ndarray, seed: int, nsamples: int
) -> np.ndarray:
    """Mean |Kernel SHAP| per feature of the target probability, over the rows of ``x``."""
    import shap

    def run(f: Proba) -> np.ndarray:
        state = np.random.get_state()
        np.random.seed(seed)  # KernelExplainer samples coalitions from NumPy's global generator
        try:
            explainer = shap.KernelExplainer((lambda z: f(z)[:, 1]) if model.n_classes == 2 else f, background)
            values = np.asarray(explainer.shap_values(x, nsamples=nsamples, l1_reg=False, silent=True))
        finally:
            np.random.set_state(state)
        return values if values.ndim == 2 else values[np.arange(len(x)), :, target]

    return np.abs(_batched(model, run)).mean(axis=0)


def permutation_values(model: FlatModel, x: np.ndarray, y: np.ndarray, seed: int, repeats: int) -> np.ndarray:
    """Mean drop in accuracy when one feature's column is shuffled (scikit-learn)."""
    from sklearn.inspection import permutation_importance

    def run(f: Proba) -> np.ndarray:
        clf = ProbaClassifier(f, model.n_classes).fit(x, y)
        result = permutation_importance(clf, x, y, scoring=_accuracy, n_repeats=repeats, random_state=seed)
        return result.importances_mean

    return _batched(model, run)


def _accuracy(clf: ProbaClassifier, x: np.ndarray, y: np.ndarray) -> float:
    # scoring="accuracy" would validate the labels on each of the n_features * repeats calls
    return float(np.mean(clf.predict(x) == y))


def partial_dependence(
    model: FlatModel, x: np.ndarray, features: Sequence[str], names: list[str], grid: int = 20, ice: int = 5
) -> dict[str, dict]:
    """Partial dependence (average) and the first ``ice`` ICE lines per feature, on a shared grid."""
    from sklearn.inspection import partial_dependence as sk_partial_dependence

    def run(f: Proba) -> dict[str, dict]:
        clf = ProbaClassifier(f, model.n_classes).fit(x, None)
        curves = {}
        for name in features:
            r = sk_partial_dependence(
                clf, x, [names.index(name)], kind="both", grid_resolution=grid, response_method="predict_proba"
            )
            # Binary: one output, P(class 1); multiclass: one curve per class.
            average = r["average"][0] if model.n_classes == 2 else r["average"]
            curves[name] = {
                "grid": r["grid_values"][0].tolist(),
                "average": average.tolist(),
                "ice": r["individual"][0][:ice].tolist(),
            }
        return curves

    return _batched(model, run)


def integrated_gradients(
    model_path: str | Path, x: np.ndarray, target: np.ndarray, steps: int = 32, trust_model: bool = False
):
    """Integrated gradients of the target probability from the rows' mean, on the Keras model.

    Returns per-row attributions (flat) and the completeness gap: mean |sum(IG) - (f(x) - f(mean))|.
    """
    from edge_opt._tf import tf
    from edge_opt.models import load_keras

    tf_ = tf()
    model = load_keras(model_path, trust=trust_model)
    x = np.asarray(x, dtype=np.float32)
    base = x.mean(axis=0, keepdims=True)
    alphas = np.linspace(0.0, 1.0, steps + 1, dtype=np.float32).reshape(-1, *[1] * x.ndim)
    path = tf_.constant((base + alphas * (x - base)).reshape(-1, *x.shape[1:]))  # (steps + 1) * n rows
    with tf_.GradientTape() as tape:
        tape.watch(path)
        p = _target_column(model(path, training=False), np.tile(target, steps + 1))
    grads = tape.gradient(p, path).numpy().reshape(steps + 1, *x.shape)
    ig = (x - base) * ((grads[:-1] + grads[1:]) / 2).mean(axis=0)  # trapezoid rule
    p = p.numpy().reshape(steps + 1, len(x))
    gap = float(np.mean(np.abs(ig.reshape(len(x), -1).sum(axis=1) - (p[-1] - p[0]))))
    return ig.reshape(len(x), -1), gap


def lime_explanation(
    model: FlatModel,
    pool: np.ndarray,
    row: np.ndarray,
    names: list[str],
    categorical: list[int],
    target: int,
    seed: int,
    num_features: int = 10,
    num_samples: int = 1000,
) -> list[tuple[str, float]]:
    """LIME's local linear explanation of one row: (condition, weight), strongest first."""
    from lime.lime_tabular import LimeTabularExplainer

    explainer = LimeTabularExplainer(
        pool,
        mode="classification",
        feature_names=names,
        categorical_features=categorical,
        discretize_continuous=True,
        random_state=seed,
    )
    with warnings.catch_warnings():  # dequantized int8 outputs do not sum to 1 exactly
        warnings.filterwarnings("ignore", r"\s*Prediction probabilties do not sum to 1")
        exp = explainer.explain_instance(
            row, model, labels=(int(target),), num_features=num_features, num_samples=num_samples
        )
    return [(condition, float(w)) for condition, w in exp.as_list(label=int(target))]


# --- stability ---


def stability(reference: np.ndarray, artifact: np.ndarray) -> dict[str, float | None]:
    """Spearman correlation over the features either model uses, and top-k overlaps."""
    from scipy.stats import spearmanr

    reference, artifact = np.asarray(reference, dtype=float), np.asarray(artifact, dtype=float)
    used = (reference != 0) | (artifact != 0)
    a, b = reference[used], artifact[used]
    rho = None
    if len(a) >= 2 and np.ptp(a) > 0 and np.ptp(b) > 0:
        rho = float(spearmanr(a, b).statistic)
    out: dict[str, float | None] = {"rank_corr": rho}
    for k in TOP_K:
        shared = set(_top(reference, k)) & set(_top(artifact, k))
        out[f"top{k}_overlap"] = len(shared) / min(k, len(reference))
    return out


def _top(values: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-values, kind="stable")[:k]


# --- the scikit-learn view of a predictor, and batching of its calls ---


class ProbaClassifier(ClassifierMixin, BaseEstimator):
    """A fitted scikit-learn classifier made of a probability function, for ``sklearn.inspection``."""

    _estimator_type = "classifier"

    def __init__(self, proba: Proba | None = None, n_classes: int = 2) -> None:
        self.proba = proba
        self.n_classes = n_classes

    def fit(self, x: Any = None, y: Any = None) -> ProbaClassifier:
        self.classes_ = np.arange(self.n_classes)
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.proba(np.asarray(x, dtype=np.float32))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(x).argmax(axis=1)]


def _batched(model: FlatModel, algorithm: Callable[[Proba], T]) -> T:
    """``algorithm(proba)``, its many small predict calls served by one large one.

    Keras' ``predict`` costs ~0.4 s a call whatever the batch, and SHAP, permutation importance
    and partial dependence make hundreds of calls. Their queries depend on the data and the seed,
    not on the answers, so the algorithm runs twice: first recording its queries (answered with
    uniform probabilities), then served from one call over all of them. A query that differs from
    the recording goes to the model itself, so the result is always the direct one.
    """
    if not model.batch:
        return algorithm(model)
    queries: list[np.ndarray] = []

    def record(x: np.ndarray) -> np.ndarray:
        queries.append(np.array(x, dtype=np.float32))
        return np.full((len(x), model.n_classes), 1.0 / model.n_classes, dtype=np.float32)

    result = algorithm(record)
    if not queries:
        return result
    answers = iter(zip(queries, _chunked(model, queries), strict=True))

    def replay(x: np.ndarray) -> np.ndarray:
        query, answer = next(answers, (None, None))
        x = np.asarray(x, dtype=np.float32)
        return answer if query is not None and np.array_equal(query, x) else model(x)

    return algorithm(replay)


def _chunked(model: FlatModel, queries: list[np.ndarray], chunk: int = 1 << 16) -> list[np.ndarray]:
    rows = np.concatenate(queries)
    out = np.concatenate([model(rows[i : i + chunk]) for i in range(0, len(rows), chunk)])
    return np.split(out, np.cumsum([len(q) for q in queries])[:-1])


# --- inputs and outputs ---


def _check_shape(predictor: Predictor, data: EvalData) -> None:
    if len(data.feature_names) != data.n_features:
        raise BadInputError(f"data has {data.n_features} features but {len(data.feature_names)} feature names")
    shape = predictor.input_shape
    if all(d > 0 for d in shape) and int(np.prod(shape)) != data.n_features:
        raise BadInputError(
            f"{predictor.path.name} takes {int(np.prod(shape))} features {shape}, the data has {data.n_features}"
        )


def _keras_path(float_model_path: str | Path | None, *predictors: Predictor | None) -> Path:
    if float_model_path is not None:
        return Path(float_model_path)
    for p in predictors:
        if p is not None and p.format == "keras":
            return p.path
    raise BadInputError("integrated gradients need the float Keras model: pass float_model_path")


def _pdp_features(requested: Sequence[str] | None, names: list[str], done: dict[str, dict]) -> list[str]:
    if requested is not None:
        unknown = [f for f in requested if f not in names]
        if unknown:
            raise BadInputError(f"unknown feature(s) for partial dependence: {', '.join(unknown)}")
        return list(requested)
    for method in COMPARED:  # else the top two by importance, the float model's when there is one
        if method in done:
            ranked = done[method].get("float") or done[method]["artifact"]
            return list(ranked)[:2]
    return names[:2]


def _flat(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).reshape(len(x), -1)


def _targets(y: np.ndarray, n_classes: int) -> np.ndarray:
    """The class whose probability is explained per row: 1 for binary tasks, else the true class."""
    return np.ones(len(y), dtype=np.int64) if n_classes == 2 else np.asarray(y, dtype=np.int64)


def _target_column(out, target: np.ndarray):
    """The target class's probability from a Keras output (one sigmoid unit or one per class)."""
    from edge_opt._tf import tf

    if out.shape[-1] == 1:
        return out[:, 0]
    return tf().gather(out, target, axis=1, batch_dims=1)


def _categorical(data: EvalData) -> list[int]:
    """The one-hot columns of tabular data: the features that ``perturbable`` rules out."""
    if data.perturbable is None:
        return []
    return [int(i) for i in np.flatnonzero(~np.asarray(data.perturbable))]


def _ranked(names: list[str], values: np.ndarray) -> dict[str, float]:
    order = np.argsort(-np.asarray(values), kind="stable")
    return {names[i]: float(values[i]) for i in order}


def _summary(result: dict[str, Any]) -> dict[str, float | None]:
    summary: dict[str, float | None] = {}
    for method in COMPARED:
        entry = result["methods"].get(method)
        if entry is not None:
            for key in ("rank_corr", *(f"top{k}_overlap" for k in TOP_K)):
                summary[f"{method}_{key}"] = entry.get(key)
    if "pdp" in result["methods"]:
        summary["pdp_max_delta"] = result["methods"]["pdp"].get("max_delta")
    summary["seconds"] = result["seconds"]
    return summary


def render_explain(result: dict[str, Any], top: int = 5) -> str:
    """Markdown: top features float vs artifact per method, stability figures, time."""
    methods = result["methods"]
    against = f"against the float model {Path(result['float']).name}" if result["float"] else "no float model"
    lines = [f"## Explanations: {Path(result['artifact']).name}", ""]
    lines += [f"{result['rows']} rows, seed {result['seed']}, {against}.", ""]
    for method, entry in methods.items():
        if method == "pdp":
            continue
        roles = [r for r in ("float", "artifact") if r in entry]
        lines += [f"### {method}", "", "| # | " + " | ".join(roles) + " |", "|---|" + "---|" * len(roles)]
        ranked = {r: list(entry[r].items())[:top] for r in roles}
        for i in range(min(top, *(len(v) for v in ranked.values()))):
            lines.append(
                f"| {i + 1} | " + " | ".join(f"{ranked[r][i][0]} ({ranked[r][i][1]:.4g})" for r in roles) + " |"
            )
        lines.append("")
    stable = [m for m in COMPARED if m in methods and "top5_overlap" in methods[m]]
    if stable:
        lines += [
            "### Stability (float vs artifact)",
            "",
            "| method | Spearman ρ | top-5 | top-10 |",
            "|---|---|---|---|",
        ]
        for m in stable:
            e = methods[m]
            rho = "n/a" if e["rank_corr"] is None else f"{e['rank_corr']:.3f}"
            lines.append(f"| {m} | {rho} | {e['top5_overlap']:.0%} | {e['top10_overlap']:.0%} |")
        lines.append("")
    if "pdp" in methods:
        pdp = methods["pdp"]
        delta = f"; max |Δ| vs float {pdp['max_delta']:.4f}" if "max_delta" in pdp else ""
        lines += [f"Partial dependence on {', '.join(pdp['features'])}{delta}.", ""]
    if "lime" in result:
        lime = result["lime"]
        for role in ("float", "artifact"):
            if role in lime:
                terms = ", ".join(f"{c} ({w:+.3f})" for c, w in lime[role][:top])
                lines.append(f"LIME row {lime['row']} ({role}, {lime['implementation']}): {terms}")
        lines.append("")
    timed = {**methods, **({"lime": result["lime"]} if "lime" in result else {})}
    timing = ", ".join(f"{m} {e['seconds']:.1f} s" for m, e in timed.items())
    lines.append(f"Time: {result['seconds']:.1f} s ({timing}).")
    return "\n".join(lines) + "\n"
