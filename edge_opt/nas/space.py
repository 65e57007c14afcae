"""Search spaces as data: the ``nas:`` block of a suite task, validated by pydantic.

A space is a tabular MLP or a small image CNN. Its hyperparameters become a keras-tuner
``HyperModel`` (``hypermodel``); ``Architecture`` is one point of the space as a plain,
typed record, so the same code builds a trial's model, the chosen model and the corners.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from edge_opt.core.config import Strict
from edge_opt.core.errors import ConfigError, first_line
from edge_opt.core.tfkeras import keras
from edge_opt.models import ModelConfig

Activation = Literal["relu", "tanh", "sigmoid", "elu", "swish"]
MAX_PARAMS = 50_000_000  # a model for an edge device; a corner past this is a typo, not a candidate


class IntRange(Strict):
    min: int = Field(ge=1, le=16)
    max: int = Field(ge=1, le=16)

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        return self

    @property
    def values(self) -> list[int]:
        return list(range(self.min, self.max + 1))


def _choices(item: Any, default: list) -> Any:
    return Annotated[list[item], Field(default_factory=lambda: list(default), min_length=1)]


class MlpSpace(Strict):
    """Tabular MLP: depth, width per layer, activation, dropout, optional PCA components in front."""

    kind: Literal["mlp"] = "mlp"
    depth: IntRange = IntRange(min=1, max=2)
    width: _choices(Annotated[int, Field(ge=1, le=16384)], [16, 32, 64, 128, 256])  # per layer
    activation: _choices(Activation, ["relu"])
    dropout: _choices(Annotated[float, Field(ge=0, lt=1)], [0.0, 0.1])
    pca: _choices(Annotated[int, Field(ge=0, le=100_000)], [0])  # 0: no PCA; k: k components folded in front (frozen)

    def grid_size(self) -> int:
        per_depth = sum(len(self.width) ** d for d in self.depth.values)
        return per_depth * len(self.activation) * len(self.dropout) * len(self.pca)


class CnnSpace(Strict):
    """Image CNN: blocks, filters, kernel size, standard vs depthwise-separable conv, stride/pooling, width."""

    kind: Literal["cnn"] = "cnn"
    blocks: IntRange = IntRange(min=1, max=2)
    filters: _choices(Annotated[int, Field(ge=1, le=4096)], [8, 16, 32])  # of the first block; doubles per block
    kernel: _choices(Annotated[int, Field(ge=1, le=7)], [3])
    conv: _choices(Literal["standard", "separable"], ["standard", "separable"])
    downsample: _choices(Literal["pool", "stride", "none"], ["pool"])
    width_multiplier: _choices(Annotated[float, Field(gt=0, le=4)], [1.0])

    def grid_size(self) -> int:
        return (
            len(self.blocks.values)
            * len(self.filters)
            * len(self.kernel)
            * len(self.conv)
            * len(self.downsample)
            * len(self.width_multiplier)
        )


Space = Annotated[MlpSpace | CnnSpace, Field(discriminator="kind")]


class PredictorConfig(Strict):
    """The latency predictor: fitted after ``after`` measured trials; a candidate predicted over
    ``skip_factor`` x the latency budget is not trained (recorded as skipped, a prediction).
    Each measured trial is profiled per op over ``ops_runs`` invokes (0: no profiles), and the
    predictor learns the time per op type from the profiles."""

    after: int = Field(default=5, ge=3, le=1000)
    skip_factor: float = Field(default=2.0, gt=1, le=1000)
    ops_runs: int = Field(default=20, ge=0, le=100_000)


class NasConfig(Strict):
    """``model: {kind: nas, ...}`` in a suite task, or the ``nas:`` block of a space file."""

    kind: Literal["nas"] = "nas"
    space: Space = MlpSpace()
    baseline: ModelConfig = ModelConfig()  # the hand-designed model, measured the same way
    trials: int = Field(default=8, ge=1, le=1000)
    oracle: Literal["random", "bayesian", "hyperband"] = "bayesian"
    objective: Literal["soft", "hard"] = "soft"  # MnasNet reward, or the profile's budgets as hard constraints
    weight: float = Field(default=-0.07, le=0, ge=-100)  # w in ACC * (LAT / T) ** w
    latency_target_ms: float | None = Field(
        default=None, gt=0, le=3_600_000
    )  # T; default: the profile's latency.p90 budget
    epochs: int = Field(default=1, ge=1, le=100)  # brief training of each trial
    train_rows: int | None = Field(default=2000, ge=100, le=10_000_000)  # rows each trial trains on (None: all)
    val_rows: int = Field(default=1000, ge=10, le=10_000_000)  # rows the deployed file's accuracy is measured on
    holdout: float = Field(default=0.0, ge=0, lt=0.9)  # share of train added to the val rows (not trained on)
    batch_size: int = Field(default=128, ge=1, le=1_048_576)
    learning_rate: float = Field(default=3e-3, gt=0, le=10)
    final_epochs: int | None = Field(
        default=None, ge=1, le=10_000
    )  # the chosen model's training (None: the baseline's)
    targets: list[str] | None = None  # profiles to search for (None: every target of the suite)
    pipeline: int = Field(default=0, ge=0, le=1000)  # which of the profile's pipelines deploys a trial
    predictor: PredictorConfig | None = PredictorConfig()
    compare_random: bool = False  # the same search with RandomSearch at equal trials beside it
    target_distance: float = Field(default=0.01, ge=0, le=1)  # trials-to-target: within this of the final best score
    parallel: int = Field(default=1, ge=1, le=64)  # trials trained at once (local processes, or Ray tasks)


class Architecture(Strict):
    """One point of a space: what a trial builds."""

    kind: Literal["mlp", "cnn"]
    hidden: list[int]  # mlp: widths; cnn: filters per block (width multiplier applied)
    activation: str = "relu"
    dropout: float = 0.0
    pca: int = 0
    kernel: int = 3
    conv: str = "standard"
    downsample: str = "pool"

    def describe(self) -> str:
        if self.kind == "mlp":
            pca = f"pca{self.pca}-" if self.pca else ""
            return f"{pca}mlp{'x'.join(map(str, self.hidden))}-{self.activation}-d{self.dropout:g}"
        return f"cnn{'x'.join(map(str, self.hidden))}-k{self.kernel}-{self.conv}-{self.downsample}"


def architecture(space: MlpSpace | CnnSpace, values: dict[str, Any]) -> Architecture:
    """The architecture a set of hyperparameter values (keras-tuner's ``hp.values``) names."""
    if isinstance(space, MlpSpace):
        depth = int(values["depth"])
        return Architecture(
            kind="mlp",
            hidden=[int(values[f"width_{i}"]) for i in range(depth)],
            activation=values["activation"],
            dropout=float(values["dropout"]),
            pca=int(values["pca"]),
        )
    mult = float(values["width_multiplier"])
    base = int(values["filters"])
    return Architecture(
        kind="cnn",
        hidden=[max(1, round(base * 2**i * mult)) for i in range(int(values["blocks"]))],
        kernel=int(values["kernel"]),
        conv=values["conv"],
        downsample=values["downsample"],
    )


def baseline_architecture(cfg: ModelConfig) -> Architecture:
    """The hand-designed model as a point (outside the space, perhaps), so it is built the same way."""
    return Architecture(kind=cfg.kind, hidden=list(cfg.hidden), dropout=cfg.dropout if cfg.kind == "mlp" else 0.0)


def corners(space: MlpSpace | CnnSpace) -> dict[str, dict[str, Any]]:
    """The smallest and the largest point of a space, as hyperparameter values."""
    if isinstance(space, MlpSpace):
        small = {"depth": space.depth.min, "activation": space.activation[0], "dropout": min(space.dropout)}
        large = {"depth": space.depth.max, "activation": space.activation[0], "dropout": max(space.dropout)}
        small |= {f"width_{i}": min(space.width) for i in range(space.depth.max)} | {"pca": min(space.pca)}
        large |= {f"width_{i}": max(space.width) for i in range(space.depth.max)} | {"pca": max(space.pca)}
        return {"smallest": small, "largest": large}
    common = {"conv": space.conv[0]}
    small = {
        "blocks": space.blocks.min,
        "filters": min(space.filters),
        "kernel": min(space.kernel),
        "downsample": space.downsample[0],
        "width_multiplier": min(space.width_multiplier),
    }
    large = {
        "blocks": space.blocks.max,
        "filters": max(space.filters),
        "kernel": max(space.kernel),
        "downsample": "none" if "none" in space.downsample else space.downsample[0],
        "width_multiplier": max(space.width_multiplier),
    }
    # The deepest stack with downsampling is what runs out of pixels: check it too.
    shrink = {**large, "downsample": next((d for d in space.downsample if d != "none"), large["downsample"])}
    return {"smallest": common | small, "largest": common | large, "deepest downsampled": common | shrink}


def build(arch: Architecture, input_shape: tuple[int, ...], n_classes: int, pca=None):
    """A tf_keras model for ``arch``. ``pca``: (mean, components) of a PCA fitted on the train split,
    folded in front as a frozen Dense layer, so the model still takes the raw features."""
    k = keras()
    inputs = k.Input(shape=input_shape, name="features")
    x = inputs
    if arch.kind == "cnn":
        for filters in arch.hidden:
            stride = 2 if arch.downsample == "stride" else 1
            if arch.conv == "separable":
                x = k.layers.SeparableConv2D(filters, arch.kernel, strides=stride, padding="same", activation="relu")(x)
            else:
                x = k.layers.Conv2D(filters, arch.kernel, strides=stride, padding="same", activation="relu")(x)
            if arch.downsample == "pool":
                x = k.layers.MaxPooling2D(2)(x)
        x = k.layers.Flatten()(x)
    else:
        x = k.layers.Flatten()(x) if len(input_shape) > 1 else x
        if arch.pca:
            mean, comps = pca
            layer = k.layers.Dense(arch.pca, name="pca", trainable=False)
            x = layer(x)
            layer.set_weights([comps.T.astype("float32"), (-mean @ comps.T).astype("float32")])
        for width in arch.hidden:
            x = k.layers.Dense(width, activation=arch.activation)(x)
            if arch.dropout:
                x = k.layers.Dropout(arch.dropout)(x)
    binary = n_classes == 2
    outputs = k.layers.Dense(1 if binary else n_classes, activation="sigmoid" if binary else "softmax")(x)
    return k.Model(inputs, outputs, name=arch.kind)


def fit_pca(x_train, components: int, seed: int = 0):
    """(mean, components) of a PCA of the flattened train rows; refused when it cannot have that many."""
    from sklearn.decomposition import PCA

    flat = x_train.reshape(len(x_train), -1)
    if components > min(flat.shape):
        raise ConfigError(f"pca: {components} components, but the data has {flat.shape[1]} features")
    pca = PCA(components, random_state=seed).fit(flat)
    return pca.mean_, pca.components_


def count_params(arch: Architecture, input_shape: tuple[int, ...], n_classes: int) -> int:
    """The parameters :func:`build` makes for ``arch``, counted without building it (a corner of
    billions of parameters would run out of memory before Keras could count them)."""
    import math

    convs = 0
    if arch.kind == "mlp":
        widths = [math.prod(input_shape), *([arch.pca] if arch.pca else []), *arch.hidden]
    else:
        h, w, c = input_shape
        for filters in arch.hidden:
            k2 = arch.kernel * arch.kernel
            convs += (k2 * c + c * filters if arch.conv == "separable" else k2 * c * filters) + filters
            c = filters
            if arch.downsample == "stride":  # "same" padding, stride 2
                h, w = -(-h // 2), -(-w // 2)
            if arch.downsample == "pool":  # MaxPooling2D(2), "valid"
                h, w = h // 2, w // 2
        widths = [h * w * c]
    head = 1 if n_classes == 2 else n_classes
    return convs + sum(a * b + b for a, b in zip(widths, [*widths[1:], head], strict=True))


def check_space(space: MlpSpace | CnnSpace, input_shape: tuple[int, ...], n_classes: int, where: str) -> None:
    """Build every corner of the space before any training: one that cannot build is a ConfigError."""
    import numpy as np

    features = int(np.prod(input_shape))
    for name, values in corners(space).items():
        arch = architecture(space, values)
        if arch.kind == "cnn" and len(input_shape) != 3:
            raise ConfigError(f"{where}: a cnn space needs image inputs (H, W, C); this data has shape {input_shape}")
        if arch.pca and arch.pca > features:
            raise ConfigError(f"{where}: the {name} corner asks for {arch.pca} PCA components of {features} features")
        params = count_params(arch, input_shape, n_classes)  # before building: a huge corner would run out of memory
        if params > MAX_PARAMS:
            raise ConfigError(
                f"{where}: the {name} corner ({arch.describe()}) has {params:,} parameters, over {MAX_PARAMS:,}"
            )
        pca = (np.zeros(features), np.eye(arch.pca, features)) if arch.pca else None
        try:
            model = build(arch, input_shape, n_classes, pca)
        except Exception as exc:  # noqa: BLE001 - Keras raises many types for a shape that does not work
            raise ConfigError(
                f"{where}: the {name} corner ({arch.describe()}) cannot build: {first_line(exc)}"
            ) from None
        if model.count_params() != params:  # the count below must follow build(); a change to one needs the other
            raise AssertionError(f"count_params says {params:,}, Keras {model.count_params():,} for {arch.describe()}")


def hypermodel(space: MlpSpace | CnnSpace, input_shape: tuple[int, ...], n_classes: int, pcas: dict | None = None):
    """The space as a keras-tuner ``HyperModel``: ``build(hp)`` declares the hyperparameters and builds."""
    import keras_tuner as kt

    class SpaceHyperModel(kt.HyperModel):
        def declare(self, hp) -> dict[str, Any]:
            """Register the space's hyperparameters on ``hp`` and return their values."""
            if isinstance(space, MlpSpace):
                hp.Int("depth", space.depth.min, space.depth.max)
                for i in range(space.depth.max):
                    hp.Choice(f"width_{i}", space.width)
                hp.Choice("activation", space.activation)
                hp.Choice("dropout", space.dropout)
                hp.Choice("pca", space.pca)
            else:
                hp.Int("blocks", space.blocks.min, space.blocks.max)
                hp.Choice("filters", space.filters)
                hp.Choice("kernel", space.kernel)
                hp.Choice("conv", space.conv)
                hp.Choice("downsample", space.downsample)
                hp.Choice("width_multiplier", space.width_multiplier)
            return dict(hp.values)

        def build(self, hp):
            arch = architecture(space, self.declare(hp))
            return build(arch, input_shape, n_classes, (pcas or {}).get(arch.pca))

    return SpaceHyperModel(name=f"{space.kind}-space")


def grid_size(space: MlpSpace | CnnSpace) -> int:
    return space.grid_size()
