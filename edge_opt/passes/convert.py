"""Format conversions: Keras → LiteRT, Keras → ONNX, ONNX → OpenVINO IR."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from edge_opt.artifacts import Artifact, ArtifactWriter
from edge_opt.errors import UnsupportedTargetError
from edge_opt.models import load_keras
from edge_opt.passes.base import Pass, PassConfig, PassContext


class TFLiteConfig(PassConfig):
    precision: Literal["fp32", "fp16", "dynamic", "int8"] = "fp32"
    io: Literal["float", "int8"] = "float"  # int8 I/O only with full-integer precision
    calibration_samples: int = Field(default=256, ge=1)
    # Per-channel weight scales (TensorFlow's default) cost ~12 bytes per output channel
    # in the file; per-tensor scales make small models smaller, sometimes at some accuracy.
    per_channel: bool = True

    @model_validator(mode="after")
    def _io_needs_int8(self):
        if self.io == "int8" and self.precision != "int8":
            raise ValueError("io: int8 needs precision: int8")
        return self


class TFLitePass(Pass):
    name = "tflite"
    Config = TFLiteConfig
    inputs = ("keras",)

    def run(self, artifact: Artifact, cfg: TFLiteConfig, out_dir: Path, ctx: PassContext) -> Artifact:
        label = f"tflite-{cfg.precision}" + ("-int8io" if cfg.io == "int8" else "")
        label += "" if cfg.per_channel or cfg.precision not in ("int8", "dynamic") else "-pertensor"
        precision = {"dynamic": "int8-dynamic"}.get(cfg.precision, cfg.precision)
        with ArtifactWriter(
            out_dir,
            parent=artifact,
            pass_name=self.name,
            config=cfg.model_dump(),
            target=ctx.target,
            fmt="tflite",
            precision=precision,
            model_file="model.tflite",
            label=label,
        ) as w:
            if w.existing:
                return w.existing
            from edge_opt._tf import tf

            tf_ = tf()
            model = load_keras(artifact.model_path)
            converter = tf_.lite.TFLiteConverter.from_keras_model(model)
            if cfg.precision != "fp32":
                converter.optimizations = [tf_.lite.Optimize.DEFAULT]
                # No public switch exists; TF's own tests use this converter attribute.
                converter._experimental_disable_per_channel = not cfg.per_channel
            if cfg.precision == "fp16":
                converter.target_spec.supported_types = [tf_.float16]
            if cfg.precision == "int8":
                if ctx.calibration is None:
                    raise UnsupportedTargetError("full-integer int8 needs calibration data (none was given)")
                calib = np.asarray(ctx.calibration[: cfg.calibration_samples], dtype=np.float32)
                converter.representative_dataset = lambda: ([row[None, ...]] for row in calib)
                converter.target_spec.supported_ops = [tf_.lite.OpsSet.TFLITE_BUILTINS_INT8]
                w.notes["calibration"] = {"rows": len(calib), "source": ctx.calibration_source}
                if cfg.io == "int8":
                    converter.inference_input_type = tf_.int8
                    converter.inference_output_type = tf_.int8
            (w.stage / "model.tflite").write_bytes(converter.convert())
            return w.publish()


class OnnxConfig(PassConfig):
    opset: int = Field(default=17, ge=9, le=21)


class OnnxPass(Pass):
    name = "onnx"
    Config = OnnxConfig
    inputs = ("keras",)

    def run(self, artifact: Artifact, cfg: OnnxConfig, out_dir: Path, ctx: PassContext) -> Artifact:
        with ArtifactWriter(
            out_dir,
            parent=artifact,
            pass_name=self.name,
            config=cfg.model_dump(),
            target=ctx.target,
            fmt="onnx",
            precision="fp32",
            model_file="model.onnx",
            label="onnx-fp32",
        ) as w:
            if w.existing:
                return w.existing
            from edge_opt._tf import tf

            model = load_keras(artifact.model_path)
            import tf2onnx

            spec = tuple(
                tf().TensorSpec((None, *t.shape[1:]), t.dtype, name=f"input_{i}") for i, t in enumerate(model.inputs)
            )
            tf2onnx.convert.from_keras(
                model, input_signature=spec, opset=cfg.opset, output_path=str(w.stage / "model.onnx")
            )
            return w.publish()


class OpenVINOConfig(PassConfig):
    compress_to_fp16: bool = False


class OpenVINOPass(Pass):
    name = "openvino"
    Config = OpenVINOConfig
    inputs = ("onnx",)

    def run(self, artifact: Artifact, cfg: OpenVINOConfig, out_dir: Path, ctx: PassContext) -> Artifact:
        precision = "fp16" if cfg.compress_to_fp16 else "fp32"
        with ArtifactWriter(
            out_dir,
            parent=artifact,
            pass_name=self.name,
            config=cfg.model_dump(),
            target=ctx.target,
            fmt="openvino",
            precision=precision,
            model_file="model.xml",
            label=f"openvino-{precision}",
        ) as w:
            if w.existing:
                return w.existing
            import openvino as ov

            model = ov.convert_model(str(artifact.model_path))
            ov.save_model(model, str(w.stage / "model.xml"), compress_to_fp16=cfg.compress_to_fp16)
            return w.publish()
