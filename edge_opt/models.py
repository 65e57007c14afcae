"""Baseline models per task and their training; the trained float model is the root artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edge_opt.artifacts import Artifact, ArtifactWriter
from edge_opt.datasets import Dataset


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["mlp", "cnn"] = "mlp"
    hidden: list[int] = Field(default_factory=lambda: [256, 128])  # mlp: dense widths; cnn: conv filters
    dropout: float = Field(default=0.1, ge=0, lt=1)
    epochs: int = Field(default=4, ge=1)
    batch_size: int = Field(default=256, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)


def load_keras(path: str | Path):
    """Load a Keras model file, with safe mode on unless its artifact was imported with
    ``--trust-model`` (its manifest, beside the file, then carries ``trusted_code``)."""
    from edge_opt._tf import keras

    path = Path(path)
    manifest = path.parent / "manifest.json"
    trusted = False
    if manifest.is_file():
        import json

        trusted = bool(json.loads(manifest.read_text(encoding="utf-8")).get("notes", {}).get("trusted_code"))
    if path.suffix == ".keras":
        return keras().models.load_model(str(path), compile=False, safe_mode=not trusted)
    return keras().models.load_model(str(path), compile=False)


def build(cfg: ModelConfig, input_shape: tuple[int, ...], n_classes: int):
    from edge_opt._tf import keras

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


def dataset_pipeline(x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool, seed: int):
    """tf.data: cache, shuffle, batch, prefetch, so the step never waits on Python."""
    from edge_opt._tf import tf

    tf_ = tf()
    ds = tf_.data.Dataset.from_tensor_slices((x, y)).cache()
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf_.data.AUTOTUNE)


def train(cfg: ModelConfig, data: Dataset, seed: int = 0, verbose: int = 0):
    from edge_opt._tf import keras

    k = keras()
    k.utils.set_random_seed(seed)
    model = build(cfg, data.input_shape, data.n_classes)
    binary = data.n_classes == 2
    model.compile(
        optimizer=k.optimizers.Adam(cfg.learning_rate),
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    y_train = data.y_train.astype("float32") if binary else data.y_train
    y_val = data.y_val.astype("float32") if binary else data.y_val
    model.fit(
        dataset_pipeline(data.x_train, y_train, cfg.batch_size, shuffle=True, seed=seed),
        validation_data=dataset_pipeline(data.x_val, y_val, cfg.batch_size, shuffle=False, seed=seed),
        epochs=cfg.epochs,
        verbose=verbose,
    )
    return model


def train_artifact(
    cfg: ModelConfig, data: Dataset, task: str, out_dir: Path, seed: int = 0, data_config: dict | None = None
) -> Artifact:
    """Train the float model and publish it as the root artifact (format keras)."""
    config = {"task": task, "dataset": data.name, "data": data_config or {}, "model": cfg.model_dump(), "seed": seed}
    with ArtifactWriter(
        out_dir,
        parent=None,
        pass_name="train",
        config=config,
        target=None,
        fmt="keras",
        precision="fp32",
        model_file="model.keras",
        label="float",
    ) as w:
        if w.existing:
            return w.existing
        model = train(cfg, data, seed=seed)
        model.save(str(w.stage / "model.keras"))
        w.notes["parameters"] = int(model.count_params())
        w.notes["input_shape"] = list(data.input_shape)
        return w.publish()


def predicted_labels(outputs: np.ndarray, n_classes: int) -> np.ndarray:
    """Class indices from model outputs (one sigmoid unit, or one score per class)."""
    outputs = np.asarray(outputs)
    if n_classes == 2 and (outputs.ndim == 1 or outputs.shape[-1] == 1):
        return (outputs.reshape(len(outputs)) >= 0.5).astype(np.int64)
    return outputs.reshape(len(outputs), -1).argmax(axis=1)
