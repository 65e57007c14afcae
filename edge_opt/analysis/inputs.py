"""What the stand-alone check commands take: evaluation data and the float reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_opt.analysis.data import EvalData
from edge_opt.core.arrays import load_xy
from edge_opt.core.artifacts import MANIFEST, load_artifact
from edge_opt.core.errors import BadInputError
from edge_opt.datasets import DATASETS, load_dataset


def eval_data(spec: str, rows: int | None = None, seed: int = 0) -> EvalData:
    """A built-in dataset's test split (``adult``, ``digits``) or an ``.npz`` file with
    ``x``, ``y`` and optional ``feature_names`` and ``slice_<column>`` arrays."""
    if spec in DATASETS:
        return EvalData.from_dataset(load_dataset(spec, seed=seed), split="test", rows=rows)
    path = Path(spec)
    if path.suffix != ".npz":
        raise BadInputError(f"--data {spec!r}: use a built-in dataset ({', '.join(DATASETS)}) or an .npz file")

    x, y, names = load_xy(path)
    if y is None:
        raise BadInputError(f"{path}: needs labels (an array named 'y')")
    with np.load(path, allow_pickle=False) as npz:
        slices = {k[len("slice_") :]: npz[k].astype(str) for k in npz.files if k.startswith("slice_")}
    flat = x.reshape(len(x), -1)
    names = names or [f"f{i}" for i in range(flat.shape[1])]
    data = EvalData(x, y, names, int(y.max()) + 1, slices, np.ones(flat.shape[1], bool), flat.min(0), flat.max(0))
    return data.head(rows) if rows else data


def float_model_for(model: Path, given: Path | None) -> Path | None:
    """The float model an artifact came from: ``--float``, or its lineage's root when the
    file sits in an edge-opt artifact folder."""
    if given is not None:
        if not given.exists():
            raise BadInputError(f"--float {given}: file not found")
        return given

    folder = (model.parent if model.is_file() else model).resolve()  # by-label/ links to artifacts/<id>
    if not (folder / MANIFEST).is_file():
        return None
    art = load_artifact(folder)
    seen = {art.id}
    while art.parent and (folder.parent / art.parent / MANIFEST).is_file():
        if art.parent in seen:  # a forged or corrupt manifest: never walk in circles
            raise BadInputError(f"{folder}: the lineage loops (artifact {art.parent} is its own ancestor)")
        art = load_artifact(folder.parent / art.parent)
        seen.add(art.id)
    return art.model_path if art.format == "keras" and art.model_path != model.resolve() else None


def model_file(path: Path) -> Path:
    """An artifact folder or a model file → the model file."""
    if path.is_dir() and (path / MANIFEST).is_file():
        return load_artifact(path).model_path
    return path
