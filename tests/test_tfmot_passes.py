"""Pruning, clustering and QAT passes on tiny real models: TensorFlow, tfmot and LiteRT, no mocks."""

import numpy as np
import pytest

from edge_opt.core.artifacts import ArtifactWriter, load_artifact, verify
from edge_opt.core.errors import ConfigError, UnsupportedTargetError
from edge_opt.models import predicted_labels
from edge_opt.passes import PassContext, get_pass
from edge_opt.passes.tfmot import ClusterPass, PrunePass, QATPass, inspect_tflite

# Label agreement of a compressed 1-epoch tiny model with its parent, on 500 test rows.
AGREEMENT = 0.9
ROWS = 500


def _keras_outputs(artifact, x):
    from edge_opt.core.tfkeras import keras

    return keras().models.load_model(str(artifact.model_path), compile=False)(x, training=False).numpy()


def _litert_outputs(artifact, x):
    from edge_opt.runtimes import get_backend_class

    backend = get_backend_class("litert")()
    backend.load(str(artifact.model_path))
    return backend.predict(x)


def _agreement(a, b, n_classes):
    return float(np.mean(predicted_labels(a, n_classes) == predicted_labels(b, n_classes)))


def _kernels(artifact, names=None):
    """Kernels of the named layers (all layers with a kernel when None), and the model."""
    from edge_opt.core.tfkeras import keras

    model = keras().models.load_model(str(artifact.model_path), compile=False)
    names = [layer.name for layer in model.layers if hasattr(layer, "kernel")] if names is None else names
    return {n: model.get_layer(n).kernel.numpy() for n in names}, model


@pytest.fixture(scope="module")
def ctx(adult_small):
    return PassContext(target="cpu", data=adult_small, seed=0)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("tfmot")


@pytest.fixture(scope="module")
def pruned(tiny_artifacts, ctx, out):
    return PrunePass().apply(tiny_artifacts["keras"], {"epochs": 1, "target_sparsity": 0.75}, out, ctx)


@pytest.fixture(scope="module")
def clustered(tiny_artifacts, ctx, out):
    return ClusterPass().apply(tiny_artifacts["keras"], {"number_of_clusters": 8}, out, ctx)


def test_prune_reaches_target_sparsity_and_gzips_smaller(tiny_artifacts, pruned, ctx, out, adult_small):
    root = tiny_artifacts["keras"]
    notes = pruned.manifest["notes"]
    assert pruned.parent == root.id and pruned.format == "keras"
    assert notes["sparsity"] == pytest.approx(0.75, abs=0.05)

    kernels, model = _kernels(pruned, notes["pruned_layers"])
    assert kernels and set(kernels).isdisjoint(model.output_names)  # the output layer stays dense
    zeros = sum(int(np.sum(k == 0)) for k in kernels.values()) / sum(k.size for k in kernels.values())
    assert zeros == pytest.approx(0.75, abs=0.05)

    tflite = get_pass("tflite").apply(pruned, {}, out, ctx)
    assert tflite.manifest["size_bytes"]["gzip"] < tiny_artifacts["tflite"].manifest["size_bytes"]["gzip"]

    x = adult_small.x_test[:ROWS]
    assert _agreement(_litert_outputs(tflite, x), _keras_outputs(root, x), 2) >= AGREEMENT
    assert 0 <= notes["val_accuracy"] <= 1
    # The parent is only read: its files hash as published, its manifest on disk is as loaded.
    assert verify(root) == [] and load_artifact(root.folder).manifest == root.manifest


def test_prune_is_deterministic_for_a_seed(tiny_artifacts, pruned, ctx, tmp_path):
    again = PrunePass().apply(tiny_artifacts["keras"], {"epochs": 1, "target_sparsity": 0.75}, tmp_path, ctx)
    assert again.id == pruned.id  # same parent, config, seed and data: same id, rebuilt from scratch here
    first, _ = _kernels(pruned)
    second, _ = _kernels(again)
    for name, kernel in first.items():
        np.testing.assert_array_equal(kernel, second[name], err_msg=name)


def test_per_layer_settings_back_off_one_layer(tiny_artifacts, clustered, ctx, out):
    """The repair loop's per-layer back-off: one layer's own setting, the others the pass's."""
    first, second = _kernels(tiny_artifacts["keras"])[0]  # the hidden and the output layer
    base = {"epochs": 1, "target_sparsity": 0.75, "include_output": True}
    cfg = PrunePass().backoff(PrunePass().config(base), first)
    assert cfg.per_layer == {first: 0.65}
    gentler = PrunePass().apply(tiny_artifacts["keras"], cfg.model_dump(), out, ctx)
    layers = gentler.manifest["notes"]["pruned_layers"]
    assert layers[first] == pytest.approx(0.65, abs=0.03) and layers[second] == pytest.approx(0.75, abs=0.03)
    assert gentler.manifest["label"] == "prune-75-per1"
    off = PrunePass().apply(tiny_artifacts["keras"], {**base, "per_layer": {first: 0}}, out, ctx)
    assert first not in off.manifest["notes"]["pruned_layers"]  # 0: left dense

    name = next(iter(clustered.manifest["notes"]["unique_weights"]))
    more = ClusterPass().backoff(ClusterPass().config({"number_of_clusters": 8}), name)
    assert more.per_layer == {name: 16}
    unique = (
        ClusterPass().apply(tiny_artifacts["keras"], more.model_dump(), out, ctx).manifest["notes"]["unique_weights"]
    )
    assert 8 < unique[name] <= 16 and all(v <= 8 for n, v in unique.items() if n != name)
    with pytest.raises(ConfigError, match="pass 'prune': per_layer names nowhere, not a layer it compresses"):
        PrunePass().apply(tiny_artifacts["keras"], {"epochs": 1, "per_layer": {"nowhere": 0.5}}, out, ctx)


def test_cluster_leaves_at_most_k_values_per_kernel(tiny_artifacts, clustered, ctx, out, adult_small):
    notes = clustered.manifest["notes"]
    kernels, _ = _kernels(clustered, notes["unique_weights"])
    assert kernels
    for name, kernel in kernels.items():
        assert np.unique(kernel).size <= 8, name

    tflite = get_pass("tflite").apply(clustered, {}, out, ctx)
    x = adult_small.x_test[:ROWS]
    assert _agreement(_litert_outputs(tflite, x), _keras_outputs(tiny_artifacts["keras"], x), 2) >= AGREEMENT


def test_pqat_int8_io_keeps_sparsity(pruned, ctx, out, adult_small):
    qat = QATPass().apply(pruned, {"preserve": "sparsity", "io": "int8"}, out, ctx)
    notes = qat.manifest["notes"]
    assert qat.format == "tflite" and qat.manifest["label"] == "prune-75+pqat-int8-int8io"

    from edge_opt.runtimes import get_backend_class

    backend = get_backend_class("litert")()
    backend.load(str(qat.model_path))
    assert backend.inputs()[0].dtype == "int8"
    assert notes["input_dtype"] == notes["output_dtype"] == "int8" and notes["float_tensors"] == []

    # Zeros of every float kernel (the dense output layer included) survive as int8 zeros.
    kernels, _ = _kernels(pruned)
    float_zeros = sum(int(np.sum(k == 0)) for k in kernels.values()) / sum(k.size for k in kernels.values())
    facts = inspect_tflite(qat.model_path)
    assert facts["weight_dtypes"] == ["int8"]
    assert facts["weight_sparsity"] >= float_zeros - 0.01

    x = adult_small.x_test[:ROWS]
    assert _agreement(backend.predict(x), _keras_outputs(pruned, x), 2) >= AGREEMENT


def test_cqat_keeps_clusters(clustered, ctx, out, adult_small):
    qat = QATPass().apply(clustered, {"preserve": "clusters"}, out, ctx)
    notes = qat.manifest["notes"]
    assert notes["input_dtype"] == "float32" and notes["float_tensors"] == []
    # Dense kernels are quantized per tensor: the 8 float centroids of the clustered hidden
    # layer (the first weight tensor) stay at most 8 int8 values.
    assert notes["weight_unique_values"][0] <= 8
    x = adult_small.x_test[:ROWS]
    assert _agreement(_litert_outputs(qat, x), _keras_outputs(clustered, x), 2) >= AGREEMENT


def test_multiclass_cnn_prune_and_qat(tmp_path):
    from edge_opt.datasets import load_dataset
    from edge_opt.models import ModelConfig, train_artifact

    digits = load_dataset("digits")
    root = train_artifact(ModelConfig(kind="cnn", hidden=[8, 16], epochs=8, batch_size=64), digits, "digits", tmp_path)
    ctx = PassContext(target="cpu", data=digits, seed=0)
    pruned = PrunePass().apply(root, {"epochs": 1, "target_sparsity": 0.5}, tmp_path, ctx)
    assert pruned.manifest["notes"]["sparsity"] == pytest.approx(0.5, abs=0.05)
    from edge_opt.models import load_keras

    # Keras numbers layer names per process (conv2d, conv2d_1, ...): read them from the model itself.
    convs = {layer.name for layer in load_keras(root.model_path).layers if type(layer).__name__ == "Conv2D"}
    assert len(convs) == 2 and set(pruned.manifest["notes"]["pruned_layers"]) == convs

    qat = QATPass().apply(root, {}, tmp_path, ctx)
    assert qat.manifest["notes"]["float_tensors"] == []
    x = digits.x_test[:ROWS]
    outputs = _litert_outputs(qat, x)
    assert outputs.shape == (len(x), 10)
    assert _agreement(outputs, _keras_outputs(root, x), 10) >= AGREEMENT


def test_a_two_unit_softmax_binary_head_prunes_clusters_and_quantizes(tmp_path, ctx, adult_small):
    """Issue 19 (5): before, a binary model with a 2-unit softmax head (trained with binary
    cross-entropy) failed pruning+QAT and clustering with "ValueError: in user code:"."""
    from edge_opt.core.tfkeras import keras
    from edge_opt.passes.base import Step
    from edge_opt.passes.pipeline import run_pipeline

    k = keras()
    k.utils.set_random_seed(0)
    inputs = k.Input(shape=adult_small.input_shape)
    model = k.Model(inputs, k.layers.Dense(2, activation="softmax")(k.layers.Dense(16, activation="relu")(inputs)))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    y = np.eye(2, dtype="float32")[adult_small.y_train]
    model.fit(adult_small.x_train, y, epochs=1, verbose=0)
    with ArtifactWriter(
        tmp_path, parent=None, pass_name="test", config={}, target=None, fmt="keras", precision="fp32",
        model_file="model.keras",
    ) as w:  # fmt: skip
        model.save(str(w.stage / "model.keras"))
        root = w.publish()
    pipelines = [
        [{"pass": "prune", "epochs": 1, "target_sparsity": 0.5}, {"pass": "qat", "preserve": "sparsity"}],
        [{"pass": "cluster", "epochs": 1, "number_of_clusters": 8}],
    ]
    x = adult_small.x_test[:ROWS]
    for steps in pipelines:
        done = run_pipeline(root, [Step.model_validate(s) for s in steps], tmp_path, ctx)
        assert done.status == "ok", done.error
        outputs = _litert_outputs(done.artifact, x) if done.artifact.format == "tflite" else None
        outputs = _keras_outputs(done.artifact, x) if outputs is None else outputs
        assert outputs.shape == (len(x), 2)
        assert _agreement(outputs, model(x).numpy(), 2) >= AGREEMENT


def test_a_failed_pipeline_keeps_the_whole_reason_and_with_debug_the_traceback(tmp_path, ctx, monkeypatch):
    """Issue 19 (5): a TensorFlow error kept only "ValueError: in user code:"."""
    from edge_opt.core.errors import error_message

    def raise_in_user_code():
        raise ValueError(
            'in user code:\n\n    File "/x/training.py", line 1160, in train_function  *\n'
            "        return step_function(self, iterator)\n\n"
            "    ValueError: `logits` and `labels` must have the same shape, received ((None, 2) vs (None, 1)).\n"
        )

    try:
        raise_in_user_code()
    except ValueError as exc:
        caught = exc
    assert error_message(caught) == (
        "ValueError: `logits` and `labels` must have the same shape, received ((None, 2) vs (None, 1))."
    )
    monkeypatch.setenv("EDGE_OPT_DEBUG", "1")
    with_trace = error_message(caught)
    assert with_trace.startswith("ValueError: `logits` and `labels` must have the same shape")
    assert "Traceback (most recent call last)" in with_trace and "raise_in_user_code" in with_trace


def test_unsupported_layer_names_it(tmp_path, ctx):
    from edge_opt.core.tfkeras import keras

    k = keras()
    inputs = k.Input(shape=(108,))
    x = k.layers.LayerNormalization(name="odd_norm")(k.layers.Dense(4)(inputs))
    model = k.Model(inputs, k.layers.Dense(1, activation="sigmoid")(x))
    with ArtifactWriter(
        tmp_path,
        parent=None,
        pass_name="test",
        config={},
        target=None,
        fmt="keras",
        precision="fp32",
        model_file="model.keras",
    ) as w:
        model.save(str(w.stage / "model.keras"))
        artifact = w.publish()
    with pytest.raises(UnsupportedTargetError, match="odd_norm"):
        QATPass().apply(artifact, {}, tmp_path, ctx)


@pytest.mark.parametrize("cls", [PrunePass, ClusterPass, QATPass])
def test_missing_data_is_unsupported(cls, tiny_artifacts, tmp_path):
    with pytest.raises(UnsupportedTargetError, match=f"pass '{cls.name}' needs labelled training data"):
        cls().apply(tiny_artifacts["keras"], {}, tmp_path, PassContext(target="cpu"))


def test_wrong_input_format_is_refused(tiny_artifacts, tmp_path, ctx):
    with pytest.raises(UnsupportedTargetError, match="takes keras input, not tflite"):
        QATPass().apply(tiny_artifacts["tflite"], {}, tmp_path, ctx)


@pytest.mark.parametrize(
    ("cls", "bad"),
    [
        (PrunePass, {"target_sparsity": 1.0}),
        (PrunePass, {"initial_sparsity": 0.6, "target_sparsity": 0.5}),
        (PrunePass, {"epochs": 0}),
        (ClusterPass, {"centroid_init": "kmeans"}),
        (ClusterPass, {"number_of_clusters": 1}),
        (QATPass, {"preserve": "both"}),
        (QATPass, {"io": "uint8"}),
        (QATPass, {"clusters": 8}),
        (PrunePass, {"per_layer": {"dense": 1.0}}),
        (ClusterPass, {"per_layer": {"dense": 1}}),
    ],
)
def test_bad_config_is_refused(cls, bad):
    with pytest.raises(ConfigError, match=f"pass '{cls.name}'"):
        cls().config(bad)


@pytest.mark.parametrize(
    ("cls", "raw"),
    [
        (PrunePass, {"target_sparsity": 0.5, "include_output": True}),
        (ClusterPass, {"number_of_clusters": 4, "centroid_init": "density_based"}),
        (QATPass, {"io": "int8", "preserve": "clusters", "learning_rate": 1e-4}),
    ],
)
def test_config_round_trips(cls, raw):
    cfg = cls().config(raw)
    assert cls.Config(**cfg.model_dump()) == cfg
    assert cfg.model_dump().items() >= raw.items()
