"""Dimensionality-reduction passes: real sklearn fits folded into real Keras graphs, run in LiteRT."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from edge_opt.core.artifacts import verify
from edge_opt.core.errors import BadInputError, ConfigError, UnsupportedTargetError
from edge_opt.passes import PassContext, get_pass
from edge_opt.passes.reduce import FeatureSelectPass, ICAPass, NMFPass, PCAPass

FAST = {"epochs": 1}


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("reduce")


@pytest.fixture(scope="module")
def ctx(adult_small):
    return PassContext(target="cpu", data=adult_small, seed=0)


@pytest.fixture(scope="module")
def root(adult_small, out):
    from edge_opt.models import ModelConfig, train_artifact

    return train_artifact(ModelConfig(hidden=[16], epochs=1), adult_small, "tiny", out)


@pytest.fixture(scope="module")
def pca5(root, out, ctx):
    return PCAPass().apply(root, {"components": 5, **FAST}, out, ctx)


@pytest.fixture(scope="module")
def dropped(root, out, ctx):
    return FeatureSelectPass().apply(root, {"drop": ["age", "sex=Male"], **FAST}, out, ctx)


def load(artifact):
    from edge_opt.core.tfkeras import keras

    return keras().models.load_model(str(artifact.model_path), compile=False)


def predict(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x, training=False))


def after_projection(model, z: np.ndarray) -> np.ndarray:
    """The folded model's head applied on its own to already projected rows."""
    names = [layer.name for layer in model.layers]
    h = z.astype(np.float32)
    for layer in model.layers[names.index("reduce_projection") + 1 :]:
        h = layer(h, training=False)
    return np.asarray(h)


def projection_of(model, x: np.ndarray) -> np.ndarray:
    from edge_opt.core.tfkeras import keras

    sub = keras().Model(model.input, model.get_layer("reduce_projection").output)
    return np.asarray(sub(x, training=False))


def test_pca_fold_equals_pca_then_head(pca5, adult_small):
    from sklearn.decomposition import PCA

    model = load(pca5)
    assert model.input_shape == (None, 108)
    pca = PCA(n_components=5, svd_solver="covariance_eigh").fit(adult_small.x_train.astype(np.float64))
    x = adult_small.x_val[:256]
    folded = predict(model, x)
    np.testing.assert_allclose(folded, after_projection(model, pca.transform(x)), atol=1e-5)
    notes = pca5.manifest["notes"]
    assert notes["kept"] == notes["components"] == 5
    assert notes["explained_variance"] == pytest.approx(pca.explained_variance_ratio_.sum())
    assert 0.5 < notes["val_accuracy"] <= 1


def test_folded_artifact_converts_and_runs_in_litert(pca5, out, ctx, adult_small):
    from edge_opt.runtimes import get_backend_class

    tfl = get_pass("tflite").apply(pca5, {"precision": "fp32"}, out, ctx)
    backend = get_backend_class("litert")()
    backend.load(str(tfl.model_path))
    assert backend.inputs()[0].shape[1:] == (108,)
    x = adult_small.x_test[:64]
    np.testing.assert_allclose(backend.predict(x), predict(load(pca5), x), atol=1e-5)


def test_variance_keeps_the_components_sklearn_reports(root, out, ctx, adult_small):
    from sklearn.decomposition import PCA

    art = PCAPass().apply(root, {"variance": 0.9, **FAST}, out, ctx)
    expected = PCA(n_components=0.9, svd_solver="covariance_eigh").fit(adult_small.x_train.astype(np.float64))
    assert art.manifest["notes"]["components"] == expected.n_components_
    assert load(art).get_layer("reduce_projection").units == expected.n_components_
    assert art.manifest["notes"]["explained_variance"] >= 0.9
    assert art.manifest["label"] == "pca-var0.9"


def test_select_drops_exactly_the_named_columns(dropped, adult_small):
    names, art = adult_small.feature_names, dropped
    assert art.manifest["notes"]["dropped"] == ["age", "sex=Male"]
    model = load(art)
    assert model.input_shape == (None, 108) and model.get_layer("reduce_projection").units == 106
    x = adult_small.x_val[:128].copy()
    before = predict(model, x)
    for name in ("age", "sex=Male"):
        x[:, names.index(name)] = np.random.default_rng(1).normal(0, 5, len(x))
    np.testing.assert_array_equal(predict(model, x), before)
    x[:, names.index("education-num")] += 5
    assert not np.allclose(predict(model, x), before)


def test_select_least_important_and_most_correlated(root, out, ctx):
    least = FeatureSelectPass().apply(root, {"least_important": 10, **FAST}, out, ctx)
    assert least.manifest["notes"]["kept"] == 98 and len(least.manifest["notes"]["dropped"]) == 10
    assert len(least.manifest["notes"]["importance"]) == 10
    corr = FeatureSelectPass().apply(root, {"most_correlated": 0.95, **FAST}, out, ctx)
    dropped = corr.manifest["notes"]["dropped"]
    assert "sex=Male" in dropped and "sex=Female" not in dropped  # perfectly anti-correlated pair


def test_unknown_feature_is_named(root, out, ctx):
    with pytest.raises(ConfigError, match="unknown feature 'agee'; did you mean age"):
        FeatureSelectPass().apply(root, {"drop": ["agee"]}, out, ctx)


def test_nmf_refuses_negative_features(root, out, ctx, adult_small):
    age_min = adult_small.x_train[:, 0].min()
    with pytest.raises(
        UnsupportedTargetError, match=f"nmf needs non-negative features; column 'age' has min {age_min:.2f}"
    ):
        NMFPass().apply(root, {"components": 4}, out, ctx)


def test_nmf_and_ica_fold_on_digits(tmp_path):
    from sklearn.decomposition import NMF, FastICA

    from edge_opt.datasets import load_dataset
    from edge_opt.models import ModelConfig, train_artifact

    digits = load_dataset("digits", train_rows=400)
    root = train_artifact(ModelConfig(hidden=[16], epochs=1), digits, "digits", tmp_path)
    dctx = PassContext(data=digits, seed=0)
    x = digits.x_val.reshape(len(digits.x_val), -1)
    flat_train = digits.x_train.reshape(len(digits.x_train), -1).astype(np.float64)

    nmf_art = NMFPass().apply(root, {"components": 8, **FAST}, tmp_path, dctx)
    model = load(nmf_art)
    assert model.input_shape == (None, 8, 8, 1)
    nmf = NMF(n_components=8, init="nndsvda", max_iter=500, random_state=0).fit(flat_train)
    approx = np.maximum(x @ np.linalg.pinv(nmf.components_), 0)
    np.testing.assert_allclose(projection_of(model, digits.x_val), x @ np.linalg.pinv(nmf.components_), atol=1e-4)
    np.testing.assert_allclose(predict(model, digits.x_val), after_projection(model, approx), atol=1e-5)
    assert 0 <= nmf_art.manifest["notes"]["fold_relative_error"] < 1

    ica_art = ICAPass().apply(root, {"components": 6, **FAST}, tmp_path, dctx)
    ica = FastICA(n_components=6, max_iter=500, random_state=0).fit(flat_train)
    np.testing.assert_allclose(projection_of(load(ica_art), digits.x_val), ica.transform(x), atol=1e-4)


@pytest.mark.parametrize(
    ("pass_", "raw"),
    [
        (PCAPass(), {"variance": 0.95}),
        (PCAPass(), {"components": 8, "epochs": 2}),
        (FeatureSelectPass(), {"drop": ["age"]}),
        (FeatureSelectPass(), {"least_important": 3}),
        (FeatureSelectPass(), {"most_correlated": 0.9}),
        (ICAPass(), {"components": 4}),
        (NMFPass(), {"components": 4, "max_iter": 100}),
    ],
)
def test_configs_round_trip(pass_, raw):
    cfg = pass_.config(raw)
    assert pass_.config(cfg.model_dump()) == cfg
    assert cfg.model_dump().items() >= raw.items()


@pytest.mark.parametrize(
    ("pass_", "raw", "fragment"),
    [
        (PCAPass(), {"variance": 0.95, "components": 4}, "exactly one of variance, components"),
        (PCAPass(), {}, "exactly one of variance, components"),
        (PCAPass(), {"variance": 1.5}, "variance"),
        (PCAPass(), {"components": 4, "whiten": True}, "unknown field"),
        (FeatureSelectPass(), {"drop": ["age"], "least_important": 2}, "exactly one of"),
        (FeatureSelectPass(), {"drop": []}, "drop"),
        (ICAPass(), {}, "components"),
        (NMFPass(), {"components": 0}, "components"),
    ],
)
def test_bad_configs_are_config_errors(pass_, raw, fragment):
    with pytest.raises(ConfigError, match=fragment):
        pass_.config(raw)


def test_too_many_components_is_a_config_error(root, out, ctx):
    with pytest.raises(ConfigError, match="components 200"):
        PCAPass().apply(root, {"components": 200}, out, ctx)


def test_refusals(root, pca5, out, ctx):
    from edge_opt.datasets import load_dataset

    with pytest.raises(UnsupportedTargetError, match="no data was given"):
        PCAPass().apply(root, {"components": 4}, out, PassContext())
    with pytest.raises(UnsupportedTargetError, match="already reduced"):
        PCAPass().apply(pca5, {"components": 4}, out, ctx)
    with pytest.raises(BadInputError, match="parent takes input"):
        PCAPass().apply(root, {"components": 4}, out, PassContext(data=load_dataset("digits", train_rows=100)))


def test_passes_do_not_mutate_their_input(root, pca5, dropped, out, ctx):
    before = (dict(root.manifest), hashlib.sha256(root.model_path.read_bytes()).hexdigest())
    assert PCAPass().apply(root, {"components": 5, **FAST}, out, ctx).id == pca5.id  # reused, not rebuilt
    assert FeatureSelectPass().apply(root, {"drop": ["age", "sex=Male"], **FAST}, out, ctx).id == dropped.id
    assert PCAPass().apply(root, {"components": 5, **FAST}, out, PassContext(data=ctx.data, seed=1)).id != pca5.id
    assert verify(root) == []
    assert (dict(root.manifest), hashlib.sha256(root.model_path.read_bytes()).hexdigest()) == before
