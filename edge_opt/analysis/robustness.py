"""Robustness of deployed artifacts, as deltas against the float Keras model.

Four perturbations, each a curve over its budget:

* ``fgsm``, ``pgd``: white-box L-inf attacks on the float model (tf.GradientTape); the same
  adversarial rows are then fed to every artifact (transfer).
* ``blackbox``: the score-based L-inf Square attack (Andriushchenko et al., 2020) run against
  each model itself through its probabilities, with a per-row query budget.
* ``noise``: Gaussian noise of standard deviation sigma.

Every perturbation touches only ``data.perturbable`` features and keeps each feature within
[lower, upper], widened to include the clean value so that a zero budget gives the clean row.
Epsilons and sigmas are in the features' own units (Adult: standardized; digits: pixels in [0, 1]).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_opt.analysis.data import EvalData
from edge_opt.analysis.predictor import Predictor
from edge_opt.attacks import Box, FloatModel, fgsm, gaussian_noise, pgd
from edge_opt.core.errors import BadInputError

ATTACKS = ("fgsm", "pgd", "blackbox", "noise")
SUMMARY_KEYS = {
    "clean_accuracy": "accuracy on the unperturbed rows",
    "clean_accuracy_drop": "float model's clean accuracy minus the artifact's",
    "robust_accuracy@E": "accuracy on the PGD rows at epsilon E, made on the float model (transfer)",
    "robust_accuracy_drop@E": "float model's PGD accuracy at E minus the artifact's, on the same rows",
    "fgsm_accuracy@E": "accuracy on the FGSM rows at epsilon E (transfer)",
    "blackbox_accuracy@E": "accuracy under the Square attack run on the artifact itself",
    "blackbox_success_rate@E": "fraction of the artifact's correct rows the Square attack flips",
    "blackbox_success_rate_delta@E": "artifact's black-box success rate minus the float model's",
    "blackbox_queries@E": "mean queries per attacked row (budget: blackbox_queries)",
    "noise_accuracy@S": "accuracy under Gaussian noise of sigma S",
    "noise_accuracy_drop@S": "float model's noise accuracy at S minus the artifact's",
}

Predict = Callable[[np.ndarray], np.ndarray]  # (n, *shape) -> (n, n_classes) probabilities


def box_of(data: EvalData) -> Box:
    """Where the data's rows may go: its perturbable features, within its lower and upper bounds."""
    return Box.make(data.n_features, data.perturbable, data.lower, data.upper)


def _margin(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """p(true class) - max p(other class): negative once the row is misclassified."""
    true = probs[np.arange(len(y)), y]
    other = probs.copy()
    other[np.arange(len(y)), y] = -np.inf
    return true - other.max(axis=1)


def square_attack(
    predict: Predict, x: np.ndarray, y: np.ndarray, eps: float, box: Box,
    max_queries: int = 100, seed: int = 0, p_init: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Score-based L-inf Square attack; returns the rows and the queries each one used.

    Each row uses at most ``max_queries`` model queries, the first on the clean row. Rows the
    model already gets wrong are not attacked. Each step moves a random square window (images,
    NHWC) or a random subset of the perturbable features (tabular) to another vertex of the
    eps-ball and keeps the move if it lowers the true class's probability margin.
    """
    if max_queries < 1:
        raise BadInputError(f"max_queries must be at least 1, got {max_queries}")
    rng = np.random.default_rng(seed)
    n, shape = len(x), x.shape[1:]
    flat = x.reshape(n, -1)
    margin = _margin(predict(x), y)
    queries = np.ones(n, np.int64)
    adv = flat.copy()
    todo = np.flatnonzero(margin > 0) if eps > 0 and max_queries >= 2 else np.array([], np.int64)
    if not todo.size:
        return adv.reshape(x.shape), queries
    image = len(shape) == 3
    p_init = (0.1 if image else 0.3) if p_init is None else p_init

    # Start at a vertex: random signs (constant down each image column, as in the paper).
    if image:
        h, w, c = shape
        signs = np.broadcast_to(rng.choice([-1.0, 1.0], size=(n, 1, w, c)), (n, h, w, c)).reshape(n, -1)
    else:
        signs = rng.choice([-1.0, 1.0], size=flat.shape)
    delta = (eps * signs).astype(np.float32)
    adv[todo] = box.apply(flat[todo], delta[todo])
    margin[todo] = _margin(predict(adv[todo].reshape(-1, *shape)), y[todo])
    queries[todo] += 1

    features = np.flatnonzero(box.mask)
    for i in range(max_queries - 2):
        act = todo[margin[todo] > 0]
        if not act.size:
            break
        p = p_init * 0.5 ** (4 * i // (max_queries - 2))  # halve the window each quarter of the budget
        if image:
            new = _move_window(delta[act], shape, p, eps, rng)
        else:
            new = delta[act].copy()
            k = max(1, round(p * features.size))
            pick = features[rng.random((act.size, features.size)).argsort(axis=1)[:, :k]]
            new[np.arange(act.size)[:, None], pick] *= -1.0
        cand = box.apply(flat[act], new)
        m = _margin(predict(cand.reshape(-1, *shape)), y[act])
        queries[act] += 1
        better = m <= margin[act]  # ties too: quantized outputs have plateaus to cross
        rows = act[better]
        delta[rows], adv[rows], margin[rows] = new[better], cand[better], m[better]
    return adv.reshape(x.shape), queries


def _move_window(delta: np.ndarray, shape: tuple, p: float, eps: float, rng: np.random.Generator) -> np.ndarray:
    """Set a random square window of each row's image to a random sign per channel."""
    m, (h, w, c) = len(delta), shape
    s = int(np.clip(round(math.sqrt(p * h * w)), 1, min(h, w)))
    r, q = rng.integers(0, h - s + 1, m), rng.integers(0, w - s + 1, m)
    rows = (np.arange(h) >= r[:, None]) & (np.arange(h) < r[:, None] + s)
    cols = (np.arange(w) >= q[:, None]) & (np.arange(w) < q[:, None] + s)
    win = (rows[:, :, None] & cols[:, None, :])[..., None]
    vals = (eps * rng.choice([-1.0, 1.0], size=(m, 1, 1, c))).astype(np.float32)
    old = delta.reshape(m, h, w, c)
    new = np.where(win, vals, old)
    same = (new == old).all(axis=(1, 2, 3))
    new[same] = np.where(win, -vals, old)[same]  # the window must change, or the query is wasted
    return new.reshape(m, -1)


# --- the check ---------------------------------------------------------------------------------


def _point(y: np.ndarray, clean: np.ndarray, pred: np.ndarray, x: np.ndarray, adv: np.ndarray) -> dict[str, Any]:
    """Accuracy, success rate (correct rows that flip) and mean size of the successful perturbations."""
    correct = clean == y
    flipped = correct & (pred != y)
    d = (adv - x).reshape(len(x), -1)[flipped].astype(np.float64)
    return {
        "accuracy": float(np.mean(pred == y)),
        "success_rate": float(flipped.sum() / correct.sum()) if correct.any() else None,
        "linf": float(np.abs(d).max(axis=1).mean()) if flipped.any() else None,
        "l2": float(np.linalg.norm(d, axis=1).mean()) if flipped.any() else None,
    }


def _curve(key: str, budgets: Sequence[float], points: list[dict[str, Any]]) -> dict[str, list]:
    curve: dict[str, list] = {key: [float(b) for b in budgets]}
    for name in points[0]:
        curve[name] = [p[name] for p in points]
    return curve


def _curves(
    predict: Predict, x: np.ndarray, y: np.ndarray, box: Box, shared: dict[str, list[np.ndarray]],
    epsilons: Sequence[float], sigmas: Sequence[float], queries: int, seed: int,
) -> dict[str, Any]:  # fmt: skip
    """One model's curves: the shared perturbed rows (fgsm, pgd, noise) and its own black-box attack."""
    clean = predict(x).argmax(axis=1)
    curves = {}
    for attack in ("fgsm", "pgd", "noise"):
        budgets = sigmas if attack == "noise" else epsilons
        points = [_point(y, clean, predict(adv).argmax(axis=1), x, adv) for adv in shared[attack]]
        curves[attack] = _curve("sigma" if attack == "noise" else "epsilon", budgets, points)
    points = []
    for i, eps in enumerate(epsilons):
        adv, used = square_attack(predict, x, y, eps, box, queries, seed=seed + 1000 * i)
        point = _point(y, clean, predict(adv).argmax(axis=1), x, adv)
        attacked = clean == y
        point["queries"] = float(used[attacked].mean()) if eps > 0 and attacked.any() else 0.0
        points.append(point)
    curves["blackbox"] = _curve("epsilon", epsilons, points)
    return {"clean_accuracy": float(np.mean(clean == y)), "curves": curves}


def _check_budgets(name: str, values: Sequence[float]) -> list[float]:
    values = [float(v) for v in values]
    if not values:
        raise BadInputError(f"{name} must list at least one value")
    bad = [v for v in values if not math.isfinite(v) or v < 0]
    if bad:
        raise BadInputError(f"{name} must be finite and >= 0, got {bad[0]:g}")
    return values


def _check_shape(who: str, input_shape: tuple[int, ...], data: EvalData) -> None:
    if any(d < 0 for d in input_shape):  # a dynamic dimension: nothing to compare
        return
    if math.prod(input_shape) != data.n_features:
        raise BadInputError(
            f"data has {data.n_features} features per row (shape {tuple(data.x.shape[1:])}) but {who} "
            f"expects {math.prod(input_shape)} (input shape {input_shape})"
        )


def _in_layout(pred: Predictor, shape: tuple[int, ...]) -> Predict:
    """Feed a predictor rows in its own input layout (e.g. flat where the float model takes images)."""
    if pred.input_shape == shape or any(d < 0 for d in pred.input_shape):
        return pred
    return lambda a: pred(a.reshape(len(a), *pred.input_shape))


def _tag(value: float) -> str:
    return f"{value:g}"


def _summary(art: dict[str, Any], ref: dict[str, Any], epsilons: list[float], sigmas: list[float]) -> dict[str, Any]:
    c, f = art["curves"], ref["curves"]
    out: dict[str, Any] = {
        "clean_accuracy": art["clean_accuracy"],
        "clean_accuracy_drop": ref["clean_accuracy"] - art["clean_accuracy"],
    }
    for i, e in enumerate(epsilons):
        if e == 0:
            continue
        t, bb, fbb = _tag(e), c["blackbox"], f["blackbox"]
        out[f"robust_accuracy@{t}"] = c["pgd"]["accuracy"][i]
        out[f"robust_accuracy_drop@{t}"] = f["pgd"]["accuracy"][i] - c["pgd"]["accuracy"][i]
        out[f"fgsm_accuracy@{t}"] = c["fgsm"]["accuracy"][i]
        out[f"blackbox_accuracy@{t}"] = bb["accuracy"][i]
        out[f"blackbox_success_rate@{t}"] = bb["success_rate"][i]
        both = bb["success_rate"][i] is not None and fbb["success_rate"][i] is not None
        out[f"blackbox_success_rate_delta@{t}"] = bb["success_rate"][i] - fbb["success_rate"][i] if both else None
        out[f"blackbox_queries@{t}"] = bb["queries"][i]
    for i, s in enumerate(sigmas):
        if s == 0:
            continue
        out[f"noise_accuracy@{_tag(s)}"] = c["noise"]["accuracy"][i]
        out[f"noise_accuracy_drop@{_tag(s)}"] = f["noise"]["accuracy"][i] - c["noise"]["accuracy"][i]
    return out


def _deltas(art: dict[str, Any], ref: dict[str, Any]) -> dict[str, dict[str, list]]:
    """Artifact minus float, per attack and budget, for accuracy and success rate."""
    out = {}
    for attack, curve in art["curves"].items():
        fc = ref["curves"][attack]
        out[attack] = {
            key: [None if a is None or b is None else a - b for a, b in zip(curve[key], fc[key], strict=True)]
            for key in ("accuracy", "success_rate")
        }
    return out


def robustness_check(
    artifacts: dict[str, Predictor | str | Path],
    float_model_path: str | Path,
    data: EvalData,
    epsilons: Sequence[float] = (0.0, 0.05, 0.1, 0.2),
    sigmas: Sequence[float] = (0.0, 0.05, 0.1, 0.2),
    pgd_steps: int = 10,
    pgd_step_size: float | None = None,
    blackbox_queries: int = 100,
    rows: int | None = 500,
    seed: int = 0,
    trust_model: bool = False,
) -> dict[str, Any]:
    """Robustness curves of the float model and of each artifact, their deltas and a gate summary.

    ``blackbox_queries`` is the Square attack's budget per row and epsilon (the clean query
    included); ``pgd_step_size`` defaults to 2.5 * eps / pgd_steps; ``rows`` takes the first rows.
    """
    epsilons, sigmas = _check_budgets("epsilons", epsilons), _check_budgets("sigmas", sigmas)
    _check_settings(pgd_steps, pgd_step_size, blackbox_queries, rows)
    data = data.head(rows) if rows else data
    box = box_of(data)
    predictors = {
        k: v if isinstance(v, Predictor) else Predictor(v, trust_model=trust_model) for k, v in artifacts.items()
    }
    model = FloatModel.load(float_model_path, trust_model)
    x, y = _checked_rows(model, predictors, data)

    # The white-box rows and the noise are made once and shared, so every model sees the same inputs.
    shared = {
        "fgsm": [fgsm(model, x, y, e, box) for e in epsilons],
        "pgd": [pgd(model, x, y, e, box, pgd_steps, pgd_step_size, seed + i) for i, e in enumerate(epsilons)],
        "noise": [gaussian_noise(x, s, box, seed + 100 + i) for i, s in enumerate(sigmas)],
    }
    budgets = (epsilons, sigmas, blackbox_queries, seed)
    ref = _curves(model, x, y, box, shared, *budgets)
    results = {}
    for name, pred in predictors.items():
        results[name] = _artifact_result(pred, model, x, y, box, shared, budgets, ref)
    return {
        "config": {
            "rows": len(x),
            "epsilons": epsilons,
            "sigmas": sigmas,
            "pgd_steps": pgd_steps,
            "pgd_step_size": pgd_step_size,
            "blackbox_queries": blackbox_queries,
            "seed": seed,
            "perturbable_features": int(box.mask.sum()),
            "float_model": str(float_model_path),
        },
        "float": ref,
        "artifacts": results,
        "summary": {name: res["summary"] for name, res in results.items()},
    }


def _check_settings(pgd_steps: int, pgd_step_size: float | None, blackbox_queries: int, rows: int | None) -> None:
    """Refuse PGD steps, step size, black-box queries or rows out of their range."""
    if pgd_steps < 1:
        raise BadInputError(f"pgd_steps must be at least 1, got {pgd_steps}")
    if pgd_step_size is not None and not pgd_step_size > 0:
        raise BadInputError(f"pgd_step_size must be > 0, got {pgd_step_size}")
    if blackbox_queries < 2:
        raise BadInputError(
            f"blackbox_queries must be at least 2 (the clean query and one attack), got {blackbox_queries}"
        )
    if rows is not None and rows < 1:
        raise BadInputError(f"rows must be at least 1, got {rows}")


def _checked_rows(model: FloatModel, predictors: dict[str, Predictor], data: EvalData) -> tuple[np.ndarray, np.ndarray]:
    """The rows in the float model's layout and their labels, once every model and the labels fit the data."""
    _check_shape(f"the float model ({model.path.name})", model.input_shape, data)
    for name, pred in predictors.items():
        _check_shape(f"artifact '{name}' ({pred.path.name})", pred.input_shape, data)
    x = np.ascontiguousarray(data.x, np.float32).reshape(len(data.x), *model.input_shape)
    y = np.asarray(data.y, np.int64)
    if y.min() < 0 or y.max() >= data.n_classes:
        raise BadInputError(f"labels must be class indices in 0..{data.n_classes - 1}, got {y.min()}..{y.max()}")
    n_out = model(x[:1]).shape[1]
    if n_out != data.n_classes:
        raise BadInputError(f"the float model predicts {n_out} classes but the data has {data.n_classes}")
    return x, y


def _artifact_result(
    pred: Predictor,
    model: FloatModel,
    x: np.ndarray,
    y: np.ndarray,
    box: Box,
    shared: dict[str, list[np.ndarray]],
    budgets: tuple,
    ref: dict[str, Any],
) -> dict[str, Any]:
    """One artifact's curves on the shared rows, its queries, its deltas to the float model and its summary."""
    epsilons, sigmas = budgets[0], budgets[1]
    before = pred.calls
    res = {"path": str(pred.path), "runtime": pred.runtime}
    res.update(_curves(_in_layout(pred, model.input_shape), x, y, box, shared, *budgets))
    res["queries_total"] = pred.calls - before
    res["deltas"] = _deltas(res, ref)
    res["summary"] = _summary(res, ref, epsilons, sigmas)
    return res


# --- rendering ---------------------------------------------------------------------------------


def _cell(value: float | None, delta: float | None = None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if delta is None else f"{value:.3f} ({delta * 100:+.1f} pt)"


def render_robustness(result: dict[str, Any]) -> str:
    """Markdown: accuracy per attack and budget, for the float model and each artifact (Δ vs float)."""
    cfg = result["config"]
    models = {"float (keras)": (result["float"], None)}
    models.update({name: (res, res["deltas"]) for name, res in result["artifacts"].items()})
    lines = [
        f"Robustness on {cfg['rows']} rows ({cfg['perturbable_features']} perturbable features); "
        f"PGD {cfg['pgd_steps']} steps, Square attack ≤ {cfg['blackbox_queries']} queries per row. "
        "fgsm/pgd rows are made on the float model and transferred; blackbox attacks each model itself.",
        "",
    ]
    for attack in ATTACKS:
        key = "sigma" if attack == "noise" else "epsilon"
        budgets = result["float"]["curves"][attack][key]
        sym = "σ" if attack == "noise" else "ε"
        lines += [f"**{attack}** accuracy", "", "| model | " + " | ".join(f"{sym}={b:g}" for b in budgets) + " |"]
        lines.append("|---|" + "---:|" * len(budgets))
        for name, (res, deltas) in models.items():
            acc = res["curves"][attack]["accuracy"]
            d = deltas[attack]["accuracy"] if deltas else [None] * len(acc)
            lines.append(f"| {name} | " + " | ".join(_cell(a, b) for a, b in zip(acc, d, strict=True)) + " |")
        lines.append("")
    lines += ["**blackbox** success rate / mean queries", ""]
    eps = result["float"]["curves"]["blackbox"]["epsilon"]
    lines += ["| model | " + " | ".join(f"ε={e:g}" for e in eps) + " |", "|---|" + "---:|" * len(eps)]
    for name, (res, _) in models.items():
        bb = res["curves"]["blackbox"]
        cells = [f"{_cell(s)} / {q:.0f}" for s, q in zip(bb["success_rate"], bb["queries"], strict=True)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(result: dict[str, Any], path: str | Path) -> Path:
    """Accuracy curves per attack as a PNG; needs matplotlib, which edge-opt does not depend on."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no global backend or figure state
    except ImportError:
        raise BadInputError("plotting needs matplotlib, which is not installed") from None
    fig = Figure(figsize=(4 * len(ATTACKS), 3.2), layout="tight")
    axes = fig.subplots(1, len(ATTACKS), sharey=True)
    models = {"float": result["float"], **result["artifacts"]}
    for ax, attack in zip(axes, ATTACKS, strict=True):
        key = "sigma" if attack == "noise" else "epsilon"
        for name, res in models.items():
            curve = res["curves"][attack]
            ax.plot(curve[key], curve["accuracy"], marker="o", label=name)
        ax.set_title(attack)
        ax.set_xlabel(key)
    axes[0].set_ylabel("accuracy")
    axes[-1].legend(fontsize="small")
    fig.savefig(path, dpi=100)
    return Path(path)
