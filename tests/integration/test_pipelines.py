"""A run with a pipeline that cannot apply: it is recorded as skipped with its reason, and the
other pipelines of the target go on."""

import yaml

from edge_opt.runner import run_suite
from edge_opt.suite import Suite


def test_unsupported_pass_is_skipped_with_reason_and_the_run_goes_on(tmp_path):
    profile = {
        "name": "tiny-cpu",
        "precision": "fp32",
        "threads": [1],
        "runtimes": [{"runtime": "litert"}],
        "pipelines": [[{"pass": "nmf", "components": 4, "epochs": 1}], [{"pass": "tflite", "precision": "fp32"}]],
        "peak": {"gops": 10, "bandwidth_gbs": 1},
    }
    path = tmp_path / "tiny-cpu.yaml"
    path.write_text(yaml.safe_dump(profile))
    suite = Suite.model_validate(
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
            "checks": {"fairness": None, "robustness": None, "explain": None, "edgetpu": False},
        }
    )
    result = run_suite(suite, tmp_path / "out")
    recs = [r for r in result.results["measurements"] if r["target"] == "tiny-cpu"]
    skipped = [r for r in recs if r["status"] == "skipped"]
    assert len(skipped) == 1
    assert "pipeline nmf cannot apply" in skipped[0]["error"] and "non-negative" in skipped[0]["error"]
    ok = [r for r in recs if r["status"] == "ok"]
    assert len(ok) == 1 and ok[0]["artifact"]["label"] == "tflite-fp32"
