"""A third-party pass (``tests.plugins.passes:RoundOnnxWeightsPass``), named in a profile by its
module:Class: it rounds an ONNX model's float weights. It has to pass the same conformance
suite as the built-in passes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from edge_opt.core.artifacts import Artifact
from edge_opt.passes.base import Pass, PassConfig, PassContext


class RoundConfig(PassConfig):
    decimals: int = Field(default=3, ge=0, le=8)


class RoundOnnxWeightsPass(Pass):
    name = "round_onnx_weights"
    Config = RoundConfig
    inputs = ("onnx",)
    output = "onnx"
    description = "Round every float initializer of an ONNX model to `decimals` decimals"

    def label(self, cfg: RoundConfig) -> str:
        return f"round-{cfg.decimals}"

    def build(self, parent: Artifact, cfg: RoundConfig, model_path: Path, ctx: PassContext, notes: dict) -> None:
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(parent.model_path))
        rounded = 0
        for init in model.graph.initializer:
            arr = numpy_helper.to_array(init)
            if arr.dtype.kind == "f":
                init.CopyFrom(numpy_helper.from_array(np.round(arr, cfg.decimals).astype(arr.dtype), init.name))
                rounded += 1
        notes["rounded_initializers"] = rounded
        onnx.save(model, str(model_path))


class BrokenPass(Pass):
    """A pass that fails when applied, as a converter can on a model it does not handle: its pipeline
    fails and the others go on (``tests.plugins.passes:BrokenPass``)."""

    name = "broken"
    Config = PassConfig
    inputs = ("keras",)
    output = "tflite"
    description = "Fail when applied (a converter that gives up)"

    def label(self, cfg: PassConfig) -> str:
        return "broken"

    def build(self, parent: Artifact, cfg: PassConfig, model_path: Path, ctx: PassContext, notes: dict) -> None:
        raise RuntimeError("the converter gave up on this model")
