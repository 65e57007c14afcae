"""Cross-layer equalization (Nagel et al., "Data-Free Quantization Through Weight Equalization and
Bias Correction", ICCV 2019; Qualcomm AIMET's CLE): Keras → Keras, the float function unchanged.

For two kernel layers joined by a ReLU (or another pass-through layer, see :mod:`.keras_graph`),
channel ``i`` between them is divided by ``s_i`` in the first (its kernel's output channel and
its bias) and multiplied by ``s_i`` in the second (its kernel's input channel). With
``s_i = sqrt(r1_i / r2_i)`` (``r1_i``: the largest weight of the first layer's output channel,
``r2_i``: of the second layer's input channel), both ranges become ``sqrt(r1_i r2_i)``: one
channel can no longer dwarf the others, so per-tensor int8 scales of the weights and of the
activation between them fit every channel. Chains of more than two layers are swept until the
scales settle. No data is read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from edge_opt.core.artifacts import Artifact
from edge_opt.core.errors import UnsupportedTargetError
from edge_opt.models import load_keras
from edge_opt.passes.base import Pass, PassConfig, PassContext
from edge_opt.passes.keras_graph import Pair, equalizable_pairs


class EqualizeConfig(PassConfig):
    sweeps: int = Field(default=20, ge=1, le=1000)  # passes over all pairs; stops early when settled


def _out_range(kernel: np.ndarray) -> np.ndarray:
    """The largest |weight| of each output channel (the kernel's last axis)."""
    return np.abs(kernel).reshape(-1, kernel.shape[-1]).max(axis=0)


def _in_range(kernel: np.ndarray) -> np.ndarray:
    """The largest |weight| of each input channel (the kernel's second last axis)."""
    moved = np.moveaxis(np.abs(kernel), -2, -1)
    return moved.reshape(-1, moved.shape[-1]).max(axis=0)


def spread(kernel: np.ndarray) -> float:
    """The largest output channel's weight range over the median channel's: 1 when balanced."""
    r = _out_range(kernel)
    return float(r.max() / (np.median(r) or r.max() or 1.0))


def equalize_pair(pair: Pair) -> float:
    """Rescale ``pair``'s shared channels in place; the largest |log s| applied (0 when settled)."""
    first, second = pair.first.get_weights(), pair.second.get_weights()
    r1, r2 = _out_range(first[0]), _in_range(second[0])
    s = np.ones_like(r1)
    ok = (r1 > 0) & (r2 > 0)
    s[ok] = np.sqrt(r1[ok] / r2[ok])
    first[0] = first[0] / s
    if len(first) > 1:
        first[1] = first[1] / s  # the bias, so that relu(W x + b) / s = relu((W / s) x + b / s)
    shape = [1] * second[0].ndim
    shape[-2] = len(s)
    second[0] = second[0] * s.reshape(shape)
    pair.first.set_weights(first)
    pair.second.set_weights(second)
    return float(np.abs(np.log(s)).max()) if len(s) else 0.0


class EqualizePass(Pass):
    name = "equalize"
    Config = EqualizeConfig
    inputs = ("keras",)
    output = "keras"
    description = (
        "Cross-layer equalization: Dense/Conv2D channels rescaled between layers joined by a ReLU so one "
        "channel cannot dwarf the rest at int8; the float function unchanged, no data"
    )

    def label(self, cfg: EqualizeConfig) -> str:
        return "equalized"

    def build(self, parent: Artifact, cfg: EqualizeConfig, model_path: Path, ctx: PassContext, notes: dict) -> None:
        model = load_keras(parent.model_path, trust=ctx.trust_model)
        pairs = equalizable_pairs(model)
        if not pairs:
            raise UnsupportedTargetError(
                f"pass 'equalize': model {parent.id} has no two Dense or Conv2D layers joined by a ReLU "
                "(or no activation) to equalize"
            )
        before = {p.first.name: spread(p.first.get_weights()[0]) for p in pairs}
        sweeps = 0
        for sweeps in range(1, cfg.sweeps + 1):  # noqa: B007 - the count is reported
            if max(equalize_pair(p) for p in pairs) < 1e-4:
                break
        notes["pairs"] = [[p.first.name, p.second.name] for p in pairs]
        notes["sweeps"] = sweeps
        notes["channel_spread"] = {
            name: {"before": round(b, 3), "after": round(spread(model.get_layer(name).get_weights()[0]), 3)}
            for name, b in before.items()
        }
        model.save(str(model_path))
