"""Passes turn one artifact into another. Registered by name; modules imported on first use.

The registry only says where each built-in pass lives. Everything else about a pass (its
config schema, input formats, output format, the targets it serves, a description) is an
attribute of its class, declared once. A plug-in pass is named ``module:Class``.
"""

from __future__ import annotations

from edge_opt.core.plugins import load_class
from edge_opt.passes.base import Pass, PassContext

_BUILTIN: dict[str, str] = {
    "tflite": "edge_opt.passes.convert:TFLitePass",
    "onnx": "edge_opt.passes.convert:OnnxPass",
    "openvino": "edge_opt.passes.convert:OpenVINOPass",
    "ort_quantize": "edge_opt.passes.quantize_ext:OrtQuantizePass",
    "nncf": "edge_opt.passes.quantize_ext:NNCFQuantizePass",
    "prune": "edge_opt.passes.tfmot:PrunePass",
    "cluster": "edge_opt.passes.tfmot:ClusterPass",
    "qat": "edge_opt.passes.tfmot:QATPass",
    "distill": "edge_opt.passes.distill:DistillPass",
    "equalize": "edge_opt.passes.equalize:EqualizePass",
    "bias_correct": "edge_opt.passes.equalize:BiasCorrectPass",
    "reweigh": "edge_opt.passes.remediate:ReweighPass",
    "fair_thresholds": "edge_opt.passes.remediate:FairThresholdsPass",
    "adversarial": "edge_opt.passes.remediate:AdversarialPass",
    "defensive_distill": "edge_opt.passes.remediate:DefensiveDistillPass",
    "pca": "edge_opt.passes.reduce:PCAPass",
    "select_features": "edge_opt.passes.reduce:FeatureSelectPass",
    "ica": "edge_opt.passes.reduce:ICAPass",
    "nmf": "edge_opt.passes.reduce:NMFPass",
}


def pass_names() -> list[str]:
    """The built-in passes, by name."""
    return list(_BUILTIN)


def pass_class(name: str) -> type[Pass]:
    """The class of a built-in pass, or of a plug-in named ``module:Class``."""
    return load_class(name, _BUILTIN, Pass, "pass", sorted(_BUILTIN))


def get_pass(name: str) -> Pass:
    return pass_class(name)()


def supports(name: str, target: str | None) -> str | None:
    """Why pass ``name`` cannot serve ``target``, or None when it can."""
    cls = pass_class(name)
    if target is not None and cls.targets is not None and target not in cls.targets:
        return f"pass '{name}' serves targets {', '.join(cls.targets)}, not '{target}'"
    return None


__all__ = ["Pass", "PassContext", "get_pass", "pass_class", "pass_names", "supports"]
