"""Baseline models per task and their training; the trained float model is the root artifact."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from edge_opt.core.artifacts import Artifact, ArtifactWriter
from edge_opt.core.config import Strict
from edge_opt.core.errors import ModelLoadError, first_line
from edge_opt.core.tfkeras import keras, tf
from edge_opt.datasets import Dataset


class ModelConfig(Strict):
    kind: Literal["mlp", "cnn"] = "mlp"
    # mlp: dense widths; cnn: conv filters (bounded: a model for an edge device, not a typo's 2e8)
    hidden: list[Annotated[int, Field(ge=1, le=16384)]] = Field(default_factory=lambda: [256, 128])
    dropout: float = Field(default=0.1, ge=0, lt=1)
    epochs: int = Field(default=4, ge=1, le=10_000)
    batch_size: int = Field(default=256, ge=1, le=1_048_576)
    learning_rate: float = Field(default=1e-3, gt=0, le=10)


_H5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: Keras layers whose saved config carries Python code (marshalled bytecode or a source string).
CODE_LAYERS = ("Lambda",)
TRUST_HINT = "pass --trust-model only if you trust where the file came from"


def keras_format(path: str | Path) -> str:
    """A Keras model's real format, sniffed from its bytes, not its name: ``keras`` (the zip
    format), ``h5`` (HDF5) or ``savedmodel`` (a folder with saved_model.pb)."""
    path = Path(path)
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "savedmodel"
        raise ModelLoadError(f"{path}: a folder, but not a SavedModel (no saved_model.pb)")
    if not path.exists():
        raise ModelLoadError(f"{path}: file not found")
    if not path.is_file():
        raise ModelLoadError(f"{path}: not a regular file (a FIFO, device or socket is never read)")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"PK\x03\x04"):
        return "keras"
    if head == _H5_MAGIC:
        return "h5"
    raise ModelLoadError(f"{path}: not a Keras model (neither a .keras zip, an HDF5 .h5 file nor a SavedModel folder)")


def _configs(path: Path, fmt: str) -> list:
    """The model's saved layer configs, read without deserialising (or running) anything."""
    import json

    try:
        if fmt == "keras":
            import zipfile

            with zipfile.ZipFile(path) as zf:
                return [json.loads(zf.read("config.json"))]
        if fmt == "h5":
            import h5py

            with h5py.File(path, "r") as fh:
                raw = fh.attrs.get("model_config")
                if raw is None:
                    raise ModelLoadError(f"{path}: an HDF5 file without a Keras model config (weights only?)")
                return [json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)]
        meta = path / "keras_metadata.pb"
        if not meta.is_file():
            return []  # a plain TensorFlow SavedModel: Keras rebuilds no layers from configs
        from tf_keras.protobuf import saved_metadata_pb2

        saved = saved_metadata_pb2.SavedMetadata()
        saved.ParseFromString(meta.read_bytes())
        return [json.loads(node.metadata) for node in saved.nodes if node.metadata]
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt container: one clear line
        raise ModelLoadError(f"{path}: cannot read its Keras config: {first_line(exc)}") from None


def code_layers(path: str | Path) -> list[str]:
    """Names of the layers of a saved Keras model that carry Python code (Lambda), found by
    reading its config only."""
    path = Path(path)
    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get("class_name") in CODE_LAYERS:
                cfg = node.get("config") if isinstance(node.get("config"), dict) else {}
                found.append(str(cfg.get("name") or node.get("name") or node["class_name"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for config in _configs(path, keras_format(path)):
        walk(config)
    return sorted(set(found))


def refuse_code(path: str | Path, *, trust: bool = False) -> None:
    """Without ``trust``, exit 2 naming the Lambda layers (Python code) of a Keras file; its config
    is read without deserialising anything, and without importing TensorFlow."""
    if trust:
        return
    layers = code_layers(Path(path))
    if layers:
        raise ModelLoadError(
            f"{path}: layer {', '.join(repr(n) for n in layers)} is a Lambda holding Python code, "
            f"which edge-opt does not run; {TRUST_HINT}"
        )


def load_keras(path: str | Path, *, trust: bool = False):
    """The one Keras loader: every module loads Keras models through it.

    Trust is the command line's decision alone (``--trust-model``); nothing in or beside the
    file grants it. Without it, the file's real format is sniffed, its config is read without
    deserialising anything, and a model with a Lambda layer (Python code) is refused naming
    the layer; the load itself then runs with Keras's safe mode on. With it, the model loads
    as Keras would load it.
    """
    path = Path(path)
    fmt = keras_format(path)
    refuse_code(path, trust=trust)
    k = keras()
    suffix = {"keras": ".keras", "h5": ".h5"}.get(fmt)
    with _named(path, suffix) as named:  # Keras picks its reader by the name: give it the real one
        try:
            if fmt == "keras":
                return k.models.load_model(str(named), compile=False, safe_mode=not trust)
            return k.models.load_model(str(named), compile=False)
        except ModelLoadError:
            raise
        except Exception as exc:  # Keras raises many types for a bad or unsafe file
            hint = f" (it holds code: {TRUST_HINT})" if "safe_mode" in str(exc) else ""
            raise ModelLoadError(f"{path}: Keras cannot load it: {first_line(exc)}{hint}") from None


@contextlib.contextmanager
def _named(path: Path, suffix: str | None):
    """``path``, or a temporary link to it whose name ends in ``suffix`` when it does not."""
    if suffix is None or path.suffix.lower() == suffix or (suffix == ".h5" and path.suffix.lower() == ".hdf5"):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="edge-opt-keras-") as tmp:
        link = Path(tmp) / f"model{suffix}"
        os.symlink(path.resolve(), link)
        yield link


def build(cfg: ModelConfig, input_shape: tuple[int, ...], n_classes: int):
    k = keras()
    inputs = k.Input(shape=input_shape, name="features")
    x = inputs
    if cfg.kind == "cnn":
        for filters in cfg.hidden:
            x = k.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
            x = k.layers.MaxPooling2D(2)(x) if x.shape[1] >= 4 else x
        x = k.layers.Flatten()(x)
    else:
        x = k.layers.Flatten()(x) if len(input_shape) > 1 else x
        for width in cfg.hidden:
            x = k.layers.Dense(width, activation="relu")(x)
            if cfg.dropout:
                x = k.layers.Dropout(cfg.dropout)(x)
    # Binary tasks get one sigmoid unit; multiclass a softmax over the classes.
    outputs = k.layers.Dense(1 if n_classes == 2 else n_classes, activation="sigmoid" if n_classes == 2 else "softmax")(
        x
    )
    return k.Model(inputs, outputs, name=f"{cfg.kind}")


def dataset_pipeline(
    x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool, seed: int, weights: np.ndarray | None = None
):
    """tf.data: cache, shuffle, batch, prefetch, so the step never waits on Python; with ``weights``,
    (x, y, weight) batches (Keras weighs each row's loss by it)."""
    tf_ = tf()
    ds = tf_.data.Dataset.from_tensor_slices((x, y) if weights is None else (x, y, weights)).cache()
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf_.data.AUTOTUNE)


def one_unit(model) -> bool:
    """Whether a classifier answers with one unit (a sigmoid: two classes) rather than a score per class."""
    shape = model.output_shape
    return (shape[0] if isinstance(shape, list) else shape)[-1] == 1


def label_array(y: np.ndarray, sigmoid: bool) -> np.ndarray:
    """Labels as the loss wants them: float32 for one sigmoid unit, class indices for a score per class."""
    return y.astype("float32") if sigmoid else y


def fit_classifier(
    model,
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    learning_rate: float,
    batch_size: int,
    epochs: int,
    seed: int,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    callbacks=(),
    verbose: int = 0,
    sample_weight: np.ndarray | None = None,
):
    """Compile and train a classifier, the one training loop of edge-opt's models and passes: Adam,
    binary cross-entropy on one sigmoid unit, sparse categorical cross-entropy on a score per
    class (a two-class softmax head too), shuffled batches from ``dataset_pipeline`` (each row's loss weighed by
    ``sample_weight`` when given). Returns the model."""
    binary = n_classes == 2 and one_unit(model)
    model.compile(
        optimizer=keras().optimizers.Adam(learning_rate),
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    val = None
    if validation is not None:
        vx, vy = validation
        val = dataset_pipeline(vx, label_array(vy, binary), batch_size, shuffle=False, seed=seed)
    model.fit(
        dataset_pipeline(x, label_array(y, binary), batch_size, shuffle=True, seed=seed, weights=sample_weight),
        validation_data=val,
        epochs=epochs,
        callbacks=list(callbacks),
        verbose=verbose,
    )
    return model


def train(cfg: ModelConfig, data: Dataset, seed: int = 0, verbose: int = 0):
    keras().utils.set_random_seed(seed)
    model = build(cfg, data.input_shape, data.n_classes)
    return fit_classifier(
        model,
        data.x_train,
        data.y_train,
        data.n_classes,
        learning_rate=cfg.learning_rate,
        batch_size=cfg.batch_size,
        epochs=cfg.epochs,
        seed=seed,
        validation=(data.x_val, data.y_val),
        verbose=verbose,
    )


def keras_root(out_dir: Path, *, pass_name: str, config: dict, label: str, make) -> Artifact:
    """A Keras model as a root artifact (no parent), re-used when one with the same identity exists.

    ``make(notes)`` builds (and trains) the model and may add to the manifest's notes; the model's
    parameter count is noted. The one writer of edge-opt's root Keras models (train, nas, import)."""
    with ArtifactWriter(
        out_dir,
        parent=None,
        pass_name=pass_name,
        config=config,
        target=None,
        fmt="keras",
        precision="fp32",
        model_file="model.keras",
        label=label,
    ) as w:
        if w.existing:
            return w.existing
        model = make(w.notes)
        model.save(str(w.stage / "model.keras"))
        w.notes.setdefault("parameters", int(model.count_params()))
        return w.publish()


def train_artifact(
    cfg: ModelConfig, data: Dataset, task: str, out_dir: Path, seed: int = 0, data_config: dict | None = None
) -> Artifact:
    """Train the float model and publish it as the root artifact (format keras)."""
    config = {"task": task, "dataset": data.name, "data": data_config or {}, "model": cfg.model_dump(), "seed": seed}

    def make(notes: dict):
        model = train(cfg, data, seed=seed)
        notes["parameters"] = int(model.count_params())
        notes["input_shape"] = list(data.input_shape)
        return model

    return keras_root(out_dir, pass_name="train", config=config, label="float", make=make)


def predicted_labels(outputs: np.ndarray, n_classes: int) -> np.ndarray:
    """Class indices from model outputs (one sigmoid unit, or one score per class)."""
    outputs = np.asarray(outputs)
    if n_classes == 2 and (outputs.ndim == 1 or outputs.shape[-1] == 1):
        return (outputs.reshape(len(outputs)) >= 0.5).astype(np.int64)
    return outputs.reshape(len(outputs), -1).argmax(axis=1)
