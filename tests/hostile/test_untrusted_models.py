"""A model file is a program: without --trust-model, no command runs code from it.

The corpus is built here: a Keras model whose Lambda layer writes a marker file whenever its
code runs, saved in every Keras format (a .keras zip, an .h5, an .h5 renamed .keras, a
SavedModel folder) and inside an artifact folder whose manifest claims the code is trusted.
Every command that loads a Keras model is pointed at each one: it must exit 2 with one line
naming the Lambda layer and --trust-model, and the marker must never appear.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.conftest import assert_clean_error, cli, run_cli


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, tiny_artifacts):
    from edge_opt.core.tfkeras import keras

    root = tmp_path_factory.mktemp("hostile")
    marker = root / "CODE-RAN"
    k = keras()
    inputs = k.Input((108,))
    # The default argument carries the marker path into the marshalled code.
    evil = k.layers.Lambda(lambda t, p=str(marker): (open(p, "a").close(), t)[1], name="evil")(inputs)
    model = k.Model(inputs, k.layers.Dense(1, activation="sigmoid")(evil))
    files = {
        "keras": root / "evil.keras",
        "h5": root / "evil.h5",
        "h5 named .keras": root / "evil-h5.keras",
        "savedmodel": root / "evil_savedmodel",
    }
    model.save(files["keras"])
    model.save(files["h5"], save_format="h5")
    shutil.copy(files["h5"], files["h5 named .keras"])
    model.save(files["savedmodel"], save_format="tf")
    forged = root / "forged-artifact"
    forged.mkdir()
    shutil.copy(files["keras"], forged / "model.keras")
    manifest = dict(tiny_artifacts["keras"].manifest)
    manifest.update(id="forged", notes={"trusted_code": True, "trust": {"granted_by": "--trust-model"}})
    (forged / "manifest.json").write_text(json.dumps(manifest))
    files["forged manifest"] = forged / "model.keras"
    np.save(root / "calib.npy", np.zeros((8, 108), np.float32))
    marker.unlink(missing_ok=True)  # building and saving the model ran its code here
    return files, marker, root


FORMATS = ["keras", "h5", "h5 named .keras", "savedmodel", "forged manifest"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_optimize_refuses_lambda_code_in_every_format(corpus, fmt, tmp_path):
    files, marker, root = corpus
    # in-process (the real entry point): were the code run, it would write the marker here too
    proc = cli("optimize", files[fmt], "--target", "cpu", "--out", tmp_path, "--calibration", root / "calib.npy")
    assert_clean_error(proc, "'evil' is a Lambda")
    assert "--trust-model" in proc.stderr and not marker.exists()


@pytest.mark.parametrize("fmt", ["h5", "forged manifest"])
def test_bench_refuses_lambda_code(corpus, fmt):
    files, marker, _ = corpus
    assert_clean_error(cli("bench", files[fmt], "--runs", "1", "--min-time", "0"), "'evil' is a Lambda")
    assert not marker.exists()


@pytest.mark.parametrize("command", ["fairness", "robustness", "explain"])
def test_trust_checks_refuse_a_float_model_with_lambda_code(corpus, command, tiny_artifacts):
    files, marker, _ = corpus
    proc = cli(command, tiny_artifacts["tflite"].model_path, "--float", files["h5"], "--rows", "50")
    assert_clean_error(proc, "'evil' is a Lambda")
    assert not marker.exists()


def test_the_corpus_is_real_code_runs_when_the_user_trusts_it(corpus, tmp_path):
    """Without this, the refusals above could pass with a model that never runs anything."""
    files, marker, root = corpus
    args = ("optimize", str(files["h5"]), "--target", "cpu", "--out", str(tmp_path), "--calibration")
    proc = run_cli(*args, str(root / "calib.npy"), "--trust-model", "--no-latency")  # loading runs the code
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()
    manifest = json.loads(next((tmp_path / "artifacts").glob("*/manifest.json")).read_text())
    trusted = [
        json.loads(p.read_text())["notes"].get("trust") for p in (tmp_path / "artifacts").glob("*/manifest.json")
    ]
    assert manifest and all(t and t["granted_by"] == "--trust-model" and t["code_layers"] == ["evil"] for t in trusted)
    marker.unlink()


def test_a_plugin_runtime_must_be_a_backend(tiny_artifacts):
    proc = run_cli("bench", str(tiny_artifacts["tflite"].model_path), "--runtime", "os:system")
    assert_clean_error(proc, "is not an edge-opt Backend subclass")
