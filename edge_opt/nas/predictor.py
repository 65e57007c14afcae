"""Latency predictors learned from this device's measured trials (always labelled a prediction).

Features of a built (untrained) Keras model: MACs (in all and per layer kind), parameters,
layers by kind, input size, the elements that pass through an activation of their own.

- :class:`LatencyPredictor` (whole model): a ridge regression on them, fitted to the harness's
  measured p50 latency.
- :class:`OpTypePredictor` (per op type, as nn-Meter predicts kernels and sums them): where the
  trials' per-op profiles exist, each trial's p50 is split by its profile's shares into the time
  of dense, conv, depthwise, pooling and other ops; each kind's time is fitted on that kind's
  own op count and MACs (non-negative), the rest on the activations, ops and input size; the
  prediction is their sum.

Each one's accuracy is the share of held-out measured trials (leave-one-out) within ±10%; the
search uses the per-op-type predictor where every trial has a profile and it holds better on
held-out trials (a lower median error), else the whole-model one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: What the whole-model predictor reads.
FEATURES = ("macs", "params", "dense", "conv", "separable", "pool", "input_size")
#: The op kinds the per-op-type predictor times apart (the rest is ``other``): a Keras layer as
#: the deployed file computes it (a separable conv is a depthwise op and a 1x1 conv op).
KINDS = ("dense", "conv", "depthwise", "pool")
#: Per kind, the features its time is fitted on: its ops and their MACs.
_KIND_FEATURES = {
    "dense": ("op_dense", "op_dense_macs"),
    "conv": ("op_conv", "op_conv_macs"),
    "depthwise": ("op_depthwise", "op_depthwise_macs"),
    "pool": ("op_pool", "op_pool_elems"),
    "other": ("act_elems", "op_layers", "input_size"),
}
_OP_FEATURES = tuple(dict.fromkeys(f for names in _KIND_FEATURES.values() for f in names))


def features(model) -> dict[str, float]:
    """What the predictors see of a model, read from its layers (no timing): the whole-model
    ``FEATURES`` and the per-op-type ones (``op_<kind>``, ``op_<kind>_macs``, ...)."""
    counts = dict.fromkeys((*FEATURES, *_OP_FEATURES), 0.0)
    counts["params"] = float(model.count_params())
    counts["input_size"] = float(np.prod(model.input_shape[1:]))
    for layer in model.layers:
        kind = type(layer).__name__
        out = layer.output_shape if isinstance(layer.output_shape, tuple) else layer.output_shape[0]
        if kind == "Dense":
            _add(counts, "dense", "dense", float(layer.kernel.shape[0] * layer.kernel.shape[1]))
        elif kind == "Conv2D":
            _add(counts, "conv", "conv", float(np.prod(out[1:3]) * np.prod(layer.kernel.shape)))
        elif kind == "SeparableConv2D":
            dw, pw = layer.depthwise_kernel.shape, layer.pointwise_kernel.shape
            counts["separable"] += 1
            _add(counts, None, "depthwise", float(np.prod(out[1:3]) * np.prod(dw)))
            _add(counts, None, "conv", float(np.prod(out[1:3]) * np.prod(pw)))
        elif "Pooling" in kind:
            counts["pool"] += 1
            counts["op_pool"] += 1
            counts["op_pool_elems"] += float(np.prod(layer.input_shape[1:]))
        activation = getattr(getattr(layer, "activation", None), "__name__", "linear")
        if activation not in ("linear", "relu"):  # relu fuses into its op; the others are ops of their own
            counts["act_elems"] += float(np.prod(out[1:]))
    counts["op_layers"] = sum(counts[f"op_{k}"] for k in KINDS)
    return counts


def _add(counts: dict[str, float], layer: str | None, op: str, macs: float) -> None:
    if layer:
        counts[layer] += 1
    counts["macs"] += macs
    counts[f"op_{op}"] += 1
    counts[f"op_{op}_macs"] += macs


def op_kind(op_type: str) -> str:
    """The layer kind a runtime's op type computes: ``FULLY_CONNECTED``, ``MatMul``, ``Gemm`` →
    dense; ``CONV_2D``, ``Convolution`` → conv; ``DEPTHWISE_CONV_2D``, ``GroupConvolution`` →
    depthwise; ``MAX_POOL_2D``, ``MaxPool`` → pool; anything else → other."""
    kind = op_type.lower().replace("_", "")
    if "depthwise" in kind or "groupconv" in kind:
        return "depthwise"
    if "conv" in kind and kind != "convert":
        return "conv"
    if any(k in kind for k in ("fullyconnected", "matmul", "gemm", "innerproduct")):
        return "dense"
    return "pool" if "pool" in kind else "other"


def split_by_kind(record: dict | None) -> dict[str, float] | None:
    """A measured record's p50 split by its per-op profile's shares into the time of each kind
    (the shares, not the op times, since a profiler's sum differs from the whole); None without
    a profile."""
    ops = (record or {}).get("ops")
    p50 = ((record or {}).get("latency_ms") or {}).get("p50")
    if not ops or not p50 or any(op.get("share") is None for op in ops):
        return None
    out = dict.fromkeys((*KINDS, "other"), 0.0)
    for op in ops:
        out[op_kind(op["type"])] += op["share"] * p50
    return out


class LatencyPredictor:
    """Ridge regression from model features to measured latency (ms)."""

    def __init__(self, rows: Sequence[dict[str, float]], latencies_ms: Sequence[float]) -> None:
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        x = np.array([[r[f] for f in FEATURES] for r in rows])
        self.model = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(x, np.asarray(latencies_ms))
        self.n = len(rows)

    method = "whole-model"

    def predict(self, row: dict[str, float]) -> float:
        return float(self.model.predict(np.array([[row[f] for f in FEATURES]]))[0])


class OpTypePredictor:
    """The sum of per-kind times, each a non-negative linear fit on that kind's own features to
    the time the trials' per-op profiles give the kind (``split_by_kind``)."""

    method = "per-op-type"

    def __init__(self, rows: Sequence[dict[str, float]], split: Sequence[dict[str, float]]) -> None:
        from sklearn.linear_model import LinearRegression

        self.models = {
            kind: LinearRegression(positive=True, fit_intercept=kind == "other").fit(
                _columns(rows, names), np.array([s[kind] for s in split])
            )
            for kind, names in _KIND_FEATURES.items()
        }
        self.n = len(rows)

    def predict(self, row: dict[str, float]) -> float:
        return float(sum(m.predict(_columns([row], _KIND_FEATURES[k]))[0] for k, m in self.models.items()))


def _columns(rows: Sequence[dict[str, float]], names: Sequence[str]) -> np.ndarray:
    return np.array([[r.get(f, 0.0) for f in names] for r in rows])


def fit_predictor(
    rows: Sequence[dict[str, float]], latencies_ms: Sequence[float], split: Sequence[dict[str, float] | None] = ()
):
    """The predictor to use: where every trial has a profile, the per-op-type one if it holds
    better than the whole-model one on held-out trials (lower median error), else the whole-model."""
    if split and all(s is not None for s in split):
        per_op = held_out_accuracy(rows, latencies_ms, split, OpTypePredictor)
        whole = held_out_accuracy(rows, latencies_ms)
        if per_op is None or whole is None or per_op["median_relative_error"] <= whole["median_relative_error"]:
            return OpTypePredictor(rows, split)
    return LatencyPredictor(rows, latencies_ms)


def held_out_accuracy(
    rows: Sequence[dict[str, float]],
    latencies_ms: Sequence[float],
    split: Sequence[dict[str, float] | None] = (),
    kind: type = LatencyPredictor,
) -> dict | None:
    """Leave-one-out over measured trials: the share of ``kind``'s predictions within ±10%, and
    the median error (``OpTypePredictor`` needs each trial's ``split``)."""
    if len(rows) < 4:
        return None
    errors = []
    for i in range(len(rows)):
        rest = [j for j in range(len(rows)) if j != i]
        if kind is OpTypePredictor:
            model = OpTypePredictor([rows[j] for j in rest], [split[j] for j in rest])
        else:
            model = LatencyPredictor([rows[j] for j in rest], [latencies_ms[j] for j in rest])
        errors.append(abs(model.predict(rows[i]) - latencies_ms[i]) / latencies_ms[i])
    return {
        "held_out": len(rows),
        "within_10pct": float(np.mean(np.array(errors) <= 0.10)),
        "median_relative_error": float(np.median(errors)),
        "predictor": kind.method,
        "method": "leave-one-out over measured trials (a prediction, not a measurement)",
    }


def describe_accuracy(predictor: dict) -> str | None:
    """``10% of 20 held-out trials within ±10% (median error 24%) from whole-model features; 15%
    ...`` for a search's ``predictor`` figures, or None before it could be scored."""
    whole, per_op = predictor.get("accuracy"), predictor.get("accuracy_per_op_type")
    if not whole:
        return None
    text = (
        f"{whole['within_10pct']:.0%} of {whole['held_out']} held-out trials within ±10% "
        f"(median error {whole['median_relative_error']:.0%}) from whole-model features"
    )
    if per_op:
        text += (
            f"; {per_op['within_10pct']:.0%} (median error {per_op['median_relative_error']:.0%}) "
            "from per-op-type times learned from the trials' op profiles"
        )
    return text
