"""Fairness remediation and adversarial training as passes (issue 23), on a small Adult MLP.

How "more than noise" is known: each metric is measured on the same 16,281 test rows before and
after, and the change asked for is several times what reseeding the same fine-tune moves it.
Measured when writing these tests: the parity difference by sex 0.209 before, 0.098 and 0.111
after reweighing with seeds 0 and 1 (asked: below 0.149); 0.009 after thresholds; PGD accuracy
at 0.3 on 500 validation rows 0.722 before, 0.792 after adversarial training with either seed
(asked: above 0.762).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from edge_opt.core.errors import ConfigError
from edge_opt.models import ModelConfig, load_keras, predicted_labels, train_artifact
from edge_opt.passes import PassContext, get_pass
from edge_opt.passes.remediate import kamiran_calders, parity_difference
from tests.conftest import ROOT, assert_clean_error, cli


@pytest.fixture(scope="module")
def adult_6k():
    """6,000 Adult training rows: enough for a model whose predictions differ by sex (1,000 give
    one that predicts almost no positives, and so no gap to narrow)."""
    from edge_opt.datasets import load_dataset

    return load_dataset("adult", train_rows=6000)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, adult_6k):
    """An MLP 16 trained 10 epochs on them (0.845 accuracy, parity difference by sex 0.21), its context."""
    out = tmp_path_factory.mktemp("remediate")
    root = train_artifact(ModelConfig(hidden=[16], epochs=10), adult_6k, "mlp", out)
    ctx = PassContext(target="cpu", data=adult_6k, seed=0, calibration=adult_6k.calibration(64))
    return root, ctx, out


def _parity(path, data, split="test"):
    x, groups = getattr(data, f"x_{split}"), getattr(data, f"slices_{split}")["sex"]
    labels = predicted_labels(load_keras(path).predict(x, verbose=0), data.n_classes)
    return parity_difference(labels, groups), float(np.mean(labels == getattr(data, f"y_{split}")))


def test_reweighing_weights_make_group_and_label_independent(adult_small):
    groups, y = adult_small.slices_train["sex"], adult_small.y_train
    weights, table = kamiran_calders(groups, y)
    assert set(table) == {"Female|0", "Female|1", "Male|0", "Male|1"} and table["Female|1"] > 1 > table["Male|1"]
    for g in ("Female", "Male"):  # weighted, each group has the overall share of positives
        share = np.sum(weights[(groups == g) & (y == 1)]) / np.sum(weights[groups == g])
        assert share == pytest.approx(np.mean(y == 1), abs=1e-6)


def test_reweigh_narrows_the_parity_gap(fitted, adult_6k):
    root, ctx, out = fitted
    fixed = get_pass("reweigh").apply(root, {"column": "sex", "epochs": 5}, out, ctx)
    (before, _), (after, _) = _parity(root.model_path, adult_6k), _parity(fixed.model_path, adult_6k)
    assert before > 0.15 and after < before - 0.06, (before, after)
    assert (
        fixed.manifest["notes"]["after"]["val_parity_difference"]
        < fixed.manifest["notes"]["before"]["val_parity_difference"]
    )


def test_fair_thresholds_are_baked_into_the_graph_and_survive_int8(fitted, adult_6k):
    root, ctx, out = fitted
    fixed = get_pass("fair_thresholds").apply(root, {"column": "sex"}, out, ctx)
    notes = fixed.manifest["notes"]
    assert set(notes["thresholds"]) == {"Female", "Male"} and notes["input_columns"] == {
        "Female": adult_6k.feature_names.index("sex=Female"),
        "Male": adult_6k.feature_names.index("sex=Male"),
    }
    assert notes["thresholds"]["Female"] < notes["thresholds"]["Male"]  # more Female rows selected
    (before, acc_before), (after, acc_after) = (
        _parity(root.model_path, adult_6k),
        _parity(fixed.model_path, adult_6k),
    )
    assert after < before / 2 and acc_after > acc_before - 0.03, (before, after, acc_before, acc_after)
    int8 = get_pass("tflite").apply(fixed, {"precision": "int8"}, out, ctx)  # the file that ships keeps it
    from edge_opt.analysis.predictor import Predictor

    labels = predicted_labels(Predictor(int8.model_path).outputs(adult_6k.x_test), 2)
    assert parity_difference(labels, adult_6k.slices_test["sex"]) < before / 2


def test_adversarial_training_raises_accuracy_under_attack(fitted):
    root, ctx, out = fitted
    fixed = get_pass("adversarial").apply(root, {"attack": "pgd", "epsilon": 0.3, "epochs": 3}, out, ctx)
    notes, key = fixed.manifest["notes"], "val_pgd_accuracy@0.3"
    assert notes["after"][key] > notes["before"][key] + 0.04, notes
    assert notes["attackable_features"] == 6  # Adult's continuous columns only


def test_adversarial_training_weighed_by_a_column_keeps_the_parity_fix(fitted, adult_6k):
    """One fine-tune with both fixes: PGD rows and reweighing's weights; the parity gap narrows as
    reweighing alone narrows it (a plain adversarial fine-tune leaves it where it was)."""
    root, ctx, out = fitted
    cfg = {"attack": "pgd", "epsilon": 0.3, "epochs": 3}
    plain = get_pass("adversarial").apply(root, cfg, out, ctx)
    weighed = get_pass("adversarial").apply(root, {**cfg, "weigh_by": "sex"}, out, ctx)
    (before, _), (after, _) = _parity(plain.model_path, adult_6k), _parity(weighed.model_path, adult_6k)
    assert after < before - 0.06, (before, after)
    key = "val_pgd_accuracy@0.3"
    assert weighed.manifest["notes"]["after"][key] > weighed.manifest["notes"]["before"][key] + 0.04


def _optimize_with_slices(tiny_artifacts, adult_small, tmp_path, pipelines):
    """``optimize`` of the tiny model with a cpu profile of ``pipelines`` and your own rows, their
    ``slice_sex`` in --train: (the finished command, the out folder)."""
    np.savez(
        tmp_path / "train.npz", x=adult_small.x_train, y=adult_small.y_train, slice_sex=adult_small.slices_train["sex"]
    )
    profile = yaml.safe_load((ROOT / "targets" / "cpu.yaml").read_text())
    profile.update(name="fix", pipelines=pipelines)
    (tmp_path / "fix.yaml").write_text(yaml.safe_dump(profile))
    out = tmp_path / "out"
    proc = cli(
        "optimize", tiny_artifacts["keras"].model_path, "--target", tmp_path / "fix.yaml", "--out", out,
        "--train", tmp_path / "train.npz", "--no-latency",
    )  # fmt: skip
    return proc, out


@pytest.mark.parametrize(
    ("step", "fragment"),
    [
        ({"pass": "reweigh", "column": "zodiac"}, "column 'zodiac' is not a slice of the data user (sex)"),
        ({"pass": "adversarial", "weigh_by": "zodiac"}, "column 'zodiac' is not a slice"),
        ({"pass": "fair_thresholds", "column": "sex"}, "'sex' is not an input of the model"),
        ({"pass": "fair_thresholds", "column": "sex", "constraint": "parity"}, "constraint"),
        ({"pass": "adversarial", "epsilon": 50}, "epsilon 50 is outside the features' range"),
    ],
)
def test_bad_remediation_input_is_exit_2_before_any_training(tiny_artifacts, adult_small, tmp_path, step, fragment):
    """Through optimize with your own rows (``slice_sex`` in --train): one line, exit 2, nothing written."""
    proc, out = _optimize_with_slices(tiny_artifacts, adult_small, tmp_path, [[step, {"pass": "tflite"}]])
    assert_clean_error(proc, fragment)
    assert not (out / "summary.json").exists()


def test_a_model_without_probabilities_is_refused(tmp_path, adult_small):
    from edge_opt.core.tfkeras import keras

    k = keras()
    inputs = k.Input((adult_small.x_train.shape[1],))
    model = k.Model(inputs, k.layers.Dense(1)(inputs))
    for name in ("reweigh", "fair_thresholds", "adversarial"):
        p = get_pass(name)
        with pytest.raises(ConfigError, match="must end in a Dense layer with a sigmoid or softmax"):
            p.preflight(p.config({"column": "sex"} if name != "adversarial" else {}), adult_small, model)


def test_remediated_pipelines_run_through_optimize_with_your_own_slices(tiny_artifacts, adult_small, tmp_path):
    columns = {
        "Female": adult_small.feature_names.index("sex=Female"),
        "Male": adult_small.feature_names.index("sex=Male"),
    }
    thresholds = {"pass": "fair_thresholds", "column": "sex", "inputs": columns}
    pipelines = [
        [{"pass": "reweigh", "column": "sex", "epochs": 1}, {"pass": "tflite"}],
        [thresholds, {"pass": "tflite"}],
    ]
    proc, out = _optimize_with_slices(tiny_artifacts, adult_small, tmp_path, pipelines)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((out / "summary.json").read_text())["artifacts"]
    assert [r["status"] for r in rows] == ["ok", "ok"], rows
    assert rows[0]["label"].startswith("reweighed-sex") and rows[1]["label"].startswith("thresholds-sex")


def test_defensive_distillation_keeps_accuracy_and_flattens_gradients(fitted, adult_6k):
    """The copy trained at T=10 and run at T=1 answers like the model, with saturated outputs:
    for many rows the input gradient the white-box attacks follow is gone (what it is known for)."""
    from edge_opt.attacks import FloatModel

    root, ctx, out = fitted
    fixed = get_pass("defensive_distill").apply(
        root, {"temperature": 10, "epochs": 5, "learning_rate": 0.005}, out, ctx
    )
    x, y = adult_6k.x_val[:300].astype("float32"), adult_6k.y_val[:300]
    (_, acc_before), (_, acc_after) = (
        _parity(root.model_path, adult_6k, "val"),
        _parity(fixed.model_path, adult_6k, "val"),
    )
    assert acc_after > acc_before - 0.03, (acc_before, acc_after)

    def flat(path):  # the share of rows whose loss has no input gradient left in float32
        grad = FloatModel.load(path).loss_gradient(x, y)[0]
        return float(np.mean(np.abs(grad).max(axis=1) < 1e-7))

    before, after = flat(root.model_path), flat(fixed.model_path)
    assert before < 0.05 and after > 0.3, (before, after)


def test_every_candidate_is_checked_and_trust_budgets_then_choose(fitted, adult_6k):
    """``checks: candidates: all`` on real files: the plain int8 file, the reweighed one, and the
    reweighed float model it came from are all checked; the fix shows on the float model and on
    the file. A parity budget between the two files' gaps then picks the slower, fairer file,
    and does not while one candidate is unchecked (the gate holds the chosen one to it later)."""
    from edge_opt.analysis.checks import run_checks
    from edge_opt.analysis.config import ChecksConfig
    from edge_opt.budgets.choose import choose
    from edge_opt.budgets.grammar import Check
    from edge_opt.targets import load_profile

    root, ctx, out = fitted
    plain = get_pass("tflite").apply(root, {"precision": "int8"}, out, ctx)
    fixed_float = get_pass("reweigh").apply(root, {"column": "sex", "epochs": 5}, out, ctx)
    fixed = get_pass("tflite").apply(fixed_float, {"precision": "int8"}, out, ctx)

    def record(art, p50):
        runtime = {"name": "litert", "device": "cpu", "threads": 1}
        latency = {"p50": p50, "median_ci": [p50, p50]}
        return {"id": art.id[:12], "task": "t", "target": "mobile-fair", "artifact": art.summary(),
                "runtime": runtime, "status": "ok", "latency_ms": latency, "accuracy_drop": 0.0}  # fmt: skip

    records = [record(plain, 0.001), record(fixed, 0.002)]
    cfg = ChecksConfig(
        candidates="all",
        fairness={"columns": ["sex"], "n_boot": 20},
        robustness=None,
        explain=None,
        ops=None,
        debug=None,
    )
    entries = run_checks(adult_6k, root, records, [load_profile("mobile-fair")], cfg)["artifacts"]
    assert set(entries) == {plain.id, fixed.id, fixed_float.id}
    assert entries[fixed.id]["own_float"] == fixed_float.id and entries[fixed_float.id]["float_of"] == [fixed.id]
    gap = {k: e["summary"]["fairness"]["demographic_parity_difference"] for k, e in entries.items()}
    assert gap[fixed_float.id] < gap[plain.id] - 0.05 and gap[fixed.id] < gap[plain.id] - 0.05, gap
    kept = entries[fixed.id]["against_own_float"]["fairness"]["demographic_parity_difference"]
    assert kept == pytest.approx(gap[fixed.id] - gap[fixed_float.id])  # what int8 did to the fix

    budget = [Check.parse(f"fairness.demographic_parity_difference <= {(gap[plain.id] + gap[fixed.id]) / 2:.4f}")]
    checked = [dict(r, checks=entries[r["artifact"]["id"]]["summary"]) for r in records]
    assert choose("mobile-fair", checked, budget).chosen["artifact"]["id"] == fixed.id
    assert choose("mobile-fair", [checked[0], records[1]], budget).chosen["artifact"]["id"] == plain.id
