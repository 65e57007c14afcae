"""`edge-opt optimize`: a target's pipelines on a user's own Keras model."""

import json

import numpy as np
import pytest

from edge_opt.artifacts import load_artifact
from tests.conftest import assert_clean_error, run_cli


@pytest.fixture(scope="module")
def user_files(tmp_path_factory, tiny_artifacts, adult_small):
    folder = tmp_path_factory.mktemp("user")
    np.save(folder / "calib.npy", adult_small.x_train[:100])
    np.save(folder / "wrong.npy", adult_small.x_train[:100, :50])
    np.savez(folder / "nolabels.npz", x=adult_small.x_train[:100])
    return folder, tiny_artifacts["keras"].model_path


def test_optimize_for_mobile_with_calibration(user_files, tmp_path):
    folder, model = user_files
    proc = run_cli(
        "optimize", str(model), "--target", "mobile", "--out", str(tmp_path), "--calibration", str(folder / "calib.npy")
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    ok = [a for a in summary["artifacts"] if a["status"] == "ok"]
    assert {a["precision"] for a in ok} == {"int8", "fp32"}
    for a in ok:
        assert a["agreement"] >= 0.9
        art = load_artifact(tmp_path / "artifacts" / a["artifact"])
        assert art.parent == summary["root"]
    int8 = load_artifact(tmp_path / "artifacts" / next(a["artifact"] for a in ok if a["precision"] == "int8"))
    assert int8.manifest["notes"]["calibration"]["source"].startswith("file ")


def test_random_calibration_only_when_asked_and_recorded(user_files, tmp_path):
    folder, model = user_files
    proc = run_cli("optimize", str(model), "--target", "edgetpu", "--out", str(tmp_path / "none"))
    assert_clean_error(proc, "no pipeline of target 'edgetpu' could run")
    assert "needs --calibration" in proc.stdout
    proc = run_cli(
        "optimize", str(model), "--target", "edgetpu", "--out", str(tmp_path / "rand"), "--random-calibration"
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "rand" / "summary.json").read_text())
    art = load_artifact(tmp_path / "rand" / "artifacts" / summary["artifacts"][0]["artifact"])
    assert "random inputs" in art.manifest["notes"]["calibration"]["source"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--calibration", "wrong.npy"), "rows have shape (50,), the model takes (108,)"),
        (("--train", "nolabels.npz"), "--train needs labels"),
        (("--calibration", "missing.npy"), "file not found"),
    ],
)
def test_bad_user_data_exits_2(user_files, tmp_path, args, fragment):
    folder, model = user_files
    out = tmp_path / "out"
    proc = run_cli("optimize", str(model), "--target", "mobile", "--out", str(out), args[0], str(folder / args[1]))
    assert_clean_error(proc, fragment)
    assert not out.exists()


def test_lambda_code_needs_trust(tmp_path):
    from edge_opt._tf import keras

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
        "cpu",
        "--out",
        str(tmp_path / "out"),
        "--calibration",
        str(tmp_path / "c.npy"),
    )
    assert_clean_error(run_cli(*args), "--trust-model")
    assert run_cli(*args, "--trust-model").returncode == 0


def test_a_reused_out_folder_never_returns_an_artifact_of_other_calibration_rows(user_files, tmp_path, adult_small):
    """Before: the int8 id did not hash the calibration rows, so a second `optimize --out D` with
    other rows returned the first run's artifact as if it were made from them."""
    folder, model = user_files
    np.save(folder / "other.npy", adult_small.x_train[100:200])
    ids = {}
    for name in ("calib", "other", "calib"):
        proc = run_cli(
            "optimize",
            str(model),
            "--target",
            "edgetpu",
            "--out",
            str(tmp_path),
            "--calibration",
            str(folder / f"{name}.npy"),
        )
        assert proc.returncode == 0, proc.stderr
        summary = json.loads((tmp_path / "summary.json").read_text())
        int8 = next(a for a in summary["artifacts"] if a["status"] == "ok" and a["pipeline"] == "tflite")
        ids.setdefault(name, set()).add(int8["artifact"])
    assert len(ids["calib"]) == 1 and ids["calib"].isdisjoint(ids["other"])
