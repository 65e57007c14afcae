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

- ``shap_degenerate``, ``permutation_degenerate``: 1 when a model's attributions say nothing
  (all equal, or none positive: e.g. no feature's shuffling lowers accuracy), else 0

Only the keys of the methods that ran are present. Rank correlations leave out the features
whose attribution is zero for both models (one-hot columns that never vary in the rows):
their agreement says nothing. Overlaps are the shared fraction of the k top features among
those with a positive attribution. A ranking of all-equal attributions is undefined: its
figures are None (NaN in spirit, null in JSON) and the method's entry says why, never 1.0.

Images (inputs of shape (H, W, C) larger than 16x16) are explained by patches: SHAP and
permutation importance treat each square patch (all channels together) as one feature, about
64 of them, on at most ``IMAGE_ROWS`` rows; integrated gradients give a saliency map (H, W),
channels summed. With ``budget_s`` each method's cost is estimated from a timed probe call,
its rows cut to fit what is left of the budget, or the method skipped with the reason.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from threadpoolctl import threadpool_limits

from edge_opt.analysis.data import EvalData
from edge_opt.analysis.predictor import Predictor
from edge_opt.core.errors import BadInputError
from edge_opt.core.tfkeras import tf
from edge_opt.models import load_keras

METHODS = ("shap", "permutation", "pdp", "ig", "lime")
DEFAULT_METHODS = ("shap", "permutation", "pdp")
IMAGE_METHODS = ("shap", "permutation", "ig")  # PDP of one pixel says little; ig when a Keras model is known
DEFAULT_ROWS = 400
IMAGE_ROWS = 100  # the cap on rows for images (each row is thousands of features)
IMAGE_SHAP_ROWS = 10
IMAGE_PATCHES = 64  # about this many patches per image
IG_STEPS = 32
TIE = 1e-9  # attributions closer than this are equal (float noise of batched runtime calls)
COMPARED = ("shap", "permutation")  # black-box global attributions, float vs artifact
TOP_K = (5, 10)

Proba = Callable[[np.ndarray], np.ndarray]  # flat features (n, d) -> (n, n_classes)
T = TypeVar("T")


@dataclass(frozen=True)
class Features:
    """What the attributions are over: the data's features, or patches of an image."""

    names: list[str]
    groups: list[np.ndarray] | None = None  # per feature, its flat input indices (patches); None: one each
    image: tuple[int, int, int] | None = None  # (H, W, C) when the input is an image
    patch: int | None = None  # the patch side in pixels

    @classmethod
    def of(cls, data: EvalData) -> Features:
        shape = tuple(data.x.shape[1:])
        if len(shape) != 3 or shape[0] * shape[1] <= 256:  # tabular, or a small image (digits): per feature
            return cls(list(data.feature_names))
        h, w, c = (int(d) for d in shape)
        side = max(1, math.ceil(math.sqrt(h * w / IMAGE_PATCHES)))
        index = np.arange(h * w * c).reshape(h, w, c)
        names, groups = [], []
        for r in range(0, h, side):
            for q in range(0, w, side):
                names.append(f"r{r}-{min(r + side, h) - 1} c{q}-{min(q + side, w) - 1}")
                groups.append(index[r : r + side, q : q + side].reshape(-1))
        return cls(names, groups, (h, w, c), side)

    def pool(self, flat: np.ndarray) -> np.ndarray:
        """Per-input-feature values (n, d) or (d,) summed per feature (patch)."""
        if self.groups is None:
            return flat
        return np.stack([flat[..., g].sum(axis=-1) for g in self.groups], axis=-1)


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
    methods: Sequence[str] | None = None,
    rows: int | None = None,
    seed: int = 0,
    *,
    shap_rows: int | None = None,
    shap_samples: int = 200,
    background: int = 10,
    permutation_repeats: int = 5,
    pdp_features: Sequence[str] | None = None,
    lime_row: int | None = None,
    trust_model: bool = False,
    budget_s: float | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Explain ``predictor`` on the first ``rows`` rows of ``data`` and compare with ``reference``.

    ``reference`` is the float model's Predictor; given only ``float_model_path``, it is loaded
    from there. Method "ig" (integrated gradients) needs a Keras model: ``float_model_path``, or
    the reference or the artifact when it is a .keras file. SHAP explains the first ``shap_rows``
    rows against ``background`` k-means centroids of the rows, with ``shap_samples`` coalitions per
    row (images: patches against the rows' mean image). Method "lime" explains row ``lime_row`` of
    ``data`` (default 0); giving ``lime_row`` adds it. The explained output is P(class 1) for binary
    tasks, else each row's true class's probability. ``methods`` None: the defaults for the data
    (``DEFAULT_METHODS``; images: ``IMAGE_METHODS``, "ig" only with a Keras model). ``rows`` None:
    400, images 100; ``shap_rows`` None: 50, images 10. ``budget_s``: seconds the whole check may
    take (see the module's doc). ``progress`` gets one line per method: its estimate, then its time.

    Returns ``{"artifact", "float", "rows", "seed", "methods", "seconds", "summary"}`` and
    ``"lime"`` when asked. ``methods["shap" | "permutation"]`` holds per role ("float",
    "artifact") the global attribution of each feature, largest first, and the stability
    figures; ``methods["pdp"]["features"][name]`` the grid, the average per role and 5 ICE
    lines of the artifact; ``methods["ig"]["float"]`` mean |IG| per feature (images: per patch,
    and ``saliency``, the map). Every method entry has its ``seconds``; a method the budget
    left out has only ``skipped`` (the reason), one cut to fit it says so in ``reduced``.
    """
    start = time.perf_counter()
    features = Features.of(data)
    if reference is None and float_model_path is not None:
        reference = Predictor(float_model_path, trust_model=trust_model)
    methods = _chosen_methods(methods, features, float_model_path, reference, predictor)
    predictors = {"artifact": predictor} | ({"float": reference} if reference is not None else {})
    lime_row = _checked_inputs(methods, data, predictors, budget_s, lime_row, pdp_features)
    ig_path = _keras_path(float_model_path, reference, predictor) if "ig" in methods else None
    options = _Options(
        shap_rows, shap_samples, background, permutation_repeats, pdp_features, ig_path, lime_row, trust_model
    )
    inputs = _Inputs.of(data, features, predictors, rows, seed)
    out = _header(predictor, reference, inputs, budget_s)
    plan = _Planner(inputs.models, inputs.x, budget_s, start, progress)
    _explain_methods(plan, inputs, methods, options, out)
    out["seconds"] = round(time.perf_counter() - start, 3)
    out["summary"] = _summary(out)
    return out


def _chosen_methods(
    methods: Sequence[str] | None,
    features: Features,
    float_model_path: str | Path | None,
    reference: Predictor | None,
    predictor: Predictor,
) -> tuple[str, ...]:
    """The methods asked for (a comma-separated string or a sequence), or the defaults for the data."""
    if methods is None:
        has_keras = float_model_path is not None or any(
            p is not None and p.format == "keras" for p in (reference, predictor)
        )
        image = features.image is not None
        methods = tuple(m for m in IMAGE_METHODS if m != "ig" or has_keras) if image else DEFAULT_METHODS
    methods = tuple(methods.split(",")) if isinstance(methods, str) else tuple(methods)
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise BadInputError(f"unknown explanation method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    return methods


def _checked_inputs(
    methods: tuple[str, ...],
    data: EvalData,
    predictors: dict[str, Predictor],
    budget_s: float | None,
    lime_row: int | None,
    pdp_features: Sequence[str] | None,
) -> int | None:
    """Fail early on a bad budget, data, LIME row or PDP feature; the LIME row to explain, if any."""
    if budget_s is not None and not budget_s > 0:
        raise BadInputError(f"the explanation budget must be a positive number of seconds, got {budget_s}")
    for p in predictors.values():
        _check_shape(p, data)
    if "lime" in methods and lime_row is None:
        lime_row = 0
    if lime_row is not None and not 0 <= lime_row < len(data.x):
        raise BadInputError(f"LIME row {lime_row} is outside the data's {len(data.x)} rows")
    if pdp_features is not None:
        _pdp_features(pdp_features, data.feature_names, {})  # fail before the slow work
    return lime_row


@dataclass(frozen=True)
class _Options:
    """The per-method settings of one check (see ``explain_check``)."""

    shap_rows: int | None
    shap_samples: int
    background: int
    permutation_repeats: int
    pdp_features: Sequence[str] | None
    ig_path: Path | None
    lime_row: int | None
    trust_model: bool


@dataclass(frozen=True)
class _Inputs:
    """What the methods explain: the head of the data, flat, with its targets, and a model per role."""

    data: EvalData  # all of it: LIME's row may lie past the head
    head: EvalData
    x: np.ndarray
    target: np.ndarray
    features: Features
    models: dict[str, FlatModel]
    seed: int

    @classmethod
    def of(
        cls, data: EvalData, features: Features, predictors: dict[str, Predictor], rows: int | None, seed: int
    ) -> _Inputs:
        """The first ``rows`` rows of ``data`` (None: 400, images 100) and a FlatModel per predictor."""
        rows = rows if rows is not None else (IMAGE_ROWS if features.image is not None else DEFAULT_ROWS)
        head = data.head(rows)
        models = {role: FlatModel(p, data.x.shape[1:], data.n_classes) for role, p in predictors.items()}
        return cls(data, head, _flat(head.x), _targets(head.y, head.n_classes), features, models, seed)


def _header(predictor: Predictor, reference: Predictor | None, inputs: _Inputs, budget_s: float | None) -> dict:
    """The result before any method ran: the models, rows, seed, patches and budget."""
    out: dict[str, Any] = {
        "artifact": str(predictor.path),
        "float": str(reference.path) if reference is not None else None,
        "rows": len(inputs.x),
        "seed": inputs.seed,
        "methods": {},
    }
    features = inputs.features
    if features.image is not None:
        out["patches"] = {"side": features.patch, "count": len(features.names), "image": list(features.image)}
    if budget_s is not None:
        out["budget_s"] = budget_s
    return out


def _explain_methods(
    plan: _Planner, inputs: _Inputs, methods: tuple[str, ...], options: _Options, out: dict[str, Any]
) -> None:
    """Run each chosen method the budget allows into ``out["methods"]`` (LIME into ``out["lime"]``)."""
    found = out["methods"]
    # One thread for NumPy and scikit-learn: the arrays are small, and OpenMP's spinning
    # threads slow k-means tenfold when the two cores are busy.
    with threadpool_limits(limits=1):
        if "shap" in methods:
            _run_shap(plan, inputs, options, found)
        if "permutation" in methods:
            _run_permutation(plan, inputs, options, found)
        if "pdp" in methods:
            _run_pdp(plan, inputs, options, found)
        if options.ig_path is not None:
            _run_ig(plan, inputs, options, found)
        if options.lime_row is not None:
            out["lime"] = _run_lime(plan, inputs, options)
        found.update(plan.skipped)


def _run_shap(plan: _Planner, inputs: _Inputs, options: _Options, found: dict[str, Any]) -> None:
    """Kernel SHAP per model into ``found["shap"]``, unless the budget leaves it out."""
    x, target, features, seed = inputs.x, inputs.target, inputs.features, inputs.seed
    image = features.image is not None
    shap_rows = options.shap_rows if options.shap_rows is not None else (IMAGE_SHAP_ROWS if image else 50)
    shap_samples = options.shap_samples
    n_bg = 1 if image else min(options.background, len(x))
    if image:  # fewer coalitions than 2 per patch leave Kernel SHAP's regression underdetermined
        shap_samples = max(shap_samples, 2 * len(features.names) + 2)
    n = plan.fit("shap", shap_rows, 2, lambda k: k * (shap_samples + 1) * n_bg, lambda k: 2 * k + 1)
    if n:
        if image:
            base = x.mean(axis=0)
            found["shap"] = plan.run(
                "shap", n, shap_rows, _compared, inputs.models, features.names,
                lambda m: patch_shap_values(m, x[:n], base, features.groups, target[:n], seed, shap_samples),
            )  # fmt: skip
        else:
            bg = shap_background(x, options.background)  # shared by both models
            found["shap"] = plan.run(
                "shap", n, shap_rows, _compared, inputs.models, inputs.head.feature_names,
                lambda m: shap_values(m, x[:n], bg, target[:n], seed, shap_samples),
            )  # fmt: skip


def _run_permutation(plan: _Planner, inputs: _Inputs, options: _Options, found: dict[str, Any]) -> None:
    """Permutation importance per model into ``found["permutation"]``, unless the budget leaves it out."""
    x, y, features, repeats = inputs.x, inputs.head.y, inputs.features, options.permutation_repeats
    n_feat = len(features.names)
    n = plan.fit("permutation", len(x), 20, lambda k: k * (n_feat * repeats + 1), lambda k: 3)
    if n:
        found["permutation"] = plan.run(
            "permutation", n, len(x), _compared, inputs.models, features.names,
            lambda m: permutation_values(m, x[:n], y[:n], inputs.seed, repeats, features.groups),
        )  # fmt: skip


def _run_pdp(plan: _Planner, inputs: _Inputs, options: _Options, found: dict[str, Any]) -> None:
    """Partial dependence per model into ``found["pdp"]``, unless the budget leaves it out."""
    x, head = inputs.x, inputs.head
    # The dataset's own default features (Adult: age, hours-per-week), else the top two.
    requested = options.pdp_features if options.pdp_features is not None else (head.pdp_features or None)
    chosen = _pdp_features(requested, head.feature_names, found)
    grid = 20
    n = plan.fit("pdp", len(x), 20, lambda k: k * grid * len(chosen), lambda k: grid * len(chosen))
    if n:
        found["pdp"] = plan.run("pdp", n, len(x), _pdp, inputs.models, x[:n], chosen, head.feature_names)


def _run_ig(plan: _Planner, inputs: _Inputs, options: _Options, found: dict[str, Any]) -> None:
    """Integrated gradients of the float Keras model into ``found["ig"]``, unless the budget leaves them out."""
    x = inputs.x
    roles = 3  # a forward and a backward pass per step, on the float model only
    n = plan.fit("ig", len(x), 5, lambda k: k * (IG_STEPS + 1) * roles // len(inputs.models), lambda k: 1)
    if n:
        found["ig"] = plan.run(
            "ig", n, len(x), _ig, options.ig_path, inputs.head.x[:n], inputs.target[:n], inputs.features,
            options.trust_model,
        )  # fmt: skip


def _run_lime(plan: _Planner, inputs: _Inputs, options: _Options) -> dict[str, Any]:
    """LIME of row ``options.lime_row`` per model, or the reason the budget left it out."""
    data, x, names, seed, lime_row = inputs.data, inputs.x, inputs.head.feature_names, inputs.seed, options.lime_row
    row, row_target = _flat(data.x[lime_row : lime_row + 1])[0], _targets(data.y, data.n_classes)[lime_row]
    if plan.fit("lime", 1, 1, lambda k: 1000, lambda k: 1):
        return {"row": lime_row, "implementation": f"lime {metadata.version('lime')}"} | plan.run(
            "lime",
            1,
            1,
            lambda: {
                role: lime_explanation(m, x, row, names, _categorical(data), row_target, seed)
                for role, m in inputs.models.items()
            },
        )
    return {"row": lime_row} | plan.skipped.pop("lime")


#: The probe's largest call: the batch sizes SHAP, permutation and PDP calls reach. A 64-row probe
#: charged every row its small-batch cost and estimated SHAP at 28 s where it took 1 s.
PROBE_ROWS = 1024


class _Planner:
    """Estimates of each method's time from timed probe calls per model, cuts to fit a budget.

    Each model is timed (the faster of two calls) at 1, 64, half the largest and the largest
    probe batch; a call of ``r`` rows costs the interpolation of those times, and beyond the
    largest the cost of its last rows per row more (vectorized runtimes pay less per row in
    large batches).
    """

    def __init__(
        self,
        models: dict[str, FlatModel],
        x: np.ndarray,
        budget_s: float | None,
        start: float,
        progress: Callable[[str], None],
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.budget_s, self.start, self.progress, self.n_models = budget_s, start, progress, len(models)
        self.clock = clock
        self.skipped: dict[str, dict] = {}
        big = int(min(PROBE_ROWS, max(64, 2**26 // max(x[:1].nbytes, 1))))  # at most 64 MiB of images
        probe = np.resize(x, (big, *x.shape[1:])) if len(x) else x
        self.sizes = np.array(sorted({1, min(64, big), big // 2, big}), dtype=np.float64)
        self.times = np.zeros(len(self.sizes))  # all models together
        for m in models.values():
            m(probe[:1])  # the first call of a runtime pays for its warm-up: not timed
            self.times += [self._time(m, probe[: int(n)]) for n in self.sizes]
        self.times = np.maximum.accumulate(self.times)  # noise must not make more rows cheaper
        # Seconds per row beyond the largest probe: the slope of its last half.
        self.per_row = max(self.times[-1] - self.times[-2], 0.0) / max(self.sizes[-1] - self.sizes[-2], 1.0)

    def _time(self, model: FlatModel, rows: np.ndarray) -> float:
        best = float("inf")
        for _ in range(2):
            t = self.clock()
            model(rows)
            best = min(best, self.clock() - t)
        return best

    def call(self, rows: float) -> float:
        """Seconds of one call of ``rows`` rows, all models together."""
        if rows <= self.sizes[-1]:
            return float(np.interp(rows, self.sizes, self.times))
        return float(self.times[-1] + (rows - self.sizes[-1]) * self.per_row)

    def estimate(self, rows: float, calls: float) -> float:
        """Seconds of ``calls`` calls that send ``rows`` rows in all (evenly spread)."""
        return calls * self.call(rows / calls) if calls else 0.0

    def fit(self, method: str, n: int, least: int, rows: Callable[[int], float], calls: Callable[[int], float]) -> int:
        """How many rows ``method`` may use (``n`` when it fits), or 0 when it cannot fit."""
        need = self.estimate(rows(n), calls(n))
        if self.budget_s is None:
            self.progress(f"explain: {method} on {self.n_models} model(s), {n} rows: about {_secs(need)}")
            return n
        left = self.budget_s - (self.clock() - self.start)
        k = n
        while k > least and self.estimate(rows(k), calls(k)) > left:
            k = max(least, k // 2)
        est = self.estimate(rows(k), calls(k))
        if est > left or left <= 0:
            why = f"over the {self.budget_s:g} s budget: about {_secs(need)} needed, {_secs(max(left, 0))} left"
            self.skipped[method] = {"skipped": why}
            self.progress(f"explain: {method} skipped ({why})")
            return 0
        cut = f", cut from {n} rows to fit the budget" if k < n else ""
        self.progress(f"explain: {method} on {self.n_models} model(s), {k} rows: about {_secs(est)}{cut}")
        return k

    def run(self, method: str, n: int, asked: int, fn: Callable[..., dict], *args: Any) -> dict:
        t = time.perf_counter()
        entry = fn(*args) | {"seconds": round(time.perf_counter() - t, 3)}
        if n < asked:
            entry["reduced"] = f"{n} of {asked} rows, to fit the {self.budget_s:g} s budget"
        self.progress(f"explain: {method} done in {entry['seconds']:.1f} s")
        return entry


def _secs(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def _compared(models: dict[str, FlatModel], names: list[str], attribute: Callable[[FlatModel], np.ndarray]) -> dict:
    """Global attributions per model, ranked, and their stability when there is a float model."""
    values = {role: attribute(m) for role, m in models.items()}
    entry: dict[str, Any] = {role: _ranked(names, v) for role, v in values.items()}
    bad = {role: why for role, v in values.items() if (why := degenerate(v))}
    if bad:
        entry["degenerate"] = bad
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


def _ig(path: Path, x: np.ndarray, target: np.ndarray, features: Features, trust_model: bool = False) -> dict:
    values, gap = integrated_gradients(path, x, target, steps=IG_STEPS, trust_model=trust_model)
    mean_abs = np.abs(values).mean(axis=0)
    entry = {"float": _ranked(features.names, features.pool(mean_abs)), "model": str(path), "completeness_gap": gap}
    if features.image is not None:  # a saliency map: mean |IG| per pixel, channels summed
        saliency = mean_abs.reshape(features.image).sum(axis=-1)
        entry["saliency"] = {"shape": list(saliency.shape), "map": np.round(saliency, 6).tolist()}
    return entry


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


def patch_shap_values(
    model: FlatModel,
    x: np.ndarray,
    base: np.ndarray,
    groups: list[np.ndarray],
    target: np.ndarray,
    seed: int,
    nsamples: int,
) -> np.ndarray:
    """Mean |Kernel SHAP| per patch: a coalition keeps its patches of the row, the others take ``base``."""
    import shap

    cover = np.zeros((len(groups), x.shape[1]), dtype=np.float32)  # patch -> the pixels it covers
    for g, cols in enumerate(groups):
        cover[g, cols] = 1.0

    def run(f: Proba) -> np.ndarray:
        state = np.random.get_state()
        np.random.seed(seed)  # KernelExplainer samples coalitions from NumPy's global generator
        try:
            values = []
            for row, t in zip(x, target, strict=True):

                def masked(z: np.ndarray, row: np.ndarray = row, t: int = int(t)) -> np.ndarray:
                    return f(base + (np.asarray(z, dtype=np.float32) @ cover) * (row - base))[:, t]

                explainer = shap.KernelExplainer(masked, np.zeros((1, len(groups))))
                one = explainer.shap_values(np.ones((1, len(groups))), nsamples=nsamples, l1_reg=False, silent=True)
                values.append(np.asarray(one).reshape(-1))
        finally:
            np.random.set_state(state)
        return np.asarray(values)

    return np.abs(_batched(model, run)).mean(axis=0)


def permutation_values(
    model: FlatModel, x: np.ndarray, y: np.ndarray, seed: int, repeats: int, groups: list[np.ndarray] | None = None
) -> np.ndarray:
    """Mean drop of the true class's probability (over the rows) when one feature's column, or one
    patch (its pixels together), is shuffled across the rows; over ``repeats`` shuffles.

    The probability, not accuracy: one 4x4 patch of an image seldom flips a prediction, and
    accuracy would then give every patch a 0. The shuffled tables go to the model in a few
    large calls."""
    groups = groups if groups is not None else [np.array([j]) for j in range(x.shape[1])]
    rng = np.random.default_rng(seed)
    shuffles = [(cols, rng.permutation(len(x))) for cols in groups for _ in range(repeats)]
    chunk = max(len(x), min(1 << 16, (1 << 24) // max(x.shape[1], 1)))  # rows per call: at most 64 MiB
    scores: list[float] = []
    rows = np.arange(len(x))
    batch: list[np.ndarray] = []

    def flush() -> None:
        if batch:
            proba = model(np.concatenate(batch)).reshape(len(batch), len(x), -1)
            scores.extend(proba[:, rows, y].mean(axis=1).tolist())
            batch.clear()

    for cols, order in shuffles:
        shuffled = x.copy()
        shuffled[:, cols] = x[order][:, cols]
        batch.append(shuffled)
        if len(batch) * len(x) >= chunk:
            flush()
    flush()
    baseline = float(model(x)[rows, y].mean())
    return baseline - np.asarray(scores).reshape(len(groups), repeats).mean(axis=1)


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


def degenerate(values: np.ndarray) -> str | None:
    """Why a global attribution says nothing (all equal, or no feature with a positive one), or None."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return "no features"
    if np.ptp(v) <= TIE:
        return f"all {len(v)} attributions are equal ({v[0]:.3g})"
    if not (v > TIE).any():
        return f"no feature has a positive attribution (all {len(v)} are <= 0)"
    return None


def stability(reference: np.ndarray, artifact: np.ndarray) -> dict[str, float | str | None]:
    """Spearman correlation over the features either model uses, and top-k overlaps.

    A figure that cannot be computed (a degenerate attribution, too few features in use) is None
    and ``undefined`` says why: an all-equal ranking is no evidence of a stable one.
    """
    from scipy.stats import spearmanr

    reference, artifact = np.asarray(reference, dtype=float), np.asarray(artifact, dtype=float)
    out: dict[str, float | str | None] = {"rank_corr": None, **{f"top{k}_overlap": None for k in TOP_K}}
    for role, values in (("float", reference), ("artifact", artifact)):
        why = degenerate(values)
        if why:
            return out | {"undefined": f"the {role} model's {why}"}
    used = (reference != 0) | (artifact != 0)
    a, b = reference[used], artifact[used]
    if len(a) < 3:
        out["undefined"] = f"only {len(a)} feature(s) with a nonzero attribution: too few to rank"
    else:
        out["rank_corr"] = float(spearmanr(a, b).statistic)
    ranked = [np.flatnonzero(v > TIE) for v in (reference, artifact)]  # the top-k among positive attributions
    for k in TOP_K:
        tops = [set(_top(v, k)) & set(r.tolist()) for v, r in zip((reference, artifact), ranked, strict=True)]
        out[f"top{k}_overlap"] = len(tops[0] & tops[1]) / max(len(tops[0]), len(tops[1]))
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
    raise BadInputError("integrated gradients need the float Keras model: pass --float FLOAT.keras")


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
        if entry is not None and "skipped" not in entry:
            for key in ("rank_corr", *(f"top{k}_overlap" for k in TOP_K)):
                summary[f"{method}_{key}"] = entry.get(key)
            summary[f"{method}_degenerate"] = float(bool(entry.get("degenerate")))
    if "pdp" in result["methods"] and "skipped" not in result["methods"]["pdp"]:
        summary["pdp_max_delta"] = result["methods"]["pdp"].get("max_delta")
    summary["seconds"] = result["seconds"]
    return summary


def render_explain(result: dict[str, Any], top: int = 5) -> str:
    """Markdown: top features float vs artifact per method, stability figures, time."""
    methods = result["methods"]
    ran = {m: e for m, e in methods.items() if "skipped" not in e}
    against = f"against the float model {Path(result['float']).name}" if result["float"] else "no float model"
    lines = [f"## Explanations: {Path(result['artifact']).name}", ""]
    lines += [f"{result['rows']} rows, seed {result['seed']}, {against}.", ""]
    if "patches" in result:
        pt = result["patches"]
        h, w, c = pt["image"]
        lines += [f"Image {h}x{w}x{c}: features are {pt['count']} patches of {pt['side']}x{pt['side']} pixels.", ""]
    for method, entry in ran.items():
        if method != "pdp":
            lines += _method_lines(method, entry, top)
    lines += _stability_lines(ran)
    if "pdp" in ran:
        pdp = ran["pdp"]
        delta = f"; max |Δ| vs float {pdp['max_delta']:.4f}" if "max_delta" in pdp else ""
        lines += [f"Partial dependence on {', '.join(pdp['features'])}{delta}.", ""]
    if "lime" in result:
        lines += _lime_lines(result["lime"], top)
    lines += _time_lines(result)
    return "\n".join(lines) + "\n"


def _method_lines(method: str, entry: dict[str, Any], top: int) -> list[str]:
    """One method's top features, float vs artifact, and its notes (degenerate, saliency, reduced)."""
    roles = [r for r in ("float", "artifact") if r in entry]
    lines = [f"### {method}", "", "| # | " + " | ".join(roles) + " |", "|---|" + "---|" * len(roles)]
    ranked = {r: list(entry[r].items())[:top] for r in roles}
    for i in range(min(top, *(len(v) for v in ranked.values()))):
        lines.append(f"| {i + 1} | " + " | ".join(f"{ranked[r][i][0]} ({ranked[r][i][1]:.4g})" for r in roles) + " |")
    lines.append("")
    for role, why in (entry.get("degenerate") or {}).items():
        lines += [f"**Degenerate** ({role}): {why}; this ranking says nothing.", ""]
    if "saliency" in entry:
        shape = "x".join(str(d) for d in entry["saliency"]["shape"])
        lines += [f"Saliency map {shape} (mean |IG| per pixel, channels summed) in the JSON result.", ""]
    if "reduced" in entry:
        lines += [f"Reduced: {entry['reduced']}.", ""]
    return lines


def _stability_lines(ran: dict[str, dict[str, Any]]) -> list[str]:
    """The stability table (float vs artifact) of the compared methods that have one."""
    stable = [m for m in COMPARED if m in ran and "top5_overlap" in ran[m]]
    if not stable:
        return []
    lines = [
        "### Stability (float vs artifact)",
        "",
        "| method | Spearman ρ | top-5 | top-10 |",
        "|---|---|---|---|",
    ]
    for m in stable:
        e = ran[m]
        rho = "undefined" if e["rank_corr"] is None else f"{e['rank_corr']:.3f}"
        k5, k10 = (("–" if e[k] is None else f"{e[k]:.0%}") for k in ("top5_overlap", "top10_overlap"))
        lines.append(f"| {m} | {rho} | {k5} | {k10} |")
    lines.append("")
    for m in stable:
        if ran[m].get("undefined"):
            lines += [f"{m}: not a stable ranking, undefined: {ran[m]['undefined']}.", ""]
    return lines


def _lime_lines(lime: dict[str, Any], top: int) -> list[str]:
    """LIME's top terms per role."""
    lines = []
    for role in ("float", "artifact"):
        if role in lime:
            terms = ", ".join(f"{c} ({w:+.3f})" for c, w in lime[role][:top])
            lines.append(f"LIME row {lime['row']} ({role}, {lime['implementation']}): {terms}")
    lines.append("")
    return lines


def _time_lines(result: dict[str, Any]) -> list[str]:
    """The skipped methods with their reasons, then the time of the check and of each method."""
    methods = result["methods"]
    timed = {**methods, **({"lime": result["lime"]} if "lime" in result else {})}
    lines = []
    for m, e in timed.items():
        if "skipped" in e:
            lines += [f"Skipped {m}: {e['skipped']}.", ""]
    timing = ", ".join(f"{m} {e['seconds']:.1f} s" for m, e in timed.items() if "seconds" in e)
    budget = f", budget {result['budget_s']:g} s" if result.get("budget_s") is not None else ""
    lines.append(f"Time: {result['seconds']:.1f} s ({timing}{budget}).")
    return lines
