"""Recognise a model file by its extension, then check its bytes agree."""

from __future__ import annotations

from pathlib import Path

from edge_opt.core.errors import ModelLoadError

FORMATS = ("tflite", "onnx", "openvino", "keras")

_BY_SUFFIX = {".tflite": "tflite", ".onnx": "onnx", ".xml": "openvino", ".keras": "keras", ".h5": "keras"}


def detect_format(path: str | Path) -> str:
    """Return the model format of ``path``, or raise ModelLoadError naming the problem."""
    path = Path(path)
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "keras"
        raise ModelLoadError(f"{path}: a folder, but not a SavedModel (no saved_model.pb)")
    if not path.exists():
        raise ModelLoadError(f"{path}: file not found")
    if not path.is_file():  # a FIFO would block the read forever; a device never ends
        raise ModelLoadError(f"{path}: not a regular file (a FIFO, device or socket is never read)")
    fmt = _BY_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(_BY_SUFFIX))
        raise ModelLoadError(f"{path}: unknown model extension '{path.suffix}'; known: {known}")
    with open(path, "rb") as fh:
        head = fh.read(64)
    if not head:
        raise ModelLoadError(f"{path}: empty file")
    problem = _check_magic(fmt, head)
    if problem:
        raise ModelLoadError(f"{path}: {problem}")
    if fmt == "openvino" and _declares_dtd(path):
        raise ModelLoadError(
            f"{path}: declares a DTD (<!DOCTYPE or <!ENTITY), which an OpenVINO IR never has: refused unread"
        )
    if fmt == "openvino" and not path.with_suffix(".bin").is_file():
        raise ModelLoadError(f"{path}: OpenVINO IR needs its weights file {path.with_suffix('.bin').name} beside it")
    return fmt


def _declares_dtd(path: Path) -> bool:
    """An XML prolog with a document type (entities that expand, the "billion laughs"): the
    prolog is what comes before the root element, read at most 64 KB."""
    with open(path, "rb") as fh:
        prolog = fh.read(65536).split(b"<net", 1)[0]
    return b"<!DOCTYPE" in prolog.upper() or b"<!ENTITY" in prolog.upper()


def _check_magic(fmt: str, head: bytes) -> str | None:
    if fmt == "tflite" and head[4:8] != b"TFL3":
        return "not a TFLite flatbuffer (no TFL3 identifier)"
    # ONNX ModelProto starts with field 1 (ir_version, varint): tag byte 0x08.
    if fmt == "onnx" and head[:1] != b"\x08":
        return "not an ONNX model (does not start with an ir_version field)"
    if fmt == "openvino":
        text = head.lstrip()
        if not (text.startswith(b"<?xml") or text.startswith(b"<net")):
            return "not an OpenVINO IR (.xml does not start with <?xml or <net)"
    if fmt == "keras" and head[:2] != b"PK" and head[:8] != b"\x89HDF\r\n\x1a\n":
        return "not a Keras model (neither a .keras zip nor an HDF5 file)"
    return None
