"""Atomic writes: a reader never sees a half-written result, a killed run leaves none."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Strict JSON: a NaN or infinite figure is written as null (no figure), which every JSON reader
    (and edge-opt's own, which refuses NaN) can read."""
    text = json.dumps(_finite(obj), indent=2, sort_keys=False, default=_default, allow_nan=False)
    return write_text_atomic(path, text + "\n")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, str):  # numpy scalars and arrays
        return _finite(obj.tolist())
    return obj


def _default(obj: Any) -> Any:
    # numpy scalars and arrays end up in records; keep JSON plain.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


@contextlib.contextmanager
def comma_free(path: str | os.PathLike) -> Iterator[str]:
    """``path``, or a link to it in a temporary folder when it holds a comma: OpenVINO's
    ``convert_model`` reads ``a,b`` as two model files (a run folder named ``mlp, relu`` broke)."""
    path = str(path)
    if "," not in path:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="edge-opt-model-") as tmp:
        link = Path(tmp) / Path(path).name.replace(",", "_")
        os.symlink(os.path.abspath(path), link)
        yield str(link)
