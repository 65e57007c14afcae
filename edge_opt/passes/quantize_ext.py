"""Post-training int8 quantization outside LiteRT: ONNX Runtime (QDQ / dynamic) and OpenVINO NNCF.

Static quantization calibrates activation ranges on ``ctx.calibration`` (batch-1 rows fed
to the model's single input). The rows used and the quantizer's version are hashed into
the artifact id with the config, since they change the scales.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from edge_opt.core.artifacts import Artifact
from edge_opt.core.errors import ConfigError, UnsupportedTargetError, first_line
from edge_opt.passes.base import Pass, PassConfig, PassContext, layer_ops


def _calibration_rows(ctx: PassContext, n: int, what: str) -> np.ndarray:
    return np.asarray(ctx.need_calibration(what)[:n], dtype=np.float32)


def _batch_of_one(row: np.ndarray, dims: list[int]) -> np.ndarray:
    """One row shaped as the model's input with batch 1 (dims: non-batch dims, -1 if dynamic)."""
    return row.reshape((1, *dims)) if -1 not in dims else row[None]


class _Rows:
    """An ONNX Runtime CalibrationDataReader (it checks for ``get_next`` by duck typing)."""

    def __init__(self, name: str, dims: list[int], rows: np.ndarray) -> None:
        self._feeds = ({name: _batch_of_one(row, dims)} for row in rows)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def _onnx_input(model) -> tuple[str, list[int]]:
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise UnsupportedTargetError(f"calibration feeds one input; this model has {len(inputs)}")
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in inputs[0].type.tensor_type.shape.dim[1:]]
    return inputs[0].name, dims


def _onnx_quantized_ops(model) -> tuple[int, dict[str, int]]:
    """(QuantizeLinear nodes, op types running on int8: fed by DequantizeLinear, or integer kernels)."""
    nodes = model.graph.node
    quantize = sum(n.op_type in ("QuantizeLinear", "DynamicQuantizeLinear") for n in nodes)
    dequantized = {out for n in nodes if n.op_type == "DequantizeLinear" for out in n.output}
    ops = Counter(
        n.op_type
        for n in nodes
        if n.op_type.endswith("Integer")
        or n.op_type.startswith("QLinear")
        or (n.op_type not in ("QuantizeLinear", "DequantizeLinear") and dequantized.intersection(n.input))
    )
    return quantize, dict(sorted(ops.items()))


_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


def layer_nodes(names: list[str], layers: tuple[str, ...], where: str) -> list[str]:
    """The nodes (by name) of the Keras ``layers``; ConfigError naming a layer that has none."""
    missing = [layer for layer in layers if not layer_ops(names, layer)]
    if missing:
        raise ConfigError(
            f"{where}: {', '.join(repr(m) for m in missing)}: no node of the model is that layer's "
            "(give the names of Keras layers that compute something: Dense, Conv2D, ...)"
        )
    return [name for layer in layers for name in layer_ops(names, layer)]


def _extended(layers: tuple[str, ...], more: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*layers, *more)))


class OrtQuantizeConfig(PassConfig):
    mode: Literal["static", "dynamic"] = "static"
    per_channel: bool = False
    calibrate_method: Literal["minmax", "entropy", "percentile"] = "minmax"  # static only
    calibration_samples: int = Field(default=256, ge=1, le=1_000_000)  # static only
    exclude: tuple[str, ...] = ()  # Keras layers left in float (their nodes: nodes_to_exclude)


class OrtQuantizePass(Pass):
    name = "ort_quantize"
    Config = OrtQuantizeConfig
    inputs = ("onnx",)
    output = "onnx"
    description = "ONNX Runtime post-training int8: static QDQ (calibrated MinMax/Entropy/Percentile) or dynamic"
    uses = ("calibration",)  # static mode

    def calibration_rows(self, cfg: OrtQuantizeConfig) -> int:
        return cfg.calibration_samples if cfg.mode == "static" else 0

    def precision(self, cfg: OrtQuantizeConfig) -> str:
        if cfg.exclude:
            return "mixed"
        return "int8" if cfg.mode == "static" else "int8-dynamic"

    def label(self, cfg: OrtQuantizeConfig) -> str:
        label = "ort-int8" if cfg.mode == "static" else "ort-int8-dynamic"
        return label + (f"-float{len(cfg.exclude)}" if cfg.exclude else "")

    def fallback(self, cfg: OrtQuantizeConfig, layers: tuple[str, ...]) -> OrtQuantizeConfig:
        return self.config({**cfg.model_dump(), "exclude": _extended(cfg.exclude, layers)})

    def relaxations(self, cfg: OrtQuantizeConfig) -> list[OrtQuantizeConfig]:
        keep = cfg.model_dump(exclude={"mode", "exclude"})
        return [self.config({**keep, "mode": "dynamic"})] if cfg.mode == "static" else []

    def check(self, artifact: Artifact, cfg: OrtQuantizeConfig, ctx: PassContext) -> None:
        if cfg.mode == "static":
            _calibration_rows(ctx, cfg.calibration_samples, "static ONNX Runtime quantization")

    def build(self, parent: Artifact, cfg: OrtQuantizeConfig, model_path: Path, ctx: PassContext, notes: dict) -> None:
        import onnx
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_dynamic,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process

        with tempfile.TemporaryDirectory(prefix="edge-opt-ortq-") as tmp:
            # Shape inference + graph optimization (MatMul+Add -> Gemm) lets more ops be
            # quantized. Symbolic inference needs sympy and only matters for symbolic dims
            # inside the graph, so plain ONNX shape inference is used.
            source = Path(tmp) / "pre.onnx"
            try:
                quant_pre_process(str(parent.model_path), str(source), skip_symbolic_shape=True)
                notes["preprocessed"] = True
            except Exception as exc:  # a graph it cannot optimize is still quantizable as is
                source = parent.model_path
                notes["preprocessed"] = f"skipped: {first_line(exc)}"
            graph = onnx.load(str(source))
            excluded = layer_nodes([n.name for n in graph.graph.node], cfg.exclude, "pass 'ort_quantize': exclude")
            if cfg.exclude:
                notes["float_layers"], notes["excluded_nodes"] = list(cfg.exclude), excluded
            if cfg.mode == "static":
                calib = _calibration_rows(ctx, cfg.calibration_samples, "static ONNX Runtime quantization")
                name, dims = _onnx_input(graph)
                quantize_static(
                    str(source),
                    str(model_path),
                    _Rows(name, dims, calib),
                    quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    per_channel=cfg.per_channel,
                    calibrate_method=getattr(CalibrationMethod, _METHODS[cfg.calibrate_method]),
                    nodes_to_exclude=excluded,
                )
                notes["calibration"] = {"rows": len(calib), "source": ctx.calibration_source}
            else:
                quantize_dynamic(
                    str(source),
                    str(model_path),
                    weight_type=QuantType.QInt8,
                    per_channel=cfg.per_channel,
                    nodes_to_exclude=excluded,
                )
        count, ops = _onnx_quantized_ops(onnx.load(str(model_path)))
        if not ops:
            raise UnsupportedTargetError("ONNX Runtime found no op to quantize in this model")
        notes["quantize_nodes"] = count
        notes["quantized_ops"] = ops


class NNCFConfig(PassConfig):
    preset: Literal["performance", "mixed"] = "performance"  # symmetric / asymmetric activations
    subset_size: int = Field(default=256, ge=1, le=1_000_000)  # calibration rows used
    ignored: tuple[str, ...] = ()  # Keras layers left in float (NNCF's ignored_scope)


class NNCFQuantizePass(Pass):
    name = "nncf"
    Config = NNCFConfig
    inputs = ("openvino", "onnx")
    output = "openvino"
    description = "OpenVINO NNCF post-training int8 quantization (calibrated), → OpenVINO IR"
    uses = ("calibration",)

    def calibration_rows(self, cfg: NNCFConfig) -> int:
        return cfg.subset_size

    def precision(self, cfg: NNCFConfig) -> str:
        return "mixed" if cfg.ignored else "int8"

    def label(self, cfg: NNCFConfig) -> str:
        return "nncf-int8" + (f"-float{len(cfg.ignored)}" if cfg.ignored else "")

    def fallback(self, cfg: NNCFConfig, layers: tuple[str, ...]) -> NNCFConfig:
        return self.config({**cfg.model_dump(), "ignored": _extended(cfg.ignored, layers)})

    def check(self, artifact: Artifact, cfg: NNCFConfig, ctx: PassContext) -> None:
        _calibration_rows(ctx, cfg.subset_size, "NNCF quantization")

    def build(self, parent: Artifact, cfg: NNCFConfig, model_path: Path, ctx: PassContext, notes: dict) -> None:
        calib = _calibration_rows(ctx, cfg.subset_size, "NNCF quantization")
        try:
            import nncf
        except ImportError:
            raise UnsupportedTargetError("nncf is not installed: pip install nncf") from None
        import openvino as ov

        model = ov.Core().read_model(str(parent.model_path))  # .xml or .onnx
        if len(model.inputs) != 1:
            raise UnsupportedTargetError(f"calibration feeds one input; this model has {len(model.inputs)}")
        shape = model.inputs[0].get_partial_shape()
        dims = [d.get_length() if d.is_static else -1 for d in list(shape)[1:]]
        names = [op.get_friendly_name() for op in model.get_ops()]
        ignored = layer_nodes(names, cfg.ignored, "pass 'nncf': ignored")
        if cfg.ignored:
            notes["float_layers"], notes["ignored_nodes"] = list(cfg.ignored), ignored
        quantized = nncf.quantize(
            model,
            nncf.Dataset(list(calib), lambda row: _batch_of_one(row, dims)),
            preset=nncf.QuantizationPreset(cfg.preset),
            subset_size=len(calib),
            ignored_scope=nncf.IgnoredScope(names=ignored, validate=False) if ignored else None,
        )
        fq = [op for op in quantized.get_ops() if op.get_type_name() == "FakeQuantize"]
        if not fq:
            raise UnsupportedTargetError("NNCF found no op to quantize in this model")
        consumers = Counter(t.get_node().get_type_name() for op in fq for t in op.output(0).get_target_inputs())
        notes["calibration"] = {"rows": len(calib), "source": ctx.calibration_source}
        notes["fake_quantize_nodes"] = len(fq)
        notes["quantized_ops"] = dict(sorted(consumers.items()))
        ov.save_model(quantized, str(model_path), compress_to_fp16=False)
