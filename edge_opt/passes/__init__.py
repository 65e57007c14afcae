"""Passes turn one artifact into another. Registered by name; modules imported on first use.

The registry only says where each built-in pass lives. Everything else about a pass (its
config schema, input formats, output format, the targets it serves, a description) is an
attribute of its class, declared once. A plug-in pass is named ``module:Class``.
"""

from __future__ import annotations

import importlib

from edge_opt.errors import ConfigError
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
    target = _BUILTIN.get(name, name)
    if ":" not in target:
        raise ConfigError(f"unknown pass '{name}'; known: {', '.join(sorted(_BUILTIN))} (or module:Class)")
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"pass '{name}' cannot be imported: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Pass)):
        raise ConfigError(f"pass '{name}' is not an edge-opt Pass subclass")
    return cls


def get_pass(name: str) -> Pass:
    return pass_class(name)()


def supports(name: str, target: str | None) -> str | None:
    """Why pass ``name`` cannot serve ``target``, or None when it can."""
    cls = pass_class(name)
    if target is not None and cls.targets is not None and target not in cls.targets:
        return f"pass '{name}' serves targets {', '.join(cls.targets)}, not '{target}'"
    return None


__all__ = ["Pass", "PassContext", "get_pass", "pass_class", "pass_names", "supports"]
