"""Suites on the user's own model files, and on a device of the inventory (a real sshd)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from edge_opt.run.runner import run_suite
from edge_opt.run.suite import load_suite
from tests import sshd
from tests.conftest import assert_clean_error, cli, run_cli

PROFILE = {
    "name": "tiny",
    "precision": "fp32",
    "threads": [1],
    "runtimes": [{"runtime": "litert", "note": "host proxy: this machine's CPU"}],
    "pipelines": [[{"pass": "tflite", "precision": "fp32"}]],
    "peak": {"gops": 1, "bandwidth_gbs": 1},
    # the repair loop in a run (issue 22): the file judged on the task's rows, equalization tried
    # when it changes one row's class
    "accuracy_aware": {"max_drop": "0pt", "metric": "agreement", "max_trials": 1},
}
CHECKS = {
    "fairness": {"n_boot": 5, "min_size": 5},
    "robustness": None,
    "explain": None,
    "edgetpu": False,
    "ops": None,
    "debug": None,
}


@pytest.fixture()
def user_suite(tmp_path, tiny_artifacts, adult_small):
    """A suite folder: models/ (a Keras file, a deployed .tflite), data/test.npz with slices, the suite."""
    (tmp_path / "models").mkdir()
    (tmp_path / "data").mkdir()
    shutil.copy(tiny_artifacts["keras"].model_path, tmp_path / "models" / "mlp.keras")
    shutil.copy(tiny_artifacts["tflite"].model_path, tmp_path / "models" / "mlp.tflite")
    n = 60
    sex = np.where(np.arange(n) % 2 == 0, "a", "b")
    np.savez(tmp_path / "data" / "test.npz", x=adult_small.x_test[:n], y=adult_small.y_test[:n], slice_sex=sex)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(PROFILE))
    suite = {
        "name": "mine",
        "tasks": [
            {"name": "keras-mlp", "file": "models/mlp.keras", "data": "data/test.npz"},
            {"name": "deployed", "file": "models/mlp.tflite", "data": "data/test.npz"},
        ],
        "targets": [str(tmp_path / "tiny.yaml")],
        "harness": {"min_runs": 3, "min_time_s": 0.0, "warmup_runs": 1},
        "checks": CHECKS,
    }
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    return tmp_path


def test_a_suite_measures_the_users_keras_and_deployed_models(user_suite, tmp_path):
    result = run_suite(load_suite(user_suite / "suite.yaml"), tmp_path / "out")
    recs = result.results["measurements"]
    keras = [r for r in recs if r["task"] == "keras-mlp"]
    deployed = [r for r in recs if r["task"] == "deployed"]
    assert {r["runtime"]["name"] for r in keras} == {"keras", "litert"}
    assert all(r["status"] == "ok" and r["accuracy"] is not None for r in keras + deployed)
    assert [r["artifact"]["format"] for r in deployed] == ["tflite"] and deployed[0]["target"] == "tiny"
    converted = next(r for r in keras if r["runtime"]["name"] == "litert")
    assert converted["agreement"] is not None and converted["runtime"]["note"].startswith("host proxy")
    assert "fairness" in json.dumps(result.results["checks"]["keras-mlp"])  # the slices reached the checks
    rep = converted["repair"]  # the profile's accuracy_aware judged the pipeline's file
    assert rep["budget_from"] == "the profile's accuracy_aware" and rep["metric"] == "agreement"
    first, chosen = rep["trials"][0], rep["trials"][rep["chosen"]]
    assert first["tried"] == "as configured" and first["drop"] == pytest.approx(1 - converted["agreement"], abs=0.05)
    assert [t["tried"] for t in rep["trials"][1:]] == ([] if first["drop"] == 0 else ["equalize"])
    assert rep["within"] == (chosen["drop"] == 0) and converted["artifact"]["id"] == chosen["artifact"]
    assert "## Repairs within max_drop" in (result.run_dir / "report.md").read_text()
    html = (result.run_dir / "report.html").read_text()  # the repair path drawn, no section failed
    assert 'data-section="repair"' in html and "as configured" in html and 'class="section-error"' not in html
    assert not any(r.get("repair") for r in deployed)  # a deployed file has no pipeline to repair
    assert result.results["checks"]["deployed"]["skipped"]
    # Issue 19 (12): every host-proxy row says so (the deployed file's too); a multi-task table heads
    # each group with its task (before: "–"); a pipeline that made no file is not "· - · 0 threads".
    assert deployed[0]["runtime"]["note"].startswith("host proxy")
    import io

    from edge_opt.budgets.choose import record_label
    from edge_opt.cli.common import make_console, print_table

    buf = io.StringIO()
    print_table(make_console(file=buf), result.results)
    table = buf.getvalue()
    assert "keras-mlp · tiny" in table and "deployed · tiny" in table and "keras-mlp · reference" in table
    assert max(map(len, table.splitlines())) <= 120
    failed = {"artifact": {"label": "prune → qat"}, "runtime": {"name": "-", "threads": 0}}
    assert record_label(failed) == "prune → qat (pipeline)"


def test_a_missing_model_file_is_one_line_before_any_work(user_suite, tmp_path):
    suite = yaml.safe_load((user_suite / "suite.yaml").read_text())
    suite["tasks"][1]["file"] = "models/nope.onnx"
    (user_suite / "suite.yaml").write_text(yaml.safe_dump(suite))
    out = tmp_path / "out"
    assert_clean_error(run_cli("run", str(user_suite / "suite.yaml"), "--out", str(out)), "models/nope.onnx not found")
    assert not out.exists()


def test_data_that_does_not_fit_the_model_is_one_line_before_any_work(user_suite, tmp_path, adult_small):
    np.savez(user_suite / "data" / "test.npz", x=adult_small.x_test[:20, :5], y=adult_small.y_test[:20])
    out = tmp_path / "out"
    proc = cli("run", user_suite / "suite.yaml", "--out", out, "--quiet")  # in-process: refused at the door
    assert_clean_error(proc, "rows have shape (5,)")
    assert not out.exists()
    # Issue 20 (6): into an --out that exists (reports/ holds earlier runs), the refused run left
    # logs/native-<time>.log with TensorFlow's start-up chatter in it
    out.mkdir()
    (out / "logs").mkdir()
    proc = run_cli("run", str(user_suite / "suite.yaml"), "--out", str(out), "--quiet")
    assert_clean_error(proc, "rows have shape (5,)")
    assert list(out.rglob("*")) == [out / "logs"]  # the folders the user had, nothing in them


def test_a_run_measures_on_the_device_serving_the_target(user_suite, tmp_path):
    reason = sshd.available()
    if reason:
        pytest.skip(reason)
    server = sshd.start_sshd(tmp_path / "sshd")
    try:
        board = server.device(name="board", workdir=tmp_path / "remote", targets=["tiny"])
        suite = load_suite(user_suite / "suite.yaml")
        suite = suite.model_copy(update={"tasks": suite.tasks[1:]})
        result = run_suite(suite, tmp_path / "out", devices=[board])
    finally:
        server.stop()
    (rec,) = result.results["measurements"]
    assert rec["status"] == "ok" and rec["device"]["name"] == "board" and rec["device"]["transport"] == "ssh"
    assert rec["runtime"]["note"] == ""  # measured on the device itself: no host-proxy label
    fp = result.results["provenance"]["devices"]["board"]["fingerprint"]
    assert fp["cores"] >= 1 and "versions" in fp


def test_a_run_under_the_ray_engine_gives_the_same_records(user_suite, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'edge-opt[ray]')")
    from edge_opt.measure.devices import DeviceConfig

    here = DeviceConfig(name="here", targets=["tiny"])
    suite = load_suite(user_suite / "suite.yaml")
    suite = suite.model_copy(update={"tasks": suite.tasks[1:]})
    try:
        result = run_suite(suite, tmp_path / "out", devices=[here], engine="ray")
    finally:
        ray.shutdown()
    (rec,) = result.results["measurements"]
    assert rec["status"] == "ok", rec["error"]
    assert rec["device"]["name"] == "here" and rec["device"]["engine"]["name"] == "ray"
    assert rec["device"]["engine"]["node_id"] and rec["latency_ms"]["n"] >= 1
    fp = result.results["provenance"]["devices"]["here"]["fingerprint"]  # read by the device's actor
    assert fp["cores"] >= 1 and "versions" in fp
    local = run_suite(suite, tmp_path / "out-local", devices=[here]).results["measurements"][0]
    same = set(local) - {"device"}
    assert set(rec) == set(local) and {k for k in same if (rec[k] is None) != (local[k] is None)} == set()
