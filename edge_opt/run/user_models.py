"""Suite tasks on the user's own model files (``file:`` and ``data:`` in a suite).

A Keras model becomes the root artifact (as ``edge-opt optimize`` imports it, through the one
Keras loader, with trust only from the command line) and goes through the target pipelines;
a deployed .tflite / .onnx / OpenVINO .xml file is imported as it is and measured on each
runtime of each profile that reads it. The data's labels score accuracy and feed the trust
checks. ``check_task`` finds a bad file or data that does not fit the model before any work.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from edge_opt.core.arrays import load_slices, load_xy
from edge_opt.core.artifacts import Artifact, ArtifactWriter, sha256_file
from edge_opt.core.errors import BadInputError
from edge_opt.datasets import Dataset
from edge_opt.models import load_keras
from edge_opt.run.optimize import import_artifact, load_user_model
from edge_opt.run.suite import TaskConfig
from edge_opt.runtimes import DEFAULT_RUNTIME, detect_format, get_backend_class
from edge_opt.transports.base import companions


def model_format(task: TaskConfig) -> str:
    return detect_format(task.file)


def load_task_data(task: TaskConfig) -> Dataset:
    """The task's labelled rows as a Dataset (every split is those rows: nothing is trained on them)."""
    x, y, names = load_xy(task.data)
    if y is None:
        raise BadInputError(
            f"{task.data}: task '{task.name}' needs labels (an array 'y' in .npz, a 'label' column in .csv)"
        )
    if task.test_rows:
        x, y = x[: task.test_rows], y[: task.test_rows]
    slices = {k: v[: len(x)] for k, v in load_slices(task.data).items()}
    n_classes = max(2, int(y.max()) + 1)
    return Dataset(
        name=task.name,
        task="binary" if n_classes == 2 else "multiclass",
        n_classes=n_classes,
        feature_names=names or [f"f{i}" for i in range(int(np.prod(x.shape[1:])))],
        x_train=x,
        y_train=y,
        x_val=x,
        y_val=y,
        x_test=x,
        y_test=y,
        slices_train=slices,
        slices_val=slices,
        slices_test=slices,
    )


def check_task(task: TaskConfig, trust: bool) -> None:
    """The model loads and the data fits its input (one clear error otherwise), before any work."""
    data = load_task_data(task)
    fmt = model_format(task)
    if fmt == "keras":
        model = load_keras(Path(task.file), trust=trust)
        shape = tuple(-1 if d is None else int(d) for d in model.inputs[0].shape)
    else:
        backend = get_backend_class(DEFAULT_RUNTIME[fmt])(threads=1, device="cpu")
        backend.load(task.file)
        specs = backend.inputs()
        if len(specs) != 1:
            raise BadInputError(f"{task.file}: task '{task.name}': the model has {len(specs)} inputs; data holds one")
        shape = tuple(specs[0].shape)
    rows = tuple(data.x_test.shape[1:])
    if len(rows) != len(shape) - 1 or any(m >= 0 and m != d for m, d in zip(shape[1:], rows, strict=False)):
        model_shape = ",".join("?" if d < 0 else str(d) for d in shape[1:])
        raise BadInputError(
            f"{task.data}: task '{task.name}': rows have shape {rows}, "
            f"the model {Path(task.file).name} takes ({model_shape})"
        )


def import_model(task: TaskConfig, out: Path, trust: bool) -> Artifact:
    """The task's model as the root artifact: a Keras model re-saved, a deployed file copied."""
    fmt = model_format(task)
    source = Path(task.file)
    if fmt == "keras":
        return import_artifact(load_user_model(source, trust), source, out, trust)
    files = companions(source)
    digest = {f.name: sha256_file(f) for f in files}
    # Inside the artifact the files are model.<suffix> (an OpenVINO .xml finds its .bin by the shared
    # stem): a manifest names only safe file names, and the user's (any script, spaces) is the label.
    inside = {f: f"model{f.suffix.lower()}" for f in files}
    with ArtifactWriter(
        out,
        parent=None,
        pass_name="import",
        config={"source": str(source), "sha256": digest},
        target=None,
        fmt=fmt,
        precision="unknown",
        model_file=inside[source],
        label=source.name,
    ) as w:
        if w.existing:
            return w.existing
        for f in files:
            shutil.copyfile(f, w.stage / inside[f])
        return w.publish()
