"""The search's latency predictors (issue 21, 5): per-op-type times learned from op profiles."""

from __future__ import annotations

import numpy as np
import pytest

from edge_opt.nas.predictor import (
    KINDS,
    LatencyPredictor,
    OpTypePredictor,
    fit_predictor,
    held_out_accuracy,
    op_kind,
    split_by_kind,
)


@pytest.mark.parametrize(
    ("op_type", "kind"),
    [
        ("FULLY_CONNECTED", "dense"),
        ("MatMul", "dense"),
        ("FusedGemm", "dense"),
        ("DynamicQuantizeMatMul", "dense"),
        ("FullyConnected", "dense"),
        ("CONV_2D", "conv"),
        ("QLinearConv", "conv"),
        ("Convolution", "conv"),
        ("DEPTHWISE_CONV_2D", "depthwise"),
        ("GroupConvolution", "depthwise"),
        ("MAX_POOL_2D", "pool"),
        ("MaxPool", "pool"),
        ("Convert", "other"),
        ("LOGISTIC", "other"),
        ("QUANTIZE", "other"),
    ],
)
def test_each_runtimes_op_types_map_to_the_kind_they_compute(op_type, kind):
    assert op_kind(op_type) == kind


def _rows(n: int, rng) -> list[dict[str, float]]:
    rows = []
    for _ in range(n):
        row = {f: 0.0 for f in ("macs", "params", "dense", "conv", "separable", "pool", "input_size")}
        for k in KINDS:
            row[f"op_{k}"] = float(rng.integers(0, 4))
        row |= {f"op_{k}_macs": row[f"op_{k}"] * float(rng.integers(100, 5000)) for k in ("dense", "conv", "depthwise")}
        row |= {"op_pool_elems": row["op_pool"] * 256.0, "act_elems": float(rng.integers(0, 500))}
        row |= {"op_layers": sum(row[f"op_{k}"] for k in KINDS), "input_size": 64.0}
        row["macs"] = sum(row[f"op_{k}_macs"] for k in ("dense", "conv", "depthwise"))
        rows.append(row)
    return rows


def _split(row: dict[str, float]) -> dict[str, float]:
    """A device whose ops cost: dense 1 µs + 1 ns/MAC, conv 2 µs + 3 ns/MAC, depthwise 4 ns/MAC,
    pooling 0.5 µs, the rest 5 µs + 2 ns per activated element."""
    return {
        "dense": 1e-3 * row["op_dense"] + 1e-6 * row["op_dense_macs"],
        "conv": 2e-3 * row["op_conv"] + 3e-6 * row["op_conv_macs"],
        "depthwise": 4e-6 * row["op_depthwise_macs"],
        "pool": 5e-4 * row["op_pool"],
        "other": 5e-3 + 2e-6 * row["act_elems"],
    }


def test_the_per_op_type_predictor_learns_each_kinds_cost_and_sums_them():
    rng = np.random.default_rng(0)
    rows = _rows(30, rng)
    split = [_split(r) for r in rows]
    p50s = [sum(s.values()) for s in split]
    predictor = fit_predictor(rows[:20], p50s[:20], split[:20])
    assert isinstance(predictor, OpTypePredictor)
    for row, want in zip(rows[20:], p50s[20:], strict=True):
        assert predictor.predict(row) == pytest.approx(want, rel=1e-3)
    scored = held_out_accuracy(rows, p50s, split, OpTypePredictor)
    assert scored["predictor"] == "per-op-type" and scored["within_10pct"] == 1.0
    # without a profile for every trial, the whole-model predictor is the one fitted
    assert isinstance(fit_predictor(rows[:20], p50s[:20], [*split[:19], None]), LatencyPredictor)
    assert held_out_accuracy(rows, p50s)["predictor"] == "whole-model"
    # where the per-op split explains nothing (noise), the whole-model predictor holds better and is used
    noise = [dict.fromkeys(s, 0.0) | {"other": float(x)} for s, x in zip(split, rng.uniform(0.001, 1, 30), strict=True)]
    assert isinstance(fit_predictor(rows, p50s, noise), LatencyPredictor)


def test_a_record_without_a_profile_has_no_split():
    assert split_by_kind(None) is None
    assert split_by_kind({"ops": None, "latency_ms": {"p50": 1.0}}) is None
    ops = [{"type": "FULLY_CONNECTED", "share": 0.75}, {"type": "LOGISTIC", "share": 0.25}]
    split = split_by_kind({"ops": ops, "latency_ms": {"p50": 2.0}})
    assert split == {"dense": 1.5, "conv": 0.0, "depthwise": 0.0, "pool": 0.0, "other": 0.5}
