"""Dimensionality reduction folded into the graph: PCA, feature selection, ICA, NMF.

Each pass fits a projection ``z = x @ W + b`` (NMF: ``relu(x @ W)``) on the training
split and publishes a Keras model ``raw features → frozen projection → the parent's dense
head, retrained``. The artifact still takes the raw features, so every converter and
runtime downstream sees an ordinary model, and no preprocessing ships beside it.
"""

from __future__ import annotations

import difflib
import warnings
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
from pydantic import Field, model_validator

from edge_opt.core.artifacts import Artifact
from edge_opt.core.errors import BadInputError, ConfigError, UnsupportedTargetError
from edge_opt.core.tfkeras import keras
from edge_opt.datasets import Dataset
from edge_opt.models import fit_classifier, load_keras, predicted_labels
from edge_opt.passes.base import Pass, PassConfig, PassContext

PREFIX = "reduce_"  # names of the layers a reduction adds; a parent holding one is already reduced


class HeadConfig(PassConfig):
    """How the head after the projection is retrained (defaults as in ``ModelConfig``)."""

    epochs: int = Field(default=4, ge=1, le=10_000)
    batch_size: int = Field(default=256, ge=1, le=1_048_576)
    learning_rate: float = Field(default=1e-3, gt=0, le=10)


def _exactly_one(cfg: PassConfig, fields: tuple[str, ...]) -> None:
    given = [f for f in fields if getattr(cfg, f) is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of {', '.join(fields)} (got {', '.join(given) or 'none'})")


class PCAConfig(HeadConfig):
    variance: float | None = Field(default=None, gt=0, lt=1)  # keep components explaining this fraction
    components: int | None = Field(default=None, ge=1, le=100_000)

    @model_validator(mode="after")
    def _one(self):
        _exactly_one(self, ("variance", "components"))
        return self


class ComponentsConfig(HeadConfig):
    components: int = Field(ge=1, le=100_000)
    max_iter: int = Field(default=500, ge=1, le=1_000_000)


class SelectConfig(HeadConfig):
    drop: list[str] | None = Field(default=None, min_length=1)  # feature names
    least_important: int | None = Field(default=None, ge=1, le=100_000)  # drop the k least important
    most_correlated: float | None = Field(default=None, gt=0, lt=1)  # drop one of each pair with |corr| above

    @model_validator(mode="after")
    def _one(self):
        _exactly_one(self, ("drop", "least_important", "most_correlated"))
        return self


class Projection(NamedTuple):
    weights: np.ndarray  # (n_features, k)
    bias: np.ndarray  # (k,)
    relu: bool
    notes: dict[str, Any]


def linear(estimator, notes: dict[str, Any]) -> Projection:
    """PCA and FastICA transform as ``(x - mean_) @ components_.T``."""
    w = estimator.components_.T.astype(np.float64)
    return Projection(w, -estimator.mean_ @ w, False, notes)


class FoldingPass(Pass):
    """Fit ``project`` on the training split, fold it in front of a retrained copy of the parent's head."""

    inputs = ("keras",)
    output = "keras"
    uses = ("data",)
    needs_non_negative: ClassVar[bool] = False

    def label(self, cfg) -> str:
        return f"{self.name}-{cfg.components}"

    def project(self, cfg, x: np.ndarray, data: Dataset, parent, seed: int) -> Projection:
        raise NotImplementedError

    def build(self, parent: Artifact, cfg: Any, model_path: Path, ctx: PassContext, notes: dict) -> None:
        data = ctx.data

        k = keras()
        model_in = load_keras(parent.model_path, trust=ctx.trust_model)
        if tuple(model_in.input_shape[1:]) != data.input_shape:
            raise BadInputError(
                f"pass '{self.name}': the parent takes input {model_in.input_shape[1:]}, the data {data.input_shape}"
            )
        head = self._head_layers(model_in)
        x_train = data.x_train.reshape(len(data.x_train), -1).astype(np.float64)
        if self.needs_non_negative:
            _check_non_negative(self.name, x_train, data.feature_names)
        k.utils.set_random_seed(ctx.seed)
        proj = self.project(cfg, x_train, data, model_in, ctx.seed)
        model = _fold(data.input_shape, proj, head)
        val_accuracy = _train(model, cfg, data, ctx.seed)
        model.save(str(model_path))
        notes.update(proj.notes)
        notes.update(
            input_width=int(x_train.shape[1]),
            kept=int(proj.weights.shape[1]),
            val_accuracy=val_accuracy,
            parameters=int(model.count_params()),
        )

    def _head_layers(self, parent) -> list:
        """Fresh (untrained) copies of the parent's Dense/Dropout layers, widths and activations kept."""
        k = keras()
        layers = []
        for layer in parent.layers:
            if layer.name.startswith(PREFIX):
                raise UnsupportedTargetError(
                    f"pass '{self.name}': the parent is already reduced (layer '{layer.name}'); reduce the float model"
                )
            if isinstance(layer, k.layers.InputLayer | k.layers.Flatten):
                continue
            if not isinstance(layer, k.layers.Dense | k.layers.Dropout):
                raise UnsupportedTargetError(
                    f"pass '{self.name}' rebuilds an MLP head (Dense/Dropout); "
                    f"the parent has {type(layer).__name__} layer '{layer.name}'"
                )
            config = {key: v for key, v in layer.get_config().items() if key not in ("name", "batch_input_shape")}
            layers.append(type(layer).from_config(config))
        return layers


def _check_non_negative(pass_name: str, x: np.ndarray, names: list[str]) -> None:
    mins = x.min(axis=0)
    negative = np.flatnonzero(mins < 0)
    if negative.size:
        j = int(negative[0])
        more = f" (and {negative.size - 1} more columns)" if negative.size > 1 else ""
        raise UnsupportedTargetError(
            f"{pass_name} needs non-negative features; column '{names[j]}' has min {mins[j]:.2f} "
            f"on the training split{more}"
        )


def _fold(input_shape: tuple[int, ...], proj: Projection, head: list):
    k = keras()
    inputs = k.Input(shape=input_shape, name="features")
    x = k.layers.Flatten(name=f"{PREFIX}flatten")(inputs) if len(input_shape) > 1 else inputs
    dense = k.layers.Dense(proj.weights.shape[1], name=f"{PREFIX}projection", trainable=False)
    x = dense(x)
    dense.set_weights([proj.weights.astype(np.float32), proj.bias.astype(np.float32)])
    if proj.relu:
        x = k.layers.ReLU(name=f"{PREFIX}relu")(x)
    for layer in head:
        x = layer(x)
    return k.Model(inputs, x, name="reduced")


def _train(model, cfg: HeadConfig, data: Dataset, seed: int) -> float:
    """Fit the head (the projection is frozen) and return the val accuracy."""
    fit_classifier(
        model,
        data.x_train,
        data.y_train,
        data.n_classes,
        learning_rate=cfg.learning_rate,
        batch_size=cfg.batch_size,
        epochs=cfg.epochs,
        seed=seed,
    )
    pred = predicted_labels(np.asarray(model(data.x_val, training=False)), data.n_classes)
    return float((pred == data.y_val).mean())


def _check_components(pass_name: str, n: int, x: np.ndarray) -> None:
    if n > min(x.shape):
        raise ConfigError(f"pass '{pass_name}': components {n} > min(rows, features) = {min(x.shape)}")


class PCAPass(FoldingPass):
    name = "pca"
    description = "PCA fitted on the train split, folded into the graph as a frozen Dense; the MLP head retrained"
    Config = PCAConfig

    def label(self, cfg: PCAConfig) -> str:
        return f"pca-{cfg.components}" if cfg.components else f"pca-var{cfg.variance:g}"

    def project(self, cfg: PCAConfig, x, data, parent, seed) -> Projection:
        from sklearn.decomposition import PCA

        if cfg.components:
            _check_components(self.name, cfg.components, x)
        # Tall data (the usual case): the eigendecomposition of the small covariance matrix is exact and cheap.
        solver = "covariance_eigh" if x.shape[0] >= x.shape[1] else "full"
        pca = PCA(n_components=cfg.components or cfg.variance, svd_solver=solver, random_state=seed).fit(x)
        return linear(
            pca,
            {"components": int(pca.n_components_), "explained_variance": float(pca.explained_variance_ratio_.sum())},
        )


class ICAPass(FoldingPass):
    name = "ica"
    description = "FastICA unmixing folded in as a frozen Dense; head retrained"
    Config = ComponentsConfig

    def project(self, cfg: ComponentsConfig, x, data, parent, seed) -> Projection:
        from sklearn.decomposition import FastICA
        from sklearn.exceptions import ConvergenceWarning

        _check_components(self.name, cfg.components, x)
        ica = FastICA(n_components=cfg.components, max_iter=cfg.max_iter, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # reported in the notes instead
            ica.fit(x)
        return linear(ica, {"components": cfg.components, "iterations": int(ica.n_iter_)})


class NMFPass(FoldingPass):
    """NMF's transform solves a non-negative least squares per sample, which is no graph op.

    It is folded as ``relu(x @ pinv(H))``: the least-squares codes clipped at 0. That is exact
    when the unconstrained codes are non-negative and an approximation otherwise; the notes
    give its relative error against ``NMF.transform`` on the val split. The head is trained
    on the folded codes, so training sees what ships.
    """

    name = "nmf"
    description = "NMF folded approximately as relu(x @ pinv(H)); needs non-negative features; head retrained"
    Config = ComponentsConfig
    needs_non_negative = True

    def project(self, cfg: ComponentsConfig, x, data, parent, seed) -> Projection:
        from sklearn.decomposition import NMF
        from sklearn.exceptions import ConvergenceWarning

        _check_components(self.name, cfg.components, x)
        nmf = NMF(n_components=cfg.components, init="nndsvda", max_iter=cfg.max_iter, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            nmf.fit(x)
        w = np.linalg.pinv(nmf.components_.astype(np.float64))
        x_val = data.x_val.reshape(len(data.x_val), -1).astype(np.float64)
        exact = nmf.transform(x_val)
        folded = np.maximum(x_val @ w, 0)
        error = float(np.linalg.norm(folded - exact) / max(np.linalg.norm(exact), 1e-12))
        notes = {
            "components": cfg.components,
            "iterations": int(nmf.n_iter_),
            "reconstruction_error": float(nmf.reconstruction_err_),
            "fold_relative_error": error,
        }
        return Projection(w, np.zeros(cfg.components), True, notes)


class FeatureSelectPass(FoldingPass):
    """Keep a subset of the raw features through a frozen 0/1 selection matrix (a Dense layer).

    ``least_important`` ranks features by permutation importance of the parent on the val
    split: the mean rise in log-loss when a column is shuffled (3 seeded repeats); ties (for
    example one-hot columns that are all zero in val) drop the later column first.
    """

    name = "select_features"
    description = (
        "Drop features (by name, least permutation-important, or correlated) via a frozen 0/1 Dense; head retrained"
    )
    Config = SelectConfig
    repeats = 3

    def label(self, cfg: SelectConfig) -> str:
        if cfg.drop:
            return f"select-drop{len(cfg.drop)}"
        if cfg.least_important:
            return f"select-least{cfg.least_important}"
        return f"select-corr{cfg.most_correlated:g}"

    def project(self, cfg: SelectConfig, x, data, parent, seed) -> Projection:
        names = data.feature_names
        notes: dict[str, Any] = {}
        if cfg.drop:
            unknown = [n for n in cfg.drop if n not in names]
            if unknown:
                close = difflib.get_close_matches(unknown[0], names, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise ConfigError(f"pass '{self.name}': unknown feature '{unknown[0]}'{hint}")
            dropped = [names.index(n) for n in dict.fromkeys(cfg.drop)]
            notes["method"] = "drop"
        elif cfg.least_important:
            if cfg.least_important >= len(names):
                raise ConfigError(f"pass '{self.name}': least_important {cfg.least_important} leaves no feature")
            importance = self._importance(parent, data, seed)
            order = sorted(range(len(names)), key=lambda j: (importance[j], -j))
            dropped = order[: cfg.least_important]
            notes["method"] = "permutation importance (val log-loss rise)"
            notes["importance"] = {names[j]: round(float(importance[j]), 6) for j in dropped}
        else:
            dropped = _correlated(x, cfg.most_correlated)
            notes["method"] = f"|corr| > {cfg.most_correlated:g} on train"
        keep = sorted(set(range(len(names))) - set(dropped))
        notes["dropped"] = [names[j] for j in sorted(dropped)]
        return Projection(np.eye(len(names))[:, keep], np.zeros(len(keep)), False, notes)

    def _importance(self, parent, data: Dataset, seed: int) -> np.ndarray:
        x = data.x_val.reshape(len(data.x_val), -1)
        y = np.tile(data.y_val, self.repeats)
        base = _log_loss(parent, x, data.y_val, data)
        rng = np.random.default_rng(seed)
        stacked = np.tile(x, (self.repeats, 1))  # the repeats side by side: one model call per column
        rise = np.zeros(x.shape[1])
        for j in range(x.shape[1]):
            stacked[:, j] = np.concatenate([x[rng.permutation(len(x)), j] for _ in range(self.repeats)])
            rise[j] = _log_loss(parent, stacked, y, data) - base
            stacked[:, j] = np.tile(x[:, j], self.repeats)
        return rise


def _log_loss(model, x: np.ndarray, y: np.ndarray, data: Dataset) -> float:
    p = np.asarray(model(x.reshape(len(x), *data.input_shape), training=False), dtype=np.float64)
    p = np.clip(p.reshape(len(p), -1), 1e-7, 1 - 1e-7)
    if p.shape[1] == 1:  # one sigmoid unit; a two-class softmax head has a score per class
        p1 = p.reshape(len(p))
        return float(-np.mean(y * np.log(p1) + (1 - y) * np.log(1 - p1)))
    return float(-np.mean(np.log(p[np.arange(len(p)), y])))


def _correlated(x: np.ndarray, threshold: float) -> list[int]:
    """Columns with |corr| > threshold to an earlier kept column (constant columns correlate with none)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.nan_to_num(np.abs(np.corrcoef(x, rowvar=False)))
    dropped: set[int] = set()
    for j in range(x.shape[1]):
        if any(corr[i, j] > threshold for i in range(j) if i not in dropped):
            dropped.add(j)
    return sorted(dropped)
