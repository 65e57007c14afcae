"""Post-training int8 quantization outside LiteRT: ONNX Runtime (QDQ / dynamic) and OpenVINO NNCF.

Static quantization calibrates activation ranges on ``ctx.calibration`` (batch-1 rows fed
to the model's single input). The rows used and the quantizer's version are hashed into
the artifact id with the config, since they change the scales.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from edge_opt.artifacts import Artifact, ArtifactWriter
from edge_opt.errors import UnsupportedTargetError, first_line
from edge_opt.passes.base import Pass, PassConfig, PassContext


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def _identity(cfg: PassConfig, calib: np.ndarray | None, tool: str, ctx: PassContext) -> dict[str, Any]:
    ident = {**cfg.model_dump(), tool: _version(tool)}
    if calib is not None:
        digest = hashlib.sha256(np.ascontiguousarray(calib).tobytes()).hexdigest()[:16]
        ident["calibration"] = f"{ctx.calibration_source}:{len(calib)}:{digest}"
    return ident


def _calibration_rows(ctx: PassContext, n: int, what: str) -> np.ndarray:
    if ctx.calibration is None:
        raise UnsupportedTargetError(f"{what} needs calibration data (none was given)")
    return np.asarray(ctx.calibration[:n], dtype=np.float32)


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


class OrtQuantizeConfig(PassConfig):
    mode: Literal["static", "dynamic"] = "static"
    per_channel: bool = False
    calibrate_method: Literal["minmax", "entropy", "percentile"] = "minmax"  # static only
    calibration_samples: int = Field(default=256, ge=1)  # static only


class OrtQuantizePass(Pass):
    name = "ort_quantize"
    Config = OrtQuantizeConfig
    inputs = ("onnx",)

    def run(self, artifact: Artifact, cfg: OrtQuantizeConfig, out_dir: Path, ctx: PassContext) -> Artifact:
        static = cfg.mode == "static"
        calib = _calibration_rows(ctx, cfg.calibration_samples, "static ONNX Runtime quantization") if static else None
        with ArtifactWriter(
            out_dir,
            parent=artifact,
            pass_name=self.name,
            config=_identity(cfg, calib, "onnxruntime", ctx),
            target=ctx.target,
            fmt="onnx",
            precision="int8" if static else "int8-dynamic",
            model_file="model.onnx",
            label="ort-int8" if static else "ort-int8-dynamic",
        ) as w:
            if w.existing:
                return w.existing
            import onnx
            from onnxruntime.quantization import (
                CalibrationMethod,
                QuantFormat,
                QuantType,
                quantize_dynamic,
                quantize_static,
            )
            from onnxruntime.quantization.shape_inference import quant_pre_process

            out = w.stage / "model.onnx"
            with tempfile.TemporaryDirectory(prefix="edge-opt-ortq-") as tmp:
                # Shape inference + graph optimization (MatMul+Add -> Gemm) lets more ops be
                # quantized. Symbolic inference needs sympy and only matters for symbolic dims
                # inside the graph, so plain ONNX shape inference is used.
                source = Path(tmp) / "pre.onnx"
                try:
                    quant_pre_process(str(artifact.model_path), str(source), skip_symbolic_shape=True)
                    w.notes["preprocessed"] = True
                except Exception as exc:  # a graph it cannot optimize is still quantizable as is
                    source = artifact.model_path
                    w.notes["preprocessed"] = f"skipped: {first_line(exc)}"
                if static:
                    name, dims = _onnx_input(onnx.load(str(source)))
                    quantize_static(
                        str(source),
                        str(out),
                        _Rows(name, dims, calib),
                        quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8,
                        per_channel=cfg.per_channel,
                        calibrate_method=getattr(CalibrationMethod, _METHODS[cfg.calibrate_method]),
                    )
                    w.notes["calibration"] = {"rows": len(calib), "source": ctx.calibration_source}
                else:
                    quantize_dynamic(str(source), str(out), weight_type=QuantType.QInt8, per_channel=cfg.per_channel)
            count, ops = _onnx_quantized_ops(onnx.load(str(out)))
            if not ops:
                raise UnsupportedTargetError("ONNX Runtime found no op to quantize in this model")
            w.notes["quantize_nodes"] = count
            w.notes["quantized_ops"] = ops
            return w.publish()


class NNCFConfig(PassConfig):
    preset: Literal["performance", "mixed"] = "performance"  # symmetric / asymmetric activations
    subset_size: int = Field(default=256, ge=1)  # calibration rows used


class NNCFQuantizePass(Pass):
    name = "nncf"
    Config = NNCFConfig
    inputs = ("openvino", "onnx")

    def run(self, artifact: Artifact, cfg: NNCFConfig, out_dir: Path, ctx: PassContext) -> Artifact:
        calib = _calibration_rows(ctx, cfg.subset_size, "NNCF quantization")
        with ArtifactWriter(
            out_dir,
            parent=artifact,
            pass_name=self.name,
            config=_identity(cfg, calib, "nncf", ctx),
            target=ctx.target,
            fmt="openvino",
            precision="int8",
            model_file="model.xml",
            label="nncf-int8",
        ) as w:
            if w.existing:
                return w.existing
            try:
                import nncf
            except ImportError:
                raise UnsupportedTargetError("nncf is not installed: pip install nncf") from None
            import openvino as ov

            model = ov.Core().read_model(str(artifact.model_path))  # .xml or .onnx
            if len(model.inputs) != 1:
                raise UnsupportedTargetError(f"calibration feeds one input; this model has {len(model.inputs)}")
            shape = model.inputs[0].get_partial_shape()
            dims = [d.get_length() if d.is_static else -1 for d in list(shape)[1:]]
            quantized = nncf.quantize(
                model,
                nncf.Dataset(list(calib), lambda row: _batch_of_one(row, dims)),
                preset=nncf.QuantizationPreset(cfg.preset),
                subset_size=len(calib),
            )
            fq = [op for op in quantized.get_ops() if op.get_type_name() == "FakeQuantize"]
            if not fq:
                raise UnsupportedTargetError("NNCF found no op to quantize in this model")
            consumers = Counter(t.get_node().get_type_name() for op in fq for t in op.output(0).get_target_inputs())
            w.notes["calibration"] = {"rows": len(calib), "source": ctx.calibration_source}
            w.notes["fake_quantize_nodes"] = len(fq)
            w.notes["quantized_ops"] = dict(sorted(consumers.items()))
            ov.save_model(quantized, str(w.stage / "model.xml"), compress_to_fp16=False)
            return w.publish()
