"""User data files: ``.npy`` (features), ``.npz`` (``x``, optional ``y``), ``.csv`` (header row;
a ``label`` or ``y`` column holds labels). One clear error for anything else."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np

from edge_opt.errors import BadInputError

_LABEL_COLUMNS = ("label", "y")


def load_xy(path: str | Path) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """(features float32, labels int64 or None, feature names or None) from a data file."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            x, y, names = np.load(path, allow_pickle=False), None, None
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                if "x" not in npz.files:
                    raise BadInputError(f"{path}: no array named 'x' (has: {', '.join(npz.files) or 'none'})")
                x = npz["x"]
                y = npz["y"] if "y" in npz.files else None
                names = [str(n) for n in npz["feature_names"]] if "feature_names" in npz.files else None
        elif suffix == ".csv":
            x, y, names = _read_csv(path)
        else:
            raise BadInputError(f"{path}: unknown data extension '{path.suffix}'; use .npy, .npz or .csv")
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise BadInputError(
            f"{path}: cannot read it: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise BadInputError(f"{path}: features must be numeric, got dtype {x.dtype}")
    if x.ndim < 2 or len(x) == 0:
        raise BadInputError(f"{path}: expected at least one row of features (shape (rows, ...)), got shape {x.shape}")
    if y is not None:
        y = np.asarray(y).reshape(-1)
        if len(y) != len(x):
            raise BadInputError(f"{path}: {len(x)} rows of features but {len(y)} labels")
        y = y.astype(np.int64)
    return x.astype(np.float32), y, names


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 2:
        raise BadInputError(f"{path}: needs a header row and at least one data row")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    try:
        table = np.array([[float(v) for v in row] for row in body], dtype=np.float64)
    except ValueError as exc:
        raise BadInputError(f"{path}: every value must be numeric ({exc})") from None
    if table.ndim != 2 or table.shape[1] != len(header):
        raise BadInputError(f"{path}: rows do not all have {len(header)} columns like the header")
    label = next((i for i, h in enumerate(header) if h.lower() in _LABEL_COLUMNS), None)
    if label is None:
        return table, None, header
    keep = [i for i in range(len(header)) if i != label]
    return table[:, keep], table[:, label], [header[i] for i in keep]
