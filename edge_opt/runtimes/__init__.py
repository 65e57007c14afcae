"""Runtimes (backends): load a model file and run it. They know nothing about metrics.

The registry only says where each built-in backend lives; what a backend reads
(``formats``), its devices and precisions are attributes of its class, declared once.
Backend modules import their native runtime inside their methods, so naming, listing and
validating backends stays cheap. A third-party backend is named ``module:Class``.
"""

from __future__ import annotations

from edge_opt.core.plugins import load_class
from edge_opt.runtimes.base import Backend, TensorSpec
from edge_opt.runtimes.formats import FORMATS, detect_format

_REGISTRY = {
    "litert": "edge_opt.runtimes.litert:LiteRTBackend",
    "litert-compiled": "edge_opt.runtimes.litert_compiled:LiteRTCompiledBackend",
    "onnxruntime": "edge_opt.runtimes.onnxrt:OnnxRuntimeBackend",
    "openvino": "edge_opt.runtimes.openvino:OpenVINOBackend",
    "keras": "edge_opt.runtimes.keras:KerasBackend",
    "null": "edge_opt.runtimes.null:NullBackend",
}

#: For each format, the runtime used when none is named.
DEFAULT_RUNTIME = {"tflite": "litert", "onnx": "onnxruntime", "openvino": "openvino", "keras": "keras"}


def runtime_names() -> list[str]:
    return [n for n in _REGISTRY if n != "null"]


def formats_of(name: str) -> tuple[str, ...]:
    """Formats a runtime reads (its class's ``formats``)."""
    return tuple(get_backend_class(name).formats)


def get_backend_class(name: str) -> type[Backend]:
    return load_class(name, _REGISTRY, Backend, "runtime", runtime_names())


__all__ = [
    "Backend",
    "TensorSpec",
    "DEFAULT_RUNTIME",
    "FORMATS",
    "detect_format",
    "formats_of",
    "get_backend_class",
    "runtime_names",
]
