"""The stand-alone trust-check commands on real artifacts: fairness, robustness, explain, drift.

The first runs as a user would (a child process); the others in this process (``cli``), which
saves a TensorFlow start per command."""

import json

import numpy as np

from tests.conftest import assert_clean_error, cli, run_cli


def test_fairness_command_finds_the_float_model_through_lineage(tiny_artifacts, tmp_path):
    out = tmp_path / "f.json"
    proc = run_cli(
        "fairness",
        str(tiny_artifacts["tflite_int8"].folder),
        "--data",
        "adult",
        "--rows",
        "800",
        "--boot",
        "10",
        "--slice",
        "sex",
        "--slice",
        "sex+race",
        "--json",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["reference"] is not None and result["flips"] is not None
    assert set(result["columns"]) == {"sex", "sex&race"}
    assert "demographic_parity_difference" in result["summary"]
    assert "sex=Female" in proc.stdout


def test_fairness_bad_slice_and_wrong_width_exit_2(tiny_artifacts):
    model = str(tiny_artifacts["tflite"].model_path)
    assert_clean_error(cli("fairness", model, "--slice", "religion", "--rows", "100"), "religion")
    assert_clean_error(cli("fairness", model, "--data", "digits"), "")


def test_robustness_command(tiny_artifacts, tmp_path):
    out = tmp_path / "r.json"
    proc = cli(
        "robustness",
        str(tiny_artifacts["tflite"].model_path),
        "--rows",
        "60",
        "--eps",
        "0,0.2",
        "--sigmas",
        "0,0.1",
        "--queries",
        "5",
        "--pgd-steps",
        "2",
        "--json",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["float"]["clean_accuracy"] > 0.5 and len(result["artifacts"]) == 1


def test_robustness_needs_a_float_model_for_a_foreign_file(tiny_artifacts, tmp_path):
    foreign = tmp_path / "model.tflite"
    foreign.write_bytes(tiny_artifacts["tflite"].model_path.read_bytes())
    assert_clean_error(cli("robustness", str(foreign), "--rows", "20"), "pass --float")
    assert_clean_error(cli("robustness", str(foreign), "--eps", "0,x"), "--eps")


def test_explain_command(tiny_artifacts, tmp_path):
    out = tmp_path / "e.json"
    proc = cli(
        "explain",
        str(tiny_artifacts["onnx"].model_path),
        "--methods",
        "permutation",
        "--rows",
        "100",
        "--json",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert "permutation_rank_corr" in json.loads(out.read_text())["summary"]


def test_drift_command_exit_codes(adult_small, tiny_artifacts, tmp_path):
    x = adult_small.x_test[:2000]
    names = np.array(adult_small.feature_names)
    shifted = x.copy()
    shifted[:, adult_small.feature_names.index("age")] += 1.0
    np.savez(tmp_path / "ref.npz", x=x[:1000], feature_names=names)
    np.savez(tmp_path / "same.npz", x=x[1000:], feature_names=names)
    np.savez(tmp_path / "shifted.npz", x=shifted[1000:], feature_names=names)
    np.savez(tmp_path / "narrow.npz", x=x[:, :10], feature_names=names[:10])
    same = cli("drift", str(tmp_path / "ref.npz"), str(tmp_path / "same.npz"))
    assert same.returncode == 0, same.stdout + same.stderr
    out = tmp_path / "d.json"
    moved = cli(
        "drift",
        str(tmp_path / "ref.npz"),
        str(tmp_path / "shifted.npz"),
        "--artifact",
        str(tiny_artifacts["tflite"].model_path),
        "--json",
        str(out),
    )
    assert moved.returncode == 1, moved.stderr
    result = json.loads(out.read_text())
    assert result["summary"]["drifted_features"] == ["age"]
    assert result["summary"]["prediction_psi"] is not None
    assert_clean_error(cli("drift", str(tmp_path / "ref.npz"), str(tmp_path / "narrow.npz")), "different columns")
    assert_clean_error(cli("drift", str(tmp_path / "ref.npz"), str(tmp_path / "missing.npz")), "missing.npz")
