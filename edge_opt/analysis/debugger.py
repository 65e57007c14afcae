"""``edge-opt debug``'s entry point: a deployed file and the float model it came from, by format.

The float model is converted by the same conversion as the pass that made the file (``tflite``
or ``onnx``, at fp32; an IR comes from the ``onnx`` pass's file), so each op of the file has a
float counterpart computed the same way: :mod:`.debug` compares a ``.tflite``,
:mod:`.debug_onnx` an ``.onnx``, :mod:`.debug_openvino` an OpenVINO IR.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_opt.analysis.debug import DebugResult, debug_tflite
from edge_opt.analysis.debug_onnx import debug_onnx
from edge_opt.analysis.debug_openvino import debug_openvino
from edge_opt.core.errors import BadInputError
from edge_opt.models import load_keras
from edge_opt.passes.convert import onnx_bytes, tflite_bytes
from edge_opt.runtimes import detect_format

#: The formats the debugger reads.
FORMATS = ("tflite", "onnx", "openvino")


def debuggable(path: Path) -> str:
    """``path``'s format, or one line (exit 2) when the debugger cannot read it."""
    fmt = detect_format(path)
    if fmt not in FORMATS:
        raise BadInputError(f"{path}: debug reads .tflite, .onnx and OpenVINO IR (.xml) files, not {fmt}")
    return fmt


def debug_file(path: Path, float_model: Path, x: np.ndarray, trust_model: bool = False) -> DebugResult:
    """``path`` against ``float_model`` (a Keras model) on the rows ``x``, layer by layer."""
    fmt = debuggable(path)
    model = load_keras(float_model, trust=trust_model)
    if fmt == "tflite":
        return debug_tflite(path, float_model, tflite_bytes(model), x)
    if fmt == "onnx":
        return debug_onnx(path, float_model, onnx_bytes(model), x)
    return debug_openvino(path, float_model, onnx_bytes(model), x)
