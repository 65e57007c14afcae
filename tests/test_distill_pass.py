"""The distill pass with real TensorFlow: small teachers on digits and Adult, no mocks."""

from __future__ import annotations

import numpy as np
import pytest

from edge_opt.core.artifacts import verify
from edge_opt.core.errors import ConfigError, UnsupportedTargetError
from edge_opt.models import ModelConfig, predicted_labels, train_artifact
from edge_opt.passes import PassContext, get_pass
from edge_opt.passes.distill import DistillPass, distill_loss, train_student_alone

STUDENT = {"student": {"hidden": [32], "epochs": 5, "batch_size": 32, "learning_rate": 3e-3}, "max_param_ratio": 0.2}


def _load(artifact):
    from edge_opt.core.tfkeras import keras

    return keras().models.load_model(str(artifact.model_path), compile=False)


@pytest.fixture(scope="module")
def digits():
    from edge_opt.datasets import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, digits):
    cfg = ModelConfig(hidden=[128, 64], dropout=0.0, epochs=5, batch_size=32)
    return train_artifact(cfg, digits, "digits", tmp_path_factory.mktemp("teacher"))


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, teacher, digits):
    before = (dict(teacher.manifest), sorted(p.name for p in teacher.folder.iterdir()))
    out = DistillPass().apply(teacher, STUDENT, tmp_path_factory.mktemp("distill"), PassContext(data=digits, seed=0))
    return out, before


def test_student_is_small_trains_and_generalises(distilled, teacher, digits):
    art, _ = distilled
    notes = art.manifest["notes"]
    assert art.format == "keras" and art.parent == teacher.id and art.manifest["pass"] == "distill"
    assert notes["student_parameters"] <= 0.2 * notes["teacher_parameters"]
    assert notes["param_ratio"] == pytest.approx(notes["student_parameters"] / notes["teacher_parameters"], abs=1e-4)
    assert notes["student_val_accuracy"] > 0.8
    student = _load(art)
    assert student.count_params() == notes["student_parameters"]
    assert student.layers[-1].activation.__name__ == "softmax"
    test_acc = (predicted_labels(student.predict(digits.x_test, verbose=0), 10) == digits.y_test).mean()
    assert test_acc > 0.8


def test_distillation_loss_decreases(distilled):
    loss = distilled[0].manifest["notes"]["loss"]
    assert len(loss) == STUDENT["student"]["epochs"]
    assert loss[-1] < 0.5 * loss[0]


def test_input_artifact_unchanged(distilled, teacher):
    _, (manifest, files) = distilled
    assert teacher.manifest == manifest
    assert sorted(p.name for p in teacher.folder.iterdir()) == files
    assert verify(teacher) == []


def test_student_converts_to_tflite_and_runs_on_litert(distilled, digits, tmp_path):
    from edge_opt.runtimes import get_backend_class

    art, _ = distilled
    tfl = get_pass("tflite").apply(art, {}, tmp_path, PassContext(target="cpu"))
    backend = get_backend_class("litert")()
    backend.load(str(tfl.model_path))
    x = digits.x_test[:64]
    out = backend.predict(x)
    assert out.shape == (64, 10)
    np.testing.assert_allclose(out, _load(art).predict(x, verbose=0), atol=1e-4)


def test_same_inputs_reuse_the_artifact(distilled, teacher, digits):
    art, _ = distilled
    again = DistillPass().apply(teacher, STUDENT, art.folder.parent, PassContext(data=digits, seed=0))
    assert again.id == art.id and again.folder == art.folder


def test_student_alone_has_the_same_architecture(distilled, digits):
    art, _ = distilled
    alone = train_student_alone(DistillPass().config(STUDENT), digits, seed=0)
    assert alone.count_params() == art.manifest["notes"]["student_parameters"]
    assert (predicted_labels(alone.predict(digits.x_val, verbose=0), 10) == digits.y_val).mean() > 0.5


def test_binary_task_deterministic_sigmoid_student(tmp_path, adult_small):
    root = train_artifact(ModelConfig(hidden=[32], epochs=2, batch_size=64), adult_small, "adult", tmp_path / "t")
    raw = {"student": {"hidden": [4], "epochs": 2, "batch_size": 32, "learning_rate": 3e-3}, "mixup": True}
    a = DistillPass().apply(root, raw, tmp_path / "a", PassContext(data=adult_small, seed=3))
    b = DistillPass().apply(root, raw, tmp_path / "b", PassContext(data=adult_small, seed=3))
    assert a.id == b.id and a.manifest["identity"]["seed"] == 3  # the seed is part of the id
    x = adult_small.x_test[:200]
    pa, pb = _load(a).predict(x, verbose=0), _load(b).predict(x, verbose=0)
    assert pa.shape == (200, 1) and ((pa >= 0) & (pa <= 1)).all()
    np.testing.assert_array_equal(pa, pb)
    assert a.manifest["notes"]["student_val_accuracy"] > 0.75


def test_loss_matches_cross_entropy_and_kl():
    from edge_opt.core.tfkeras import tf

    y = tf().constant([1, 0])
    z = tf().constant([[0.0, 2.0], [0.0, -1.0]])  # binary logits as [0, z]
    bce = -np.mean(np.log([1 / (1 + np.exp(-2.0)), 1 - 1 / (1 + np.exp(1.0))]))
    assert float(distill_loss(y, z, z, alpha=1.0, temperature=4.0)) == pytest.approx(bce, rel=1e-5)
    assert float(distill_loss(y, z, z, alpha=0.0, temperature=4.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(distill_loss(y, z, -z, alpha=0.0, temperature=4.0)) > 0


def test_needs_training_data(teacher, tmp_path):
    with pytest.raises(UnsupportedTargetError, match="training data"):
        DistillPass().apply(teacher, {}, tmp_path, PassContext())


def test_oversized_or_mismatched_student_is_a_config_error(teacher, digits, adult_small, tmp_path):
    with pytest.raises(ConfigError, match="max_param_ratio"):
        DistillPass().apply(teacher, {"student": {"hidden": [256]}}, tmp_path, PassContext(data=digits))
    with pytest.raises(ConfigError, match="cnn student needs image input"):
        DistillPass().apply(teacher, {"student": {"kind": "cnn"}}, tmp_path, PassContext(data=adult_small))


def test_config_round_trip_and_defaults():
    p = DistillPass()
    cfg = p.config(STUDENT)
    assert p.config(cfg.model_dump()) == cfg
    default = p.config({})
    assert default.temperature == 4.0 and default.alpha == 0.5 and default.student.hidden == [32]
    # A partial student keeps the student's small defaults, not ModelConfig's teacher-sized ones.
    assert p.config({"student": {"epochs": 2}}).student.hidden == [32]


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"alpha": 1.5}, "alpha"),
        ({"temperature": 0}, "temperature"),
        ({"max_param_ratio": 0}, "max_param_ratio"),
        ({"student": {"hidden": [0]}}, "student.hidden.0"),
        ({"student": {"kind": "rnn"}}, "student.kind"),
        ({"student": {"epochs": 0}}, "student.epochs"),
        ({"student": {"widths": [8]}}, "student.widths"),
        ({"temp": 2}, "temp"),
    ],
)
def test_bad_config_is_a_config_error(raw, field):
    with pytest.raises(ConfigError, match=f"field '{field}'"):
        DistillPass().config(raw)
