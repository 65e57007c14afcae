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

``bias_correct`` (the same paper's second half) then takes out the mean error int8 weights add:
each layer's bias minus ``(W_q - W) E[x]``, with ``E[x]`` the layer's mean input on calibration
rows. The float model's outputs move by that amount so that the quantized file's do not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from edge_opt.core.artifacts import Artifact
from edge_opt.core.errors import UnsupportedTargetError
from edge_opt.core.tfkeras import keras
from edge_opt.models import load_keras
from edge_opt.passes.base import Pass, PassConfig, PassContext
from edge_opt.passes.keras_graph import Pair, equalizable_pairs, is_kernel_layer


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


class BiasCorrectConfig(PassConfig):
    # The weight quantization the file will get: symmetric int8, per output channel (TFLite's and
    # NNCF's default) or per tensor.
    per_channel: bool = True
    calibration_samples: int = Field(default=256, ge=1, le=1_000_000)


def quantized(kernel: np.ndarray, per_channel: bool) -> np.ndarray:
    """``kernel`` through symmetric int8 (scale = max |w| / 127, per output channel or per tensor)."""
    top = _out_range(kernel) if per_channel else np.abs(kernel).max(keepdims=True)
    scale = np.where(top > 0, top / 127.0, 1.0)
    return np.clip(np.round(kernel / scale), -127, 127) * scale


def bias_shift(kernel: np.ndarray, input_mean: np.ndarray, per_channel: bool) -> np.ndarray:
    """The mean change of each output channel that quantizing ``kernel`` causes, given the mean of
    each input channel (a convolution's border ignored): ``(W_q - W)`` applied to ``E[x]``."""
    error = quantized(kernel, per_channel) - kernel
    return np.tensordot(input_mean, error.reshape(-1, error.shape[-2], error.shape[-1]).sum(axis=0), axes=1)


class BiasCorrectPass(Pass):
    name = "bias_correct"
    Config = BiasCorrectConfig
    inputs = ("keras",)
    output = "keras"
    description = (
        "Empirical bias correction (Nagel et al. 2019): each Dense/Conv2D bias minus the mean output shift "
        "its int8 weights will cause, from the layer's mean input on calibration rows"
    )
    uses = ("calibration",)

    def label(self, cfg: BiasCorrectConfig) -> str:
        return "bias-corrected" + ("" if cfg.per_channel else "-pertensor")

    def calibration_rows(self, cfg: BiasCorrectConfig) -> int:
        return cfg.calibration_samples

    def check(self, artifact: Artifact, cfg: BiasCorrectConfig, ctx: PassContext) -> None:
        ctx.need_calibration("bias correction")

    def build(self, parent: Artifact, cfg: BiasCorrectConfig, model_path: Path, ctx: PassContext, notes: dict) -> None:
        model = load_keras(parent.model_path, trust=ctx.trust_model)
        layers = [layer for layer in model.layers if is_kernel_layer(layer) and getattr(layer, "use_bias", False)]
        if not layers:
            raise UnsupportedTargetError(f"pass 'bias_correct': model {parent.id} has no Dense or Conv2D with a bias")
        rows = np.asarray(ctx.calibration[: cfg.calibration_samples], dtype=np.float32)
        probe = keras().Model(model.inputs, [layer.input for layer in layers])
        inputs = probe.predict(rows, batch_size=256, verbose=0)
        inputs = inputs if isinstance(inputs, list) else [inputs]
        shifts = {}
        for layer, x in zip(layers, inputs, strict=True):
            kernel, bias = layer.get_weights()[:2]
            mean = x.reshape(-1, x.shape[-1]).mean(axis=0)  # per input channel (over rows and positions)
            shift = bias_shift(kernel, mean, cfg.per_channel)
            layer.set_weights([kernel, bias - shift, *layer.get_weights()[2:]])
            shifts[layer.name] = round(float(np.abs(shift).max()), 6)
        notes["largest_shift"] = shifts
        notes["calibration"] = {"rows": len(rows), "source": ctx.calibration_source}
        model.save(str(model_path))
