"""The architecture search on real training, real conversion and the real harness, kept tiny."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from edge_opt.core.artifacts import sha256_file
from edge_opt.measure.harness import HarnessOptions
from tests.conftest import ROOT, assert_clean_error, cli, run_cli

FAST = HarnessOptions(min_runs=10, min_time_s=0.02, warmup_runs=1)


def _ctx(tmp_path: Path, data, profile, **nas):
    from edge_opt.nas.search import SearchContext
    from edge_opt.nas.space import NasConfig

    cfg = NasConfig.model_validate({"train_rows": 200, "val_rows": 100, "predictor": None, **nas})
    return SearchContext(
        task="t",
        cfg=cfg,
        data=data,
        profile=profile,
        out_dir=tmp_path / "nas",
        artifacts_dir=tmp_path / "art",
        harness=FAST,
        calibration_rows=32,
    )


def test_cnn_corners_build_convert_and_a_trials_latency_is_its_harness_record(tmp_path):
    from edge_opt.datasets import load_dataset
    from edge_opt.nas.predictor import split_by_kind
    from edge_opt.nas.space import architecture, check_space, corners
    from edge_opt.targets import load_profile

    data = load_dataset("digits", train_rows=300)
    space = {
        "kind": "cnn",
        "blocks": {"min": 1, "max": 2},
        "filters": [4, 8],
        "kernel": [3, 5],
        "conv": ["separable", "standard"],
        "downsample": ["pool", "stride"],
    }
    ctx = _ctx(tmp_path, data, load_profile("mobile"), space=space, predictor={"ops_runs": 5})
    check_space(ctx.cfg.space, data.input_shape, data.n_classes, "test")
    for name in ("smallest", "largest"):
        rec = ctx.trial(name, {}, architecture(ctx.cfg.space, corners(ctx.cfg.space)[name]))
        assert rec.status == "ok", rec.reason
        # the trial keeps its op profile: a separable block is a depthwise and a 1x1 conv op, then
        # the pooling and the dense head, each kind with its share of the p50 (issue 21, 5)
        by_kind = split_by_kind(rec.record)
        assert rec.record["ops_method"] == "isolated" and by_kind is not None, rec.record.get("ops_note")
        assert all(by_kind[k] > 0 for k in ("depthwise", "conv", "pool", "dense")), by_kind
        assert sum(by_kind.values()) == pytest.approx(rec.metrics["latency_p50_ms"])
        assert rec.features["op_depthwise"] == rec.features["op_conv"] == rec.features["separable"] > 0
        assert rec.record["artifact"]["format"] == "tflite" and rec.record["artifact"]["precision"] == "int8"
        # the latency is the harness record of the deployed file, nothing else
        assert rec.metrics["latency_p50_ms"] == rec.record["latency_ms"]["p50"]
        assert rec.metrics["latency_p90_ms"] == rec.record["latency_ms"]["p90"]
        assert sha256_file(Path(rec.record["artifact"]["path"])) == rec.record["artifact"]["sha256"]
        assert rec.record["runtime"]["name"] == "litert" and rec.record["runtime"]["threads"] == 1
        assert rec.metrics["params_trainable"] > 0
        assert all(v >= 0 for v in rec.seconds.values()) and rec.seconds["measure"] > 0


def test_a_hard_budget_rejects_with_its_reason_and_the_search_goes_on(tmp_path, adult_small):
    from edge_opt.nas.search import run_search
    from edge_opt.targets import load_profile

    mobile = yaml.safe_load((ROOT / "targets" / "mobile.yaml").read_text())
    mobile["budgets"] = ["size.raw <= 5KB"]  # mlp32 (about 6.6 KB int8) breaks it, mlp8 (about 3.3 KB) does not
    (tmp_path / "small.yaml").write_text(yaml.safe_dump({**mobile, "name": "small"}))
    profile = load_profile(tmp_path / "small.yaml")
    space = {"kind": "mlp", "depth": {"min": 1, "max": 1}, "width": [8, 32], "dropout": [0.0]}
    ctx = _ctx(
        tmp_path,
        adult_small,
        profile,
        space=space,
        objective="hard",
        trials=2,
        oracle="random",
        baseline={"hidden": [32], "epochs": 1},
    )
    result = run_search(ctx)
    assert result.baseline.status == "rejected" and "size.raw" in result.baseline.reason
    by_width = {t.architecture["hidden"][0]: t for t in result.trials}
    assert set(by_width) == {8, 32}  # a random search of a two-point space sees both
    assert by_width[32].status == "rejected" and "size.raw" in by_width[32].reason and by_width[32].score is None
    assert by_width[8].status == "ok" and by_width[8].score == by_width[8].metrics["accuracy"]
    assert result.chosen is by_width[8]


SPACE = {
    "name": "tiny",
    "dataset": "adult",
    "train_rows": 600,
    "targets": ["mobile"],
    "harness": {"min_runs": 10, "min_time_s": 0.02, "warmup_runs": 1},
    "nas": {
        "space": {"kind": "mlp", "depth": {"min": 1, "max": 2}, "width": [8, 16, 32]},
        "baseline": {"hidden": [32], "epochs": 1},
        "trials": 4,
        "oracle": "random",
        "train_rows": 300,
        "val_rows": 100,
        "predictor": {"after": 3, "skip_factor": 1000, "ops_runs": 5},
    },
}


def test_resume_after_a_kill_reruns_no_finished_trial(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    out = tmp_path / "out"
    records = out / "nas-tiny" / "tiny" / "mobile" / "tuner" / "records"
    args = [sys.executable, "-m", "edge_opt.cli", "nas", str(space), "--out", str(out), "-q"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list(records.glob("*.json")):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = {p.name: p.stat().st_mtime_ns for p in records.glob("*.json")}
    assert done, "no trial finished before the kill"
    again = run_cli("nas", str(space), "--out", str(out), "-q")
    assert again.returncode == 0, again.stderr
    for name, mtime in done.items():  # a finished trial is never run (or written) again
        assert (records / name).stat().st_mtime_ns == mtime
    result = json.loads((out / "nas-tiny" / "nas.json").read_text())["tasks"]["tiny"]["mobile"]
    assert len(result["trials"]) == 4 and all(t["status"] == "ok" for t in result["trials"])
    assert result["front_latency"] and result["hypervolume"] > 0
    # every trial keeps its op profile, and the predictor is scored both ways (issue 21, 5)
    assert all(t["record"]["ops"] and t["record"]["ops_method"] == "isolated" for t in result["trials"])
    predictor = result["predictor"]
    assert predictor["used"] in ("per-op-type", "whole-model") and predictor["accuracy"]["predictor"] == "whole-model"
    assert predictor["accuracy_per_op_type"]["predictor"] == "per-op-type"
    assert predictor["accuracy_per_op_type"]["held_out"] == 4
    # Issue 19 (13): the standalone search gets its report.html (its trials and fronts), and the
    # table reads in the units of the run's (µs, KB), not "p50 ms 0.0011"
    html = (out / "nas-tiny" / "report.html").read_text()
    assert html.count('data-section="nas"') == 1 and 'class="section-error"' not in html
    assert 'data-front="' in html and "<script" not in html
    assert "Report: " in again.stdout and " µs" in again.stdout and " KB" in again.stdout
    # the same command with other settings is refused, not mixed into the old search
    changed = run_cli("nas", str(space), "--out", str(out), "--trials", "5")
    assert_clean_error(changed, "holds a search of another space or settings")


@pytest.mark.parametrize(
    ("space", "fragment"),
    [
        ({"kind": "mlp", "width": []}, "width"),
        ({"kind": "mlp", "depth": {"min": 3, "max": 1}}, "min 3 > max 1"),
        ({"kind": "transformer"}, "transformer"),
        ({"kind": "cnn", "blocks": {"min": 1, "max": 5}, "downsample": ["pool"]}, "corner"),
    ],
)
def test_a_bad_space_is_one_line_and_exit_2(tmp_path, space, fragment):
    bad = {**SPACE, "dataset": "digits" if space["kind"] == "cnn" else "adult", "nas": {**SPACE["nas"], "space": space}}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(bad))
    proc = cli("nas", path, "--out", tmp_path / "out")  # in-process: refused before any work
    assert_clean_error(proc, fragment)
    assert not list((tmp_path / "out").rglob("*.keras"))  # nothing trained
    assert not list((tmp_path / "out").glob("nas-*"))  # Issue 20 (6): before, nas-<name>/plan.json was left


def test_holdout_adds_train_rows_to_validation_that_no_trial_trains_on(tmp_path):
    import numpy as np

    from edge_opt.datasets import load_dataset
    from edge_opt.targets import load_profile

    digits = load_dataset("digits")  # 180 val images: one is 0.56 points
    space = {"kind": "cnn", "blocks": {"min": 1, "max": 1}, "filters": [4]}
    ctx = _ctx(tmp_path, digits, load_profile("mobile"), space=space, holdout=0.25, train_rows=None, val_rows=10**6)
    held = round(0.25 * len(digits.x_train))
    assert len(ctx.x_val) == len(digits.x_val) + held
    assert len(ctx.x_train) == len(digits.x_train) - held
    seen = {row.tobytes() for row in ctx.x_train}
    extra = ctx.x_val[len(digits.x_val) :]
    assert not any(row.tobytes() in seen for row in extra)  # a held-out row is never trained on
    assert np.array_equal(ctx.x_val[: len(digits.x_val)], digits.x_val)


def test_model_targets_name_a_target_as_the_suite_does_by_name_or_by_path(tmp_path):
    """Before: a target named by its YAML path, in the suite's targets and in model.targets, was never searched."""
    from edge_opt.run.suite import Suite
    from edge_opt.targets import load_profile

    profile = yaml.safe_load((ROOT / "targets" / "mobile.yaml").read_text())
    (tmp_path / "phone.yaml").write_text(yaml.safe_dump({**profile, "name": "phone"}))
    phone = str(tmp_path / "phone.yaml")
    nas = {"kind": "nas", **SPACE["nas"]}

    def searched(targets):
        model = {**nas, "targets": targets} if targets else nas
        suite = Suite.model_validate(
            {"name": "s", "tasks": [{"name": "t", "dataset": "adult", "model": model}], "targets": ["cpu", phone]}
        )
        profiles = [load_profile(t) for t in suite.targets]
        return [p.name for p in suite.searched_profiles(suite.tasks[0], profiles)]

    assert searched([phone]) == ["phone"]
    assert searched(["cpu"]) == ["cpu"]
    assert searched(None) == ["cpu", "phone"]
