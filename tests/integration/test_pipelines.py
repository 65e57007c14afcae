"""Runs with pipelines that cannot apply, that end in the same artifact, or that are wrong."""

import json
import sqlite3

import numpy as np
import pytest
import yaml

from edge_opt.core.errors import ConfigError
from edge_opt.run.runner import run_suite
from edge_opt.run.suite import Suite
from tests.conftest import assert_clean_error, run_cli

PROFILE = {
    "name": "tiny-cpu",
    "precision": "fp32",
    "threads": [1],
    "runtimes": [{"runtime": "litert"}],
    "peak": {"gops": 10, "bandwidth_gbs": 1},
}


def _suite(path) -> Suite:
    return Suite.model_validate(
        {
            "name": "pipelines",
            "tasks": [
                {
                    "name": "adult",
                    "dataset": "adult",
                    "train_rows": 500,
                    "test_rows": 200,
                    "model": {"hidden": [8], "epochs": 1},
                }
            ],
            "targets": [str(path)],
            "harness": {"min_runs": 5, "min_time_s": 0.01, "warmup_runs": 1},
            "checks": {
                "fairness": None,
                "robustness": None,
                "explain": None,
                "edgetpu": False,
                "ops": None,
                "debug": None,
            },
        }
    )


def test_a_pass_that_cannot_apply_is_skipped_and_one_artifact_is_measured_once(tmp_path):
    profile = {
        **PROFILE,
        "pipelines": [
            [{"pass": "nmf", "components": 4, "epochs": 1}, {"pass": "tflite", "precision": "fp32"}],
            [{"pass": "tflite", "precision": "fp32"}],
            [{"pass": "tflite"}],  # the same artifact again (fp32 is the default)
        ],
    }
    path = tmp_path / "tiny-cpu.yaml"
    path.write_text(yaml.safe_dump(profile))
    result = run_suite(_suite(path), tmp_path / "out")
    recs = [r for r in result.results["measurements"] if r["target"] == "tiny-cpu"]
    skipped = [r for r in recs if r["status"] == "skipped"]
    assert len(skipped) == 1
    assert "pipeline nmf → tflite cannot apply" in skipped[0]["error"] and "non-negative" in skipped[0]["error"]
    # Two pipelines end in one artifact: one record (before: the same dict twice, its path
    # rewritten twice, its samples lost, two history rows).
    ok = [r for r in recs if r["status"] == "ok"]
    assert len(ok) == 1 and ok[0]["artifact"]["label"] == "tflite-fp32"
    ids = [r["id"] for r in result.results["measurements"]]
    assert len(ids) == len(set(ids))
    on_disk = json.loads((result.run_dir / "results.json").read_text())
    assert (result.run_dir / on_disk["measurements"][-1]["artifact"]["path"]).is_file()
    with np.load(result.run_dir / "samples.npz") as npz:
        assert ok[0]["id"] in npz.files and npz[ok[0]["id"]].size >= 5
    with sqlite3.connect(tmp_path / "out" / "history.sqlite") as con:
        assert con.execute("select count(*) from measurements").fetchone()[0] == len(ids)
        assert sorted(r for (r,) in con.execute("select record_id from measurements")) == sorted(ids)


@pytest.mark.parametrize(
    ("pipeline", "says"),
    [
        ([{"pass": "tflitee"}], "field 'pipelines.0.0': unknown pass 'tflitee'"),
        ([{"pass": "tflite", "precison": "int8"}], "field 'pipelines.0.0': pass 'tflite': field 'precison'"),
        ([{"pass": "openvino"}], "pass 'openvino' takes onnx input, but the step before gives keras"),
        ([{"pass": "onnx"}], "field 'pipelines.0': ends in onnx, which no runtime of the profile reads (litert)"),
    ],
)
def test_a_wrong_pipeline_is_a_config_error_before_any_training(tmp_path, pipeline, says):
    """Before: an unknown pass became a skipped record, a misspelt field a failed record after
    training, and `edge-opt run` exited 0."""
    path = tmp_path / "tiny-cpu.yaml"
    path.write_text(yaml.safe_dump({**PROFILE, "pipelines": [pipeline]}))
    with pytest.raises(ConfigError, match="^" + str(path).replace(".", r"\.") + ".*"):
        run_suite(_suite(path), tmp_path / "out")
    with pytest.raises(ConfigError) as err:
        run_suite(_suite(path), tmp_path / "out")
    assert says in str(err.value)
    assert not (tmp_path / "out").exists()  # nothing written, nothing trained
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(_suite(path).model_dump(mode="json")))
    assert_clean_error(run_cli("run", str(suite), "--out", str(tmp_path / "cli")), says)
