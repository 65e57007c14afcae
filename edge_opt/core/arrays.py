"""User data files: ``.npy`` (features), ``.npz`` (``x``, optional ``y``), ``.csv`` (header row;
a ``label`` or ``y`` column holds labels). One clear error for anything else."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np

from edge_opt.core.errors import BadInputError

_LABEL_COLUMNS = ("label", "y")


def load_xy(path: str | Path, *, labels: bool = True) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """(features float32, labels int64 or None, feature names or None) from a data file.

    ``labels=False``: a CSV's ``label``/``y`` column stays a feature (tables of features only)."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"{path}: file not found")
    if not path.is_file():
        raise BadInputError(f"{path}: not a regular file (a FIFO, device or socket is never read)")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            # Memory-mapped first: a header that declares more data than the file holds fails
            # here, and the size is checked before anything is read into memory.
            mapped = np.load(path, allow_pickle=False, mmap_mode="r")
            _check_size(path, mapped.nbytes)
            x, y, names = np.array(mapped), None, None
        elif suffix == ".npz":
            check_npz(path)
            with np.load(path, allow_pickle=False) as npz:
                if "x" not in npz.files:
                    raise BadInputError(f"{path}: no array named 'x' (has: {', '.join(npz.files) or 'none'})")
                x = npz["x"]
                y = npz["y"] if "y" in npz.files else None
                names = [str(n) for n in npz["feature_names"]] if "feature_names" in npz.files else None
        elif suffix == ".csv":
            x, y, names = _read_csv(path, labels)
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
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)
    bad = ~np.isfinite(x32)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise BadInputError(
            f"{path}: features hold {int(bad.sum())} NaN, Inf or beyond-float32 values (the first in row {row})"
        )
    if y is not None:
        y = np.asarray(y).reshape(-1)
        if len(y) != len(x):
            raise BadInputError(f"{path}: {len(x)} rows of features but {len(y)} labels")
        y = _class_labels(path, y)
    return x32, y, names


def _class_labels(path: Path, y: np.ndarray) -> np.ndarray:
    """Labels as class indices 0..k-1, or one clear error."""
    if y.dtype.kind not in "iufb":
        raise BadInputError(f"{path}: labels must be class indices 0, 1, ..., got {y.dtype} values like {y[0]!r}")
    if y.dtype.kind == "f" and (not np.isfinite(y).all() or not np.all(y == np.round(y))):
        odd = y[~(np.isfinite(y) & (y == np.round(y)))][:1]
        raise BadInputError(f"{path}: labels must be whole class indices 0, 1, ..., got values like {odd}")
    if len(y) and y.min() < 0:
        raise BadInputError(f"{path}: labels must be class indices 0, 1, ..., got {y.min():g}")
    return y.astype(np.int64)


#: The most bytes one data array may take in memory (also a guard against archive bombs).
MAX_DATA_BYTES = 4 * 1024**3


def check_npz(path: Path) -> None:
    """Every member of an ``.npz`` checked before anything is decompressed or allocated: the size
    the archive declares, and the shape its ``.npy`` header declares, against the limit and
    against the bytes the member holds (a header claiming 10^12 rows over a few bytes is refused)."""
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            _check_size(path, info.file_size, info.filename)
            if not info.filename.endswith(".npy"):
                continue
            with zf.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(fh)
                header = fh.tell()
            declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
            _check_size(path, declared, info.filename)
            if not dtype.hasobject and declared > info.file_size - header:
                raise BadInputError(
                    f"{path} ({info.filename}): its header declares shape {tuple(shape)} "
                    f"({declared:,} bytes), but the member holds {max(info.file_size - header, 0):,}"
                )


def _check_size(path: Path, nbytes: int, member: str | None = None) -> None:
    limit = MAX_DATA_BYTES
    try:
        import psutil

        limit = min(limit, psutil.virtual_memory().available // 2)
    except Exception:  # noqa: BLE001 - no memory figure here: the fixed cap alone
        pass
    if nbytes > limit:
        what = f"{path}" + (f" ({member})" if member else "")
        raise BadInputError(
            f"{what}: declares {nbytes / 1024**3:.1f} GiB of data, more than edge-opt reads "
            f"({limit / 1024**3:.1f} GiB: half the free memory, at most 4 GiB)"
        )


def _read_csv(path: Path, labels: bool = True) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 2:
        raise BadInputError(f"{path}: needs a header row and at least one data row")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    ragged = next((i for i, row in enumerate(body, start=2) if len(row) != len(header)), None)
    if ragged is not None:
        raise BadInputError(f"{path}: rows do not all have {len(header)} columns like the header (line {ragged})")
    kept = [i for i, h in enumerate(header) if not h.startswith(SLICE_PREFIX)]  # group columns are never features
    header, body = [header[i] for i in kept], [[row[i] for i in kept] for row in body]
    try:
        table = np.array([[float(v) for v in row] for row in body], dtype=np.float64)
    except ValueError as exc:
        raise BadInputError(f"{path}: every value must be numeric ({exc})") from None
    if table.ndim != 2 or table.shape[1] != len(header):
        raise BadInputError(f"{path}: rows do not all have {len(header)} columns like the header")
    label = next((i for i, h in enumerate(header) if h.lower() in _LABEL_COLUMNS), None) if labels else None
    if label is None:
        return table, None, header
    keep = [i for i in range(len(header)) if i != label]
    return table[:, keep], table[:, label], [header[i] for i in keep]


#: Columns (CSV) or arrays (.npz) named ``slice_<group>`` hold one group value per row, for
#: per-group metrics (fairness); they are never features.
SLICE_PREFIX = "slice_"


def load_slices(path: str | Path) -> dict[str, np.ndarray]:
    """The ``slice_*`` columns of a data file read by ``load_xy``, as strings, by group name."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        check_npz(path)
        with np.load(path, allow_pickle=False) as npz:
            return {k.removeprefix(SLICE_PREFIX): npz[k].astype(str) for k in npz.files if k.startswith(SLICE_PREFIX)}
    if path.suffix.lower() != ".csv":
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header = [h.strip() for h in rows[0]]
    return {
        h.removeprefix(SLICE_PREFIX): np.array([row[i].strip() for row in rows[1:]], dtype=str)
        for i, h in enumerate(header)
        if h.startswith(SLICE_PREFIX)
    }


def load_feeds(path: str | Path) -> dict[str, np.ndarray]:
    """Model inputs by input name from an ``.npz`` (``bench --input``): numeric arrays, finite,
    within the size limit. One unnamed array (``np.savez(f, x)``, stored as ``arr_0``) is for
    a model with one input and comes back under the name ''."""
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise BadInputError(f"--input {path}: expected an .npz file with one array per model input, by input name")
    if not path.is_file():
        raise BadInputError(f"--input {path}: " + ("file not found" if not path.exists() else "not a regular file"))
    try:
        check_npz(path)
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise BadInputError(
            f"--input {path}: cannot read it: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    if not arrays:
        raise BadInputError(f"--input {path}: holds no arrays")
    for name, arr in arrays.items():
        if arr.dtype.kind not in "fiub":
            raise BadInputError(f"--input {path}: array '{name}' is {arr.dtype}, not numbers")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise BadInputError(f"--input {path}: array '{name}' holds NaN or infinite values")
    if list(arrays) == ["arr_0"]:
        arrays = {"": arrays["arr_0"]}
    return arrays
