"""A latency predictor learned from this device's measured trials (always labelled a prediction).

Features of a built (untrained) Keras model: MACs, parameters, layers by kind, input size.
A ridge regression on them, fitted to the harness's measured p50 latency. Its accuracy is
the share of held-out measured trials (leave-one-out) predicted within ±10%.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FEATURES = ("macs", "params", "dense", "conv", "separable", "pool", "input_size")


def features(model) -> dict[str, float]:
    """What the predictor sees of a model, read from its layers (no timing)."""
    counts = dict.fromkeys(FEATURES, 0.0)
    counts["params"] = float(model.count_params())
    counts["input_size"] = float(np.prod(model.input_shape[1:]))
    for layer in model.layers:
        kind = type(layer).__name__
        out = layer.output_shape if isinstance(layer.output_shape, tuple) else layer.output_shape[0]
        if kind == "Dense":
            counts["dense"] += 1
            counts["macs"] += float(layer.kernel.shape[0] * layer.kernel.shape[1])
        elif kind == "Conv2D":
            counts["conv"] += 1
            counts["macs"] += float(np.prod(out[1:3]) * np.prod(layer.kernel.shape))
        elif kind == "SeparableConv2D":
            counts["separable"] += 1
            dw, pw = layer.depthwise_kernel.shape, layer.pointwise_kernel.shape
            counts["macs"] += float(np.prod(out[1:3]) * (np.prod(dw) + np.prod(pw)))
        elif "Pooling" in kind:
            counts["pool"] += 1
    return counts


class LatencyPredictor:
    """Ridge regression from model features to measured latency (ms)."""

    def __init__(self, rows: Sequence[dict[str, float]], latencies_ms: Sequence[float]) -> None:
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        x = np.array([[r[f] for f in FEATURES] for r in rows])
        self.model = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(x, np.asarray(latencies_ms))
        self.n = len(rows)

    def predict(self, row: dict[str, float]) -> float:
        return float(self.model.predict(np.array([[row[f] for f in FEATURES]]))[0])


def held_out_accuracy(rows: Sequence[dict[str, float]], latencies_ms: Sequence[float]) -> dict | None:
    """Leave-one-out over measured trials: the share predicted within ±10%, and the median error."""
    if len(rows) < 4:
        return None
    errors = []
    for i in range(len(rows)):
        rest = [j for j in range(len(rows)) if j != i]
        model = LatencyPredictor([rows[j] for j in rest], [latencies_ms[j] for j in rest])
        errors.append(abs(model.predict(rows[i]) - latencies_ms[i]) / latencies_ms[i])
    return {
        "held_out": len(rows),
        "within_10pct": float(np.mean(np.array(errors) <= 0.10)),
        "median_relative_error": float(np.median(errors)),
        "method": "leave-one-out over measured trials (a prediction, not a measurement)",
    }
