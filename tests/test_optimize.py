"""`edge-opt optimize`: a target's pipelines on a user's own Keras model."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from edge_opt.analysis.predictor import Predictor
from edge_opt.core.artifacts import load_artifact
from edge_opt.models import predicted_labels
from tests.conftest import ROOT, assert_clean_error, cli, run_cli


@pytest.fixture(scope="module")
def user_files(tmp_path_factory, tiny_artifacts, adult_small):
    folder = tmp_path_factory.mktemp("user")
    np.save(folder / "calib.npy", adult_small.x_train[:100])
    np.save(folder / "wrong.npy", adult_small.x_train[:100, :50])
    np.savez(folder / "nolabels.npz", x=adult_small.x_train[:100])
    np.savez(folder / "badlabels.npz", x=adult_small.x_train[:8], y=np.arange(8))
    return folder, tiny_artifacts["keras"].model_path


def test_optimize_for_mobile_with_calibration(user_files, tmp_path):
    from edge_opt.run.optimize import optimize  # in this process (the CLI's own tests run it as a user would)

    folder, model = user_files
    # fidelity is what this test reads; the autoencoder's test reads latency
    summary = optimize(model, "mobile", tmp_path, calibration=folder / "calib.npy", latency=False)
    assert summary == json.loads((tmp_path / "summary.json").read_text())
    ok = [a for a in summary["artifacts"] if a["status"] == "ok"]
    assert {a["precision"] for a in ok} == {"int8", "fp32"}
    for a in ok:  # a 1-epoch model may predict one class on 25 rows: then agreement is not claimed
        assert a["fidelity"]["correlation"] >= 0.9 and a["fidelity"]["source"].startswith("held out of --calibration")
        assert a["agreement"] >= 0.9 if a["agreement"] is not None else "predicts class" in a["fidelity"]["note"]
        art = load_artifact(tmp_path / "artifacts" / a["artifact"])
        assert art.parent == summary["root"]
    int8 = load_artifact(tmp_path / "artifacts" / next(a["artifact"] for a in ok if a["precision"] == "int8"))
    assert int8.manifest["notes"]["calibration"]["source"].startswith("file ")


def test_random_calibration_only_when_asked_and_recorded(user_files, tmp_path):
    folder, model = user_files
    proc = run_cli("optimize", str(model), "--target", "edgetpu", "--out", str(tmp_path / "none"), "--no-latency")
    assert_clean_error(proc, "no pipeline of target 'edgetpu' could run")
    assert "needs --calibration" in proc.stdout
    from edge_opt.run.optimize import optimize

    summary = optimize(model, "edgetpu", tmp_path / "rand", random_calibration=True, latency=False)
    art = load_artifact(tmp_path / "rand" / "artifacts" / summary["artifacts"][0]["artifact"])
    assert "random inputs" in art.manifest["notes"]["calibration"]["source"]


def test_a_failed_pipeline_is_exit_1_and_labelled_eval_rows_give_accuracy(user_files, tmp_path, adult_small):
    """Before: optimize exited 0 when a pipeline failed, so a script could not tell; and labelled
    --eval rows gave agreement only, no accuracy or drop against your model."""
    folder, model = user_files
    x, y = adult_small.x_test[:200], adult_small.y_test[:200]
    np.savez(tmp_path / "eval.npz", x=x, y=y)
    profile = yaml.safe_load((ROOT / "targets" / "cpu.yaml").read_text())
    profile.update(name="cpu-broken", pipelines=[[{"pass": "tflite"}], [{"pass": "tests.plugins.passes:BrokenPass"}]])
    (tmp_path / "cpu-broken.yaml").write_text(yaml.safe_dump(profile))
    out = tmp_path / "out"
    target = str(tmp_path / "cpu-broken.yaml")
    eval_rows = ("--eval", str(tmp_path / "eval.npz"))
    proc = run_cli("optimize", str(model), "--target", target, "--out", str(out), "--no-latency", *eval_rows)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"1 of 2 pipeline(s) failed (tests.plugins.passes:BrokenPass): see the table and {out / 'summary.json'}" in (
        proc.stderr
    )
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["artifacts"]
    assert [r["status"] for r in rows] == ["ok", "failed"] and "the converter gave up" in rows[1]["reason"]
    assert (out / "artifacts" / rows[0]["artifact"]).is_dir()

    def accuracy(path):
        return float(np.mean(predicted_labels(Predictor(path).outputs(x), 2) == y))

    assert summary["input_accuracy"] == pytest.approx(accuracy(model))
    assert rows[0]["accuracy"] == pytest.approx(accuracy(rows[0]["path"]))
    assert rows[0]["accuracy_drop"] == pytest.approx(summary["input_accuracy"] - rows[0]["accuracy"])
    assert f"{summary['input_accuracy']:.4f}" in proc.stdout and " pt)" in proc.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--calibration", "wrong.npy"), "rows have shape (50,), the model takes (108,)"),
        (("--train", "nolabels.npz"), "--train needs labels"),
        (("--calibration", "missing.npy"), "file not found"),
        (("--eval", "badlabels.npz"), "--eval labels run from 0 to 7, and the model's output has 2 classes"),
    ],
)
def test_bad_user_data_exits_2(user_files, tmp_path, args, fragment):
    folder, model = user_files
    out = tmp_path / "out"
    proc = cli("optimize", model, "--target", "mobile", "--out", out, args[0], folder / args[1])  # in-process
    assert_clean_error(proc, fragment)
    assert not out.exists()


def test_lambda_code_needs_trust(tmp_path):
    from edge_opt.core.tfkeras import keras

    k = keras()
    inputs = k.Input((4,))
    model = k.Model(inputs, k.layers.Dense(1, activation="sigmoid")(k.layers.Lambda(lambda t: t * 2.0)(inputs)))
    path = tmp_path / "lambda.keras"
    model.save(path)
    np.save(tmp_path / "c.npy", np.random.default_rng(0).random((20, 4), dtype=np.float32))
    args = (
        "optimize",
        str(path),
        "--target",
        "mobile",  # two converter pipelines without --train (cpu's six, NNCF's among them, add nothing here)
        "--out",
        str(tmp_path / "out"),
        "--calibration",
        str(tmp_path / "c.npy"),
        "--no-latency",  # the files are made and read; their latency is not what this test is about
    )
    assert_clean_error(run_cli(*args), "--trust-model")  # refused before TensorFlow is even imported
    from edge_opt.run.optimize import optimize

    calib = tmp_path / "c.npy"
    assert optimize(path, "mobile", tmp_path / "out", calibration=calib, latency=False, trust_model=True)["artifacts"]


def test_a_reused_out_folder_never_returns_an_artifact_of_other_calibration_rows(user_files, tmp_path, adult_small):
    """Before: the int8 id did not hash the calibration rows, so a second `optimize --out D` with
    other rows returned the first run's artifact as if it were made from them."""
    folder, model = user_files
    np.save(folder / "other.npy", adult_small.x_train[100:200])
    from edge_opt.run.optimize import optimize  # in this process: the ids are the point, not the CLI

    ids = {}
    for name in ("calib", "other", "calib"):
        summary = optimize(model, "edgetpu", tmp_path, calibration=folder / f"{name}.npy", latency=False)
        int8 = next(a for a in summary["artifacts"] if a["status"] == "ok" and a["pipeline"] == "tflite")
        ids.setdefault(name, set()).add(int8["artifact"])
    assert len(ids["calib"]) == 1 and ids["calib"].isdisjoint(ids["other"])


def _keras(path, build):
    """Save a small tf_keras model built by ``build(keras)``."""
    from edge_opt.core.tfkeras import tf

    keras = tf().keras
    model = build(keras)
    model.save(str(path))
    return str(path)


def test_agreement_is_not_claimed_when_the_float_model_predicts_one_class(tmp_path):
    """Before: a model predicting one class for all random rows showed agreement 1.0000 everywhere."""

    def constant(keras):
        inputs = keras.Input((8,))
        dense = keras.layers.Dense(3, activation="softmax", kernel_initializer="zeros")
        outputs = dense(inputs)
        model = keras.Model(inputs, outputs)
        dense.set_weights([np.zeros((8, 3), np.float32), np.array([5.0, 0.0, 0.0], np.float32)])
        return model

    from edge_opt.run.optimize import optimize

    model = _keras(tmp_path / "constant.keras", constant)
    summary = optimize(Path(model), "mobile", tmp_path / "out", random_calibration=True, latency=False)
    assert "random inputs" in summary["fidelity_rows"]
    for row in (r for r in summary["artifacts"] if r.get("artifact")):
        assert row["agreement"] is None and "predicts class 0 for all 256 rows" in row["fidelity"]["note"]
        assert "top-1 agreement would be meaningless" in row["fidelity"]["note"]  # what the terminal prints


def test_an_autoencoder_gets_numeric_fidelity_and_latency_beside_the_input_model(tmp_path):
    """Before: top-1 "agreement" of an autoencoder's outputs (0.9922) hid an int8 file whose
    outputs correlated 0.59 with the float model's; and optimize showed no latency at all."""

    def autoencoder(keras):
        inputs = keras.Input((16,))
        code = keras.layers.Dense(4, activation="relu")(inputs)
        return keras.Model(inputs, keras.layers.Dense(16)(code))

    model = _keras(tmp_path / "ae.keras", autoencoder)
    rows = np.random.default_rng(0).standard_normal((120, 16)).astype(np.float32)
    np.save(tmp_path / "calib.npy", rows)
    out = tmp_path / "out"
    calib = str(tmp_path / "calib.npy")
    proc = cli("optimize", model, "--target", "mobile", "--out", str(out), "--calibration", calib)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fidelity_rows"] == "held out of --calibration (30 rows, not calibrated on)"
    assert summary["input_latency"]["status"] == "ok" and summary["input_latency"]["runtime"] == "keras"
    made = [r for r in summary["artifacts"] if r.get("artifact")]
    assert made
    for row in made:
        fid = row["fidelity"]
        assert fid["kind"] == "numeric" and row["agreement"] is None
        assert fid["rows"] == 30 and fid["max_abs_error"] >= fid["mean_abs_error"] >= 0
        assert (row["status"] == "ok") == (fid["correlation"] >= 0.95)
        assert row["latency"]["status"] == "ok" and row["latency"]["runtime"] == "litert"
    int8 = load_artifact(out / "artifacts" / next(r["artifact"] for r in made if r["precision"] == "int8"))
    assert int8.manifest["notes"]["calibration"]["rows"] == 90  # the 30 fidelity rows were held out
    # Issue 19 (4): before, the speed-up divided Keras's latency by LiteRT's ("53×"); now it is against
    # your model as an fp32 .tflite on the same runtime, which is 1.00× against itself.
    fp32 = next(r for r in made if r["precision"] == "fp32" and r["format"] == "tflite")
    base = summary["baselines"]["tflite"]
    assert base["artifact"] == fp32["artifact"] and base["p50_ms"] == fp32["latency"]["p50_ms"]
    for row in made:
        up = row["speedup"]
        assert up["against_artifact"] == fp32["artifact"] and up["runtime"] == row["latency"]["runtime"]
        assert up["ratio"] == pytest.approx(base["p50_ms"] / row["latency"]["p50_ms"])
    assert fp32["speedup"]["ratio"] == 1.0
    assert "fp32 file of the same format, on the same" in proc.stdout
    assert max(map(len, proc.stdout.splitlines())) <= 120  # Issue 19 (12): a log gets 120 columns, not 200


def test_training_on_random_labels_is_not_ok_and_train_rows_calibrate(tmp_path, adult_small, tiny_artifacts):
    """Before: prune -> QAT on random labels gave agreement 0.0000 and status "ok"; and int8 refused
    to run without --calibration although --train held real rows."""
    rng = np.random.default_rng(1)
    x = adult_small.x_train[:600]
    np.savez(tmp_path / "train.npz", x=x, y=rng.integers(0, 2, len(x)))
    from edge_opt.run.optimize import optimize

    # the mobile profile's two pipelines this is about (in this process: the figures are the point)
    mobile = yaml.safe_load((ROOT / "targets" / "mobile.yaml").read_text())
    mobile["pipelines"] = [p for p in mobile["pipelines"] if p[0] in ({"pass": "tflite", "precision": "int8"},)
                           or p[0]["pass"] == "prune"]  # fmt: skip
    (tmp_path / "mobile2.yaml").write_text(yaml.safe_dump(mobile))
    out = tmp_path / "out"
    model = tiny_artifacts["keras"].model_path
    summary = optimize(model, str(tmp_path / "mobile2.yaml"), out, train=tmp_path / "train.npz", latency=False)
    rows = {r["pipeline"]: r for r in summary["artifacts"]}
    pqat = rows["prune → qat"]
    assert pqat["status"] == "low-fidelity" and "fidelity.agreement" in pqat["reason"], pqat
    assert pqat["fidelity"]["source"].startswith("held out of --train")
    assert pqat["accuracy_drop"] == pytest.approx(summary["input_accuracy"] - pqat["accuracy"])  # held-out labels
    (int8,) = [r for r in summary["artifacts"] if r["pipeline"] == "tflite" and r.get("precision") == "int8"]
    notes = load_artifact(out / "artifacts" / int8["artifact"]).manifest["notes"]["calibration"]
    assert notes["source"] == "--train (256 of its training rows; no --calibration given)" and notes["rows"] == 256
