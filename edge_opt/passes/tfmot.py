"""Training-aware compression with TensorFlow Model Optimization: pruning, clustering, QAT.

Each pass loads the parent Keras model, wraps it, fine-tunes it on ``ctx.data``'s train
split and publishes a new artifact; the parent is only read. Pruning and clustering keep
the model's output layer dense by default (``include_output: false``): it is tiny and the
most sensitive to damage. The fine-tune seed and a fingerprint of the training data are
hashed into the artifact id with the config, since they change the weights.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from edge_opt.core.artifacts import Artifact
from edge_opt.core.errors import ConfigError, UnsupportedTargetError, first_line
from edge_opt.core.tfkeras import keras, tf
from edge_opt.datasets import Dataset
from edge_opt.models import fit_classifier, load_keras, predicted_labels
from edge_opt.passes.base import Pass, PassConfig, PassContext
from edge_opt.runtimes import get_backend_class


class FineTuneConfig(PassConfig):
    epochs: int = Field(default=1, ge=1, le=10_000)
    batch_size: int = Field(default=128, ge=1, le=1_048_576)
    learning_rate: float = Field(default=1e-3, gt=0, le=10)


class PruneConfig(FineTuneConfig):
    epochs: int = Field(default=2, ge=1, le=10_000)
    initial_sparsity: float = Field(default=0.0, ge=0, lt=1)
    target_sparsity: float = Field(default=0.8, gt=0, lt=1)
    include_output: bool = False  # prune the output layer's kernel too
    # Per pruned layer, its own target sparsity (0: not pruned): the repair loop's per-layer back-off.
    per_layer: dict[str, Annotated[float, Field(ge=0, lt=1)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ramp_up(self):
        if self.initial_sparsity > self.target_sparsity:
            raise ValueError("initial_sparsity must not exceed target_sparsity")
        return self


class ClusterConfig(FineTuneConfig):
    number_of_clusters: int = Field(default=16, ge=2, le=256)
    centroid_init: Literal["linear", "kmeans_plus_plus", "density_based", "random"] = "kmeans_plus_plus"
    include_output: bool = False  # cluster the output layer's kernel too
    # Per clustered layer, its own number of clusters: the repair loop's per-layer back-off.
    per_layer: dict[str, Annotated[int, Field(ge=2, le=256)]] = Field(default_factory=dict)


class QATConfig(FineTuneConfig):
    io: Literal["float", "int8"] = "float"
    preserve: Literal["none", "sparsity", "clusters"] = "none"  # PQAT / CQAT for pruned / clustered parents


def _tfmot():
    k = keras()  # selects tf_keras before tfmot looks for Keras
    import tensorflow_model_optimization as tfmot

    return k, tfmot


def _need_data(name: str, ctx: PassContext) -> Dataset:
    if ctx.data is None:
        raise UnsupportedTargetError(f"pass '{name}' needs labelled training data (--train FILE); skipped")
    return ctx.data


def _kernel_layers(model, include_output: bool) -> list[str]:
    """Names of the layers with a weight kernel (Dense, Conv...), the output layer optional."""
    outputs = set(model.output_names)
    return [
        layer.name
        for layer in model.layers
        if getattr(layer, "kernel", None) is not None and (include_output or layer.name not in outputs)
    ]


def _own_settings(pass_name: str, per_layer: dict, names: list[str]) -> None:
    """Refuse a ``per_layer`` entry for a layer the pass does not compress."""
    unknown = sorted(set(per_layer) - set(names))
    if unknown:
        raise ConfigError(
            f"pass '{pass_name}': per_layer names {', '.join(unknown)}, not a layer it compresses "
            f"({', '.join(names) or 'none'})"
        )


def _wrap_layers(k, model, names: list[str], wrap):
    # The other layers are reused as they are, weights included (the model is our own copy).
    return k.models.clone_model(model, clone_function=lambda layer: wrap(layer) if layer.name in names else layer)


def _fine_tune(model, data: Dataset, cfg: FineTuneConfig, seed: int, callbacks=()) -> None:
    fit_classifier(
        model,
        data.x_train,
        data.y_train,
        data.n_classes,
        learning_rate=cfg.learning_rate,
        batch_size=cfg.batch_size,
        epochs=cfg.epochs,
        seed=seed,
        callbacks=callbacks,
    )


def _val_accuracy(predict, data: Dataset) -> float:
    return round(float((predicted_labels(predict(data.x_val), data.n_classes) == data.y_val).mean()), 4)


def _keras_predict(model):
    # Calling the model directly skips tracing a predict function (seconds, for tiny data).
    return lambda x: np.concatenate([model(x[i : i + 4096], training=False).numpy() for i in range(0, len(x), 4096)])


def _load(k, artifact: Artifact, ctx: PassContext):
    return load_keras(artifact.model_path, trust=ctx.trust_model)


class PrunePass(Pass):
    name = "prune"
    Config = PruneConfig
    inputs = ("keras",)
    output = "keras"
    description = "Magnitude pruning (tfmot, polynomial ramp to target_sparsity) with a fine-tune; needs training data"
    uses = ("data",)

    def label(self, cfg: PruneConfig) -> str:
        return f"prune-{round(cfg.target_sparsity * 100)}" + (f"-per{len(cfg.per_layer)}" if cfg.per_layer else "")

    def compressed(self, cfg: PruneConfig, model) -> list[str]:
        return [n for n in _kernel_layers(model, cfg.include_output) if cfg.per_layer.get(n, 1.0) > 0]

    def backoff(self, cfg: PruneConfig, layer: str) -> PruneConfig | None:
        """``layer``'s sparsity 0.1 lower; under 0.3 the layer is not pruned; None once it is not."""
        now = cfg.per_layer.get(layer, cfg.target_sparsity)
        if now <= 0:
            return None
        lower = round(now - 0.1, 2)
        return self.config({**cfg.model_dump(), "per_layer": {**cfg.per_layer, layer: lower if lower >= 0.3 else 0.0}})

    def relaxations(self, cfg: PruneConfig) -> list[PruneConfig]:
        """The target sparsity 0.1 lower, then 0.2 lower (not under 0.3 nor the initial sparsity)."""
        lower = [round(cfg.target_sparsity - d, 2) for d in (0.1, 0.2)]
        floor = max(0.3, cfg.initial_sparsity)
        return [self.config({**cfg.model_dump(), "target_sparsity": t}) for t in lower if t >= floor]

    def build(self, parent: Artifact, cfg: Any, model_path: Path, ctx: PassContext, notes: dict) -> None:
        data = _need_data(self.name, ctx)
        k, tfmot = _tfmot()
        k.utils.set_random_seed(ctx.seed)
        model = _load(k, parent, ctx)
        _own_settings(self.name, cfg.per_layer, _kernel_layers(model, cfg.include_output))
        names = self.compressed(cfg, model)
        if not names:
            raise UnsupportedTargetError(f"pass 'prune': model {parent.id} has no layer with a kernel to prune")
        accuracy_before = _val_accuracy(_keras_predict(model), data)

        # Sparsity ramps up over the first 2/3 of the steps, the rest lets accuracy recover.
        # Steps count from 1 and the mask is updated every `frequency` steps, so `end` must
        # be a multiple of `frequency` for the target sparsity to be reached.
        steps = math.ceil(len(data.x_train) / cfg.batch_size) * cfg.epochs
        ramp = max(1, steps * 2 // 3)
        frequency = max(1, ramp // 10)
        end = ramp // frequency * frequency
        sparsity = tfmot.sparsity.keras

        def schedule(layer):  # the layer's own target, when per_layer gives it one
            target = cfg.per_layer.get(layer.name, cfg.target_sparsity)
            return sparsity.PolynomialDecay(min(cfg.initial_sparsity, target), target, 0, end, frequency=frequency)

        pruned = _wrap_layers(
            k, model, names, lambda layer: sparsity.prune_low_magnitude(layer, pruning_schedule=schedule(layer))
        )
        _fine_tune(pruned, data, cfg, ctx.seed, [sparsity.UpdatePruningStep()])
        final = sparsity.strip_pruning(pruned)

        per_layer = {n: float(np.mean(final.get_layer(n).kernel.numpy() == 0)) for n in names}
        zeros = sum(int(np.sum(final.get_layer(n).kernel.numpy() == 0)) for n in names)
        total = sum(int(np.size(final.get_layer(n).kernel.numpy())) for n in names)
        notes["pruned_layers"] = {n: round(s, 4) for n, s in per_layer.items()}
        notes["sparsity"] = round(zeros / total, 4)  # over the pruned kernels
        notes["schedule"] = {"end_step": end, "frequency": frequency, "steps": steps}
        notes["val_accuracy_before"] = accuracy_before
        notes["val_accuracy"] = _val_accuracy(_keras_predict(final), data)
        final.save(str(model_path))


class ClusterPass(Pass):
    name = "cluster"
    Config = ClusterConfig
    inputs = ("keras",)
    output = "keras"
    description = (
        "Weight clustering (tfmot, number_of_clusters shared values per kernel) with a fine-tune; needs training data"
    )
    uses = ("data",)

    def label(self, cfg: ClusterConfig) -> str:
        return f"cluster-{cfg.number_of_clusters}" + (f"-per{len(cfg.per_layer)}" if cfg.per_layer else "")

    def compressed(self, cfg: ClusterConfig, model) -> list[str]:
        """The kernel layers with more weights than their clusters (fewer have nothing to share)."""
        return [
            n
            for n in _kernel_layers(model, cfg.include_output)
            if np.size(model.get_layer(n).kernel.numpy()) > cfg.per_layer.get(n, cfg.number_of_clusters)
        ]

    def backoff(self, cfg: ClusterConfig, layer: str) -> ClusterConfig | None:
        """Twice ``layer``'s clusters (at most 256); None once it has 256."""
        now = cfg.per_layer.get(layer, cfg.number_of_clusters)
        if now >= 256:
            return None
        return self.config({**cfg.model_dump(), "per_layer": {**cfg.per_layer, layer: min(256, now * 2)}})

    def relaxations(self, cfg: ClusterConfig) -> list[ClusterConfig]:
        """Twice the clusters, then four times (at most 256)."""
        more = [n for n in (cfg.number_of_clusters * 2, cfg.number_of_clusters * 4) if n <= 256]
        return [self.config({**cfg.model_dump(), "number_of_clusters": n}) for n in more]

    def build(self, parent: Artifact, cfg: Any, model_path: Path, ctx: PassContext, notes: dict) -> None:
        data = _need_data(self.name, ctx)
        k, tfmot = _tfmot()
        k.utils.set_random_seed(ctx.seed)
        model = _load(k, parent, ctx)
        _own_settings(self.name, cfg.per_layer, _kernel_layers(model, cfg.include_output))
        names = self.compressed(cfg, model)
        if not names:
            raise UnsupportedTargetError(
                f"pass 'cluster': model {parent.id} has no kernel with more than "
                f"{cfg.number_of_clusters} weights to cluster"
            )
        accuracy_before = _val_accuracy(_keras_predict(model), data)

        clustering = tfmot.clustering.keras
        init = clustering.CentroidInitialization[cfg.centroid_init.upper()]
        clustered = _wrap_layers(
            k,
            model,
            names,
            lambda layer: clustering.cluster_weights(
                layer,
                number_of_clusters=cfg.per_layer.get(layer.name, cfg.number_of_clusters),
                cluster_centroids_init=init,
            ),
        )
        _fine_tune(clustered, data, cfg, ctx.seed)
        final = clustering.strip_clustering(clustered)

        notes["unique_weights"] = {n: int(np.unique(final.get_layer(n).kernel.numpy()).size) for n in names}
        notes["val_accuracy_before"] = accuracy_before
        notes["val_accuracy"] = _val_accuracy(_keras_predict(final), data)
        final.save(str(model_path))


def _scheme(tfmot, preserve: str):
    if preserve == "sparsity":
        return tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
    if preserve == "clusters":
        return tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)
    return tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme()


_WEIGHT_OPS = {"FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D"}


def inspect_tflite(path: Path) -> dict[str, Any]:
    """Input/output dtypes, float tensors inside the graph, zeros and distinct values in the weights.

    ``weight_unique_values`` has one count per Conv/Dense weight tensor, in execution order.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(
        model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    interp.allocate_tensors()
    io = {d["index"] for d in interp.get_input_details() + interp.get_output_details()}
    tensors = interp.get_tensor_details()
    ops = interp._get_ops_details()  # private, but the only way to tell weights from activations
    values = [interp.get_tensor(op["inputs"][1]) for op in ops if op["op_name"] in _WEIGHT_OPS]
    return {
        "input_dtype": np.dtype(interp.get_input_details()[0]["dtype"]).name,
        "output_dtype": np.dtype(interp.get_output_details()[0]["dtype"]).name,
        "float_tensors": sorted(t["name"] for t in tensors if t["dtype"] == np.float32 and t["index"] not in io),
        "weight_dtypes": sorted({v.dtype.name for v in values}),
        "weight_sparsity": round(sum(int(np.sum(v == 0)) for v in values) / max(1, sum(v.size for v in values)), 4),
        "weight_unique_values": [int(np.unique(v).size) for v in values],
    }


class QATPass(Pass):
    name = "qat"
    Config = QATConfig
    inputs = ("keras",)
    output = "tflite"
    description = "Quantization-aware training (tfmot 8-bit, optionally pruning- or cluster-preserving) → int8 LiteRT"
    uses = ("data",)

    def precision(self, cfg: QATConfig) -> str:
        return "int8"

    def label(self, cfg: QATConfig) -> str:
        prefix = {"none": "qat", "sparsity": "pqat", "clusters": "cqat"}[cfg.preserve]
        return f"{prefix}-int8" + ("-int8io" if cfg.io == "int8" else "")

    def build(self, parent: Artifact, cfg: Any, model_path: Path, ctx: PassContext, notes: dict) -> None:
        data = _need_data(self.name, ctx)

        k, tfmot = _tfmot()
        tf_ = tf()
        k.utils.set_random_seed(ctx.seed)
        model = _load(k, parent, ctx)
        accuracy_before = _val_accuracy(_keras_predict(model), data)
        # Dropout, pooling, Flatten are supported; BatchNormalization only where tfmot folds it
        # into the Conv/Dense before it, so let tfmot's own transforms decide, then name the layer.
        quant = tfmot.quantization.keras
        try:
            qat = quant.quantize_apply(quant.quantize_annotate_model(model), _scheme(tfmot, cfg.preserve))
        except (ValueError, RuntimeError) as exc:
            why = first_line(exc).split(". You can quantize")[0]
            raise UnsupportedTargetError(
                f"pass 'qat' cannot quantize model {parent.id} with tfmot's 8-bit scheme: {why}"
            ) from None
        _fine_tune(qat, data, cfg, ctx.seed)

        # The fake-quant ranges learnt in training replace a representative dataset. Not
        # setting supported_ops=INT8: TF 2.21 then demands a representative dataset even for
        # a QAT model; the inspection below checks that the result is int8 instead.
        converter = tf_.lite.TFLiteConverter.from_keras_model(qat)
        converter.optimizations = [tf_.lite.Optimize.DEFAULT]
        if cfg.io == "int8":
            converter.inference_input_type = tf_.int8
            converter.inference_output_type = tf_.int8
        path = model_path
        path.write_bytes(converter.convert())

        facts = inspect_tflite(path)
        if facts["float_tensors"] or facts["weight_dtypes"] != ["int8"]:
            raise UnsupportedTargetError(
                f"pass 'qat': the converted model is not fully int8 (float tensors: "
                f"{', '.join(facts['float_tensors'][:5]) or 'none'}; weights: {', '.join(facts['weight_dtypes'])})"
            )
        notes.update(facts)
        notes["val_accuracy_before"] = accuracy_before
        notes["val_accuracy"] = _val_accuracy(_tflite_predict(path), data)  # of the int8 file itself


def _tflite_predict(path: Path):
    backend = get_backend_class("litert")()
    backend.load(str(path))
    return backend.predict
