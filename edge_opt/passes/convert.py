"""Format conversions: Keras → LiteRT, Keras → ONNX, ONNX → OpenVINO IR."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from edge_opt.core.artifacts import Artifact
from edge_opt.core.errors import ConfigError
from edge_opt.core.fileio import comma_free
from edge_opt.core.tfkeras import tf
from edge_opt.models import load_keras
from edge_opt.passes.base import Pass, PassConfig, PassContext, layer_ops
from edge_opt.runtimes.litert_ops import OneOpModels

#: Precisions calibrated on rows: every activation quantized (int8, or int16 with int8 weights).
FULL_INTEGER = ("int8", "int16x8")


class TFLiteConfig(PassConfig):
    precision: Literal["fp32", "fp16", "dynamic", "int8", "int16x8"] = "fp32"
    io: Literal["float", "int8"] = "float"  # int8 I/O only with full-integer precision
    calibration_samples: int = Field(default=256, ge=1, le=1_000_000)
    # Per-channel weight scales (TensorFlow's default) cost ~12 bytes per output channel
    # in the file; per-tensor scales make small models smaller, sometimes at some accuracy.
    per_channel: bool = True
    # Keras layers left in float in a full-integer file (a mixed-precision file): TF's
    # QuantizationDebugger's denylisted nodes, its selective quantization.
    float_layers: tuple[str, ...] = ()
    # Drop the file's tensor names, subgraph name and signatures (TF's flatbuffer_utils.strip_strings):
    # about 1 KB less, but `debug` can no longer name the layers in it.
    strip_names: bool = False

    @model_validator(mode="after")
    def _io_needs_int8(self):
        if self.io == "int8" and self.precision != "int8":
            raise ValueError("io: int8 needs precision: int8")
        if self.float_layers and self.precision not in FULL_INTEGER:
            raise ValueError(f"float_layers needs a full-integer precision ({', '.join(FULL_INTEGER)})")
        return self


class TFLitePass(Pass):
    name = "tflite"
    Config = TFLiteConfig
    inputs = ("keras",)
    output = "tflite"
    description = "Keras → LiteRT flatbuffer: fp32, fp16, dynamic-range or full-integer int8 (float or int8 I/O)"
    uses = ("calibration",)  # full-integer int8 is calibrated on it

    def calibration_rows(self, cfg: TFLiteConfig) -> int:
        return cfg.calibration_samples if cfg.precision in FULL_INTEGER else 0

    def precision(self, cfg: TFLiteConfig) -> str:
        if cfg.float_layers:
            return "mixed"
        return {"dynamic": "int8-dynamic"}.get(cfg.precision, cfg.precision)

    def label(self, cfg: TFLiteConfig) -> str:
        label = f"tflite-{cfg.precision}" + ("-int8io" if cfg.io == "int8" else "")
        label += f"-float{len(cfg.float_layers)}" if cfg.float_layers else ""
        label += "" if cfg.per_channel or cfg.precision not in ("int8", "dynamic") else "-pertensor"
        return label + ("-stripped" if cfg.strip_names else "")

    def check(self, artifact: Artifact, cfg: TFLiteConfig, ctx: PassContext) -> None:
        if cfg.precision in FULL_INTEGER:
            ctx.need_calibration(f"full-integer {cfg.precision}")

    def fallback(self, cfg: TFLiteConfig, layers: tuple[str, ...]) -> TFLiteConfig | None:
        if cfg.precision not in FULL_INTEGER:
            return None
        return self.config({**cfg.model_dump(), "float_layers": tuple(dict.fromkeys((*cfg.float_layers, *layers)))})

    def relaxations(self, cfg: TFLiteConfig) -> list[TFLiteConfig]:
        gentler = {"int8": ("int16x8", "dynamic"), "int16x8": ("dynamic",)}.get(cfg.precision, ())
        keep = cfg.model_dump(exclude={"precision", "io", "float_layers"})
        return [self.config({**keep, "precision": p}) for p in gentler]

    def build(self, parent: Artifact, cfg: TFLiteConfig, model_path: Path, ctx: PassContext, notes: dict) -> None:
        model = load_keras(parent.model_path, trust=ctx.trust_model)
        calib = None
        if cfg.precision in FULL_INTEGER:
            calib = np.asarray(ctx.calibration[: cfg.calibration_samples], dtype=np.float32)
            notes["calibration"] = {"rows": len(calib), "source": ctx.calibration_source}
        if cfg.float_layers:
            notes["float_layers"] = list(cfg.float_layers)
        data = tflite_bytes(model, cfg, calib)
        model_path.write_bytes(_stripped(data) if cfg.strip_names else data)


def _stripped(data: bytes) -> bytes:
    """The flatbuffer without its tensor names, subgraph name and signatures (TF's ``strip_strings``)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    flatbuffer_utils.strip_strings(model)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def tflite_bytes(model, cfg: TFLiteConfig = TFLiteConfig(), calibration: np.ndarray | None = None) -> bytes:
    """A Keras model as a LiteRT flatbuffer, as the ``tflite`` pass converts it (``cfg``; int8 is
    calibrated on ``calibration``). The one TFLite conversion: the pass and the debugger's float
    reference use it."""
    tf_ = tf()
    converter = tf_.lite.TFLiteConverter.from_keras_model(model)
    if cfg.precision != "fp32":
        converter.optimizations = [tf_.lite.Optimize.DEFAULT]
        # No public switch exists; TF's own tests use this converter attribute.
        converter._experimental_disable_per_channel = not cfg.per_channel
    if cfg.precision == "fp16":
        converter.target_spec.supported_types = [tf_.float16]
    if cfg.precision in FULL_INTEGER:
        ops = tf_.lite.OpsSet
        converter.representative_dataset = lambda: ([row[None, ...]] for row in calibration)
        integer = getattr(ops, "TFLITE_BUILTINS_INT8" if cfg.precision == "int8" else _INT16X8)
        converter.target_spec.supported_ops = [integer, *([ops.TFLITE_BUILTINS] if cfg.float_layers else [])]
        if cfg.io == "int8":
            converter.inference_input_type = tf_.int8
            converter.inference_output_type = tf_.int8
    if cfg.float_layers:
        return _selective(converter, tflite_bytes(model), cfg, calibration)
    return converter.convert()


_INT16X8 = "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8"


def _selective(converter, float_file: bytes, cfg: TFLiteConfig, calibration: np.ndarray) -> bytes:
    """The full-integer file with ``cfg.float_layers``' ops left in float: TF's
    ``QuantizationDebugger`` with those ops' output tensors as its denylisted nodes."""
    cut = OneOpModels(float_file)
    names = [cut.describe(i)[1] for i in range(len(cut.ops))]
    nodes = [name for layer in cfg.float_layers for name in layer_ops(names, layer)]
    missing = [layer for layer in cfg.float_layers if not layer_ops(names, layer)]
    if missing:
        raise ConfigError(
            f"pass 'tflite': float_layers {', '.join(repr(m) for m in missing)}: no op of the model is that layer's "
            "(give the names of Keras layers that compute something: Dense, Conv2D, ...)"
        )
    lite = tf().lite.experimental
    debugger = lite.QuantizationDebugger(
        converter=converter,
        debug_dataset=lambda: ([row[None, ...]] for row in calibration),
        debug_options=lite.QuantizationDebugOptions(denylisted_nodes=nodes, fully_quantize=cfg.io == "int8"),
    )
    return debugger.get_nondebug_quantized_model()


class OnnxConfig(PassConfig):
    opset: int = Field(default=17, ge=9, le=21)


class OnnxPass(Pass):
    name = "onnx"
    Config = OnnxConfig
    inputs = ("keras",)
    output = "onnx"
    description = "Keras → ONNX with tf2onnx"

    def label(self, cfg: OnnxConfig) -> str:
        return "onnx-fp32"

    def build(self, parent: Artifact, cfg: OnnxConfig, model_path: Path, ctx: PassContext, notes: dict) -> None:
        model = load_keras(parent.model_path, trust=ctx.trust_model)
        model_path.write_bytes(onnx_bytes(model, cfg))


def onnx_bytes(model, cfg: OnnxConfig = OnnxConfig()) -> bytes:
    """A Keras model as ONNX, as the ``onnx`` pass converts it (tf2onnx; inputs ``input_<i>`` with a
    dynamic batch). The one ONNX conversion: the pass and the debugger's float reference use it."""
    import tf2onnx

    spec = tuple(tf().TensorSpec((None, *t.shape[1:]), t.dtype, name=f"input_{i}") for i, t in enumerate(model.inputs))
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=cfg.opset)
    return proto.SerializeToString()


class OpenVINOConfig(PassConfig):
    compress_to_fp16: bool = False


class OpenVINOPass(Pass):
    name = "openvino"
    Config = OpenVINOConfig
    inputs = ("onnx",)
    output = "openvino"
    description = "ONNX → OpenVINO IR (.xml + .bin), fp32 or fp16"

    def precision(self, cfg: OpenVINOConfig) -> str:
        return "fp16" if cfg.compress_to_fp16 else "fp32"

    def label(self, cfg: OpenVINOConfig) -> str:
        return f"openvino-{self.precision(cfg)}"

    def build(self, parent: Artifact, cfg: OpenVINOConfig, model_path: Path, ctx: PassContext, notes: dict) -> None:
        import openvino as ov

        with comma_free(parent.model_path) as source:
            model = ov.convert_model(source)
        ov.save_model(model, str(model_path), compress_to_fp16=cfg.compress_to_fp16)
