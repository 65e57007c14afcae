"""Passes turn one artifact into another. Registered by name; modules imported lazily.

The registry's metadata (input formats, output format, the targets it serves, a one-line
description) is readable without importing a pass module, so config validation and
``supports`` checks stay cheap.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from edge_opt.errors import ConfigError
from edge_opt.passes.base import Pass, PassContext


@dataclass(frozen=True)
class PassInfo:
    target: str  # module:Class
    inputs: tuple[str, ...]
    output: str
    description: str
    targets: tuple[str, ...] | None = None  # target profiles it serves; None: any


REGISTRY: dict[str, PassInfo] = {
    "tflite": PassInfo(
        "edge_opt.passes.convert:TFLitePass",
        ("keras",),
        "tflite",
        "Keras → LiteRT flatbuffer: fp32, fp16, dynamic-range or full-integer int8 (float or int8 I/O)",
    ),
    "onnx": PassInfo("edge_opt.passes.convert:OnnxPass", ("keras",), "onnx", "Keras → ONNX with tf2onnx"),
    "openvino": PassInfo(
        "edge_opt.passes.convert:OpenVINOPass", ("onnx",), "openvino", "ONNX → OpenVINO IR (.xml + .bin), fp32 or fp16"
    ),
    "ort_quantize": PassInfo(
        "edge_opt.passes.quantize_ext:OrtQuantizePass",
        ("onnx",),
        "onnx",
        "ONNX Runtime post-training int8: static QDQ (calibrated MinMax/Entropy/Percentile) or dynamic",
    ),
    "nncf": PassInfo(
        "edge_opt.passes.quantize_ext:NNCFQuantizePass",
        ("openvino", "onnx"),
        "openvino",
        "OpenVINO NNCF post-training int8 quantization (calibrated), → OpenVINO IR",
    ),
    "prune": PassInfo(
        "edge_opt.passes.tfmot:PrunePass",
        ("keras",),
        "keras",
        "Magnitude pruning (tfmot, polynomial ramp to target_sparsity) with a fine-tune; needs training data",
    ),
    "cluster": PassInfo(
        "edge_opt.passes.tfmot:ClusterPass",
        ("keras",),
        "keras",
        "Weight clustering (tfmot, number_of_clusters shared values per kernel) with a fine-tune; needs training data",
    ),
    "qat": PassInfo(
        "edge_opt.passes.tfmot:QATPass",
        ("keras",),
        "tflite",
        "Quantization-aware training (tfmot 8-bit, optionally pruning- or cluster-preserving) → int8 LiteRT",
    ),
    "distill": PassInfo(
        "edge_opt.passes.distill:DistillPass",
        ("keras",),
        "keras",
        "Knowledge distillation: a smaller student trained from the teacher's softened logits; needs training data",
    ),
    "pca": PassInfo(
        "edge_opt.passes.reduce:PCAPass",
        ("keras",),
        "keras",
        "PCA fitted on the train split, folded into the graph as a frozen Dense; the MLP head retrained",
    ),
    "select_features": PassInfo(
        "edge_opt.passes.reduce:FeatureSelectPass",
        ("keras",),
        "keras",
        "Drop features (by name, least permutation-important, or correlated) via a frozen 0/1 Dense; head retrained",
    ),
    "ica": PassInfo(
        "edge_opt.passes.reduce:ICAPass",
        ("keras",),
        "keras",
        "FastICA unmixing folded in as a frozen Dense; head retrained",
    ),
    "nmf": PassInfo(
        "edge_opt.passes.reduce:NMFPass",
        ("keras",),
        "keras",
        "NMF folded approximately as relu(x @ pinv(H)); needs non-negative features; head retrained",
    ),
}


def get_pass(name: str) -> Pass:
    info = REGISTRY.get(name)
    if info is None:
        raise ConfigError(f"unknown pass '{name}'; known: {', '.join(sorted(REGISTRY))}")
    module, _, cls = info.target.partition(":")
    return getattr(importlib.import_module(module), cls)()


def supports(name: str, target: str | None) -> str | None:
    """Why pass ``name`` cannot serve ``target``, or None when it can."""
    info = REGISTRY.get(name)
    if info is None:
        return f"unknown pass '{name}'"
    if target is not None and info.targets is not None and target not in info.targets:
        return f"pass '{name}' serves targets {', '.join(info.targets)}, not '{target}'"
    return None


__all__ = ["REGISTRY", "Pass", "PassContext", "PassInfo", "get_pass", "supports"]
