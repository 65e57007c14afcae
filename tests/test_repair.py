"""Accuracy-aware repair (issue 22): a file over its max_drop is rebuilt, cheapest repair first,
each candidate measured on the deployed file.

The broken models are built here from an MLP 32x8x8: one unit of its second hidden layer made
3000x larger than the rest (and the next layer's weights from it 3000x smaller). With a ReLU, the float
function is unchanged and cross-layer equalization undoes the damage exactly. With an ELU (not
positively homogeneous, so equalization refuses it) only a float fallback can help: the outlier's
layer, whose int8 tensor keeps its other units a few levels, and the layer that reads that tensor;
the others stay int8.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from edge_opt.analysis.predictor import Predictor
from edge_opt.core.artifacts import load_artifact
from edge_opt.core.errors import ConfigError
from edge_opt.core.tfkeras import keras
from edge_opt.models import load_keras
from edge_opt.passes import PassContext, get_pass
from edge_opt.passes.keras_graph import equalizable_pairs
from tests.conftest import ROOT, assert_clean_error, cli


def _outlier(source, activation: str, at: int = 1, factor: float = 3000.0):
    """The MLP at ``source`` with ``activation`` in its hidden layer ``at`` and one unit of it
    ``factor`` times larger (the next layer's weights from it as much smaller)."""
    model = load_keras(source)
    dense = [layer for layer in model.layers if layer.weights]
    k = keras()
    inputs = x = k.Input(model.inputs[0].shape[1:])
    for i, layer in enumerate(dense):
        x = k.layers.Dense(layer.units, activation=activation if i == at else layer.activation, name=layer.name)(x)
    rebuilt = k.Model(inputs, x, name="mlp")
    for layer in dense:
        rebuilt.get_layer(layer.name).set_weights(layer.get_weights())
    (w1, b1), (w2, b2) = dense[at].get_weights(), dense[at + 1].get_weights()
    unit = int(np.argmax(np.abs(w2).sum(axis=1)))
    w1[:, unit], b1[unit], w2[unit, :] = w1[:, unit] * factor, b1[unit] * factor, w2[unit, :] / factor
    rebuilt.get_layer(dense[at].name).set_weights([w1, b1])
    rebuilt.get_layer(dense[at + 1].name).set_weights([w2, b2])
    return rebuilt, dense[at].name, dense[at + 1].name


@pytest.fixture(scope="module")
def broken(tmp_path_factory, adult_small):
    """Folder with relu.keras and elu.keras (an MLP 32x8x8, one outlier unit in its second hidden
    layer: a small layer, so leaving it in float keeps most of int8's size saving), eval.npz, and
    a profile of one full-int8 TFLite pipeline; the outlier's layer and the layer reading it."""
    from edge_opt.models import ModelConfig, train_artifact

    folder = tmp_path_factory.mktemp("broken")
    # 40 short epochs: a model that ranks rows (an undertrained one predicts one class, and int8
    # cannot hurt what does not vary)
    trained = train_artifact(ModelConfig(hidden=[32, 8, 8], epochs=40), adult_small, "mlp", folder / "trained")
    for activation in ("relu", "elu"):
        model, hidden, after = _outlier(trained.model_path, activation)
        model.save(folder / f"{activation}.keras")
    np.savez(folder / "eval.npz", x=adult_small.x_test[:1000], y=adult_small.y_test[:1000])
    profile = yaml.safe_load((ROOT / "targets" / "cpu.yaml").read_text())
    profile.update(name="int8", pipelines=[[{"pass": "tflite", "precision": "int8", "calibration_samples": 64}]])
    (folder / "int8.yaml").write_text(yaml.safe_dump(profile))
    return folder, hidden, after


def _optimize(folder, model: str, out, *extra):
    proc = cli(
        "optimize", folder / model, "--target", folder / "int8.yaml", "--out", out, "--no-latency",
        "--eval", folder / "eval.npz", "--calibration", folder / "eval.npz", *extra,
    )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else None
    return proc, summary


def test_equalize_keeps_the_float_function_and_evens_the_channels(broken, tmp_path, adult_small):
    folder, hidden, _ = broken
    root = get_pass("equalize").apply(_root(folder / "relu.keras", tmp_path), {}, tmp_path, PassContext(target="cpu"))
    x = adult_small.x_test[:200]
    before, after = load_keras(folder / "relu.keras"), load_keras(root.model_path)
    np.testing.assert_allclose(after.predict(x, verbose=0), before.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    spread = root.manifest["notes"]["channel_spread"][hidden]
    assert spread["before"] > 50 and spread["after"] < 10, spread
    assert hidden not in [p.first.name for p in equalizable_pairs(load_keras(folder / "elu.keras"))]  # ELU


def _root(path, out):
    from edge_opt.run.optimize import import_artifact

    return import_artifact(load_keras(path), path, out)


def test_a_relu_outlier_is_repaired_by_equalization_alone(broken, tmp_path):
    folder, _, _ = broken
    proc, summary = _optimize(folder, "relu.keras", tmp_path / "out", "--max-drop", "1pt")
    assert proc.returncode == 0, proc.stderr
    row = summary["artifacts"][0]
    repair = row["repair"]
    assert repair["trials"][0]["drop"] > 0.01  # int8 as configured loses more than the budget
    assert repair["within"] and repair["repaired"] and repair["trials"][repair["chosen"]]["tried"] == "equalize"
    assert row["status"] == "ok" and row["precision"] == "int8" and row["accuracy_drop"] <= 0.01
    assert load_artifact(tmp_path / "out" / "artifacts" / row["artifact"]).manifest["label"] == "equalized+tflite-int8"
    assert "repaired within max_drop 1pt by equalize" in proc.stdout


def test_an_elu_outlier_keeps_the_broken_layers_in_float(broken, tmp_path):
    folder, hidden, after = broken
    proc, summary = _optimize(folder, "elu.keras", tmp_path / "out", "--max-drop", "1pt")
    assert proc.returncode == 0, proc.stderr
    row, repair = summary["artifacts"][0], summary["artifacts"][0]["repair"]
    tried = [t["tried"] for t in repair["trials"]]
    assert tried[:2] == ["as configured", "equalize"] and repair["trials"][1]["drop"] > 0.01  # CLE cannot help
    assert repair["ranked_layers"][0] == hidden, repair["ranking"]
    chosen = repair["trials"][repair["chosen"]]
    assert repair["within"] and sorted(chosen["float_layers"]) == sorted([hidden, after])
    assert row["precision"] == "mixed" and row["accuracy_drop"] <= 0.01
    notes = load_artifact(tmp_path / "out" / "artifacts" / row["artifact"]).manifest["notes"]
    assert sorted(notes["float_layers"]) == sorted([hidden, after])


def test_a_file_int8_does_not_hurt_takes_no_repair_step(broken, tmp_path, tiny_artifacts):
    folder, _, _ = broken
    model = tiny_artifacts["keras"].model_path
    out = tmp_path / "out"
    args = ("--eval", folder / "eval.npz", "--calibration", folder / "eval.npz", "--max-drop", "3pt")
    proc = cli("optimize", model, "--target", folder / "int8.yaml", "--out", out, "--no-latency", *args)
    assert proc.returncode == 0, proc.stderr
    repair = json.loads((out / "summary.json").read_text())["artifacts"][0]["repair"]
    assert len(repair["trials"]) == 1 and not repair["repaired"] and repair["within"]


def test_a_budget_no_repair_meets_keeps_the_best_file_and_says_what_was_tried(broken, tmp_path):
    folder, _, _ = broken
    profile = yaml.safe_load((folder / "int8.yaml").read_text())
    profile.update(name="int8-strict", accuracy_aware={"max_drop": "0.1pt", "metric": "agreement", "max_trials": 1})
    (folder / "strict.yaml").write_text(yaml.safe_dump(profile))
    out = tmp_path / "out"
    args = ("--eval", folder / "eval.npz", "--calibration", folder / "eval.npz", "--no-latency")
    proc = cli("optimize", folder / "elu.keras", "--target", folder / "strict.yaml", "--out", out, *args)
    assert proc.returncode == 0, proc.stderr
    row = json.loads((out / "summary.json").read_text())["artifacts"][0]
    assert row["status"] == "low-fidelity" and "no repair within max_drop 0.1pt (tried: equalize)" in row["reason"]
    assert row["repair"]["metric"] == "agreement" and row["repair"]["budget_from"] == "the profile's accuracy_aware"
    best = min(row["repair"]["trials"], key=lambda t: t["drop"])
    assert len(row["repair"]["trials"]) == 2 and row["artifact"] == best["artifact"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--max-drop", "0.5"), "bad --max-drop '0.5': write it in percentage points with its unit"),
        (("--max-drop", "5pts"), "bad --max-drop '5pts'"),
        (("--max-drop", "101pt"), "a drop is between 0pt and 100pt"),
        (("--max-drop", "1pt", "--calibration", "CALIB"), "give --eval FILE (labelled for accuracy) or --train FILE"),
    ],
)
def test_bad_budgets_exit_2_before_any_work(broken, tmp_path, args, fragment):
    folder, _, _ = broken
    args = [str(folder / "eval.npz") if a == "CALIB" else a for a in args]
    out = tmp_path / "out"
    proc = cli("optimize", folder / "relu.keras", "--target", folder / "int8.yaml", "--out", out, *args)
    assert_clean_error(proc, fragment)
    assert not (out / "summary.json").exists() and not (out / "artifacts").exists()


def test_a_malformed_max_drop_in_a_profile_is_exit_2(broken, tmp_path):
    folder, _, _ = broken
    profile = yaml.safe_load((folder / "int8.yaml").read_text())
    profile["pipelines"][0][0]["max_drop"] = 0.5
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(profile))
    proc = cli("optimize", folder / "relu.keras", "--target", tmp_path / "p.yaml", "--out", tmp_path / "o")
    assert_clean_error(proc, "bad max_drop 0.5: write it in percentage points")


@pytest.mark.parametrize(
    ("name", "key"), [("tflite", "float_layers"), ("ort_quantize", "exclude"), ("nncf", "ignored")]
)
def test_each_quantizer_leaves_the_named_layers_in_float(broken, tmp_path, adult_small, name, key):
    """The three per-layer fallbacks (TF's denylisted nodes, ORT's nodes_to_exclude, NNCF's
    ignored_scope): the outlier's two layers in float cut the file's error against the float
    model, and a name that is no layer's is one clear error."""
    folder, hidden, after = broken
    root = _root(folder / "elu.keras", tmp_path)
    ctx = PassContext(target="cpu", calibration=adult_small.calibration(64), calibration_source="test")
    parent = root if name == "tflite" else get_pass("onnx").apply(root, {}, tmp_path, ctx)
    base = {"precision": "int8"} if name == "tflite" else {}
    full = get_pass(name).apply(parent, base, tmp_path, ctx)
    mixed = get_pass(name).apply(parent, {**base, key: [hidden, after]}, tmp_path, ctx)
    assert mixed.precision == "mixed" and mixed.manifest["notes"]["float_layers"] == [hidden, after]
    x = adult_small.x_test[:500]
    want = Predictor(root.model_path).outputs(x)

    def error(artifact):
        return float(np.abs(Predictor(artifact.model_path).outputs(x) - want).mean())

    assert error(mixed) < error(full) / 3, (error(mixed), error(full))
    with pytest.raises(ConfigError, match="'nope': no (op|node) of the model is that layer's"):
        get_pass(name).apply(parent, {**base, key: ["nope"]}, tmp_path, ctx)


def _trial(tried: str, drop: float, size: int, p50: float | None):
    from pathlib import Path

    from edge_opt.core.artifacts import Artifact
    from edge_opt.repair import Score, Trial

    art = Artifact(Path(tried), {"id": tried, "size_bytes": {"raw": size}})
    return Trial(tried, (), "ok", art, Score(0.8 - drop, drop), p50)


def test_the_choice_among_candidates_weighs_size_then_latency():
    """The rule alone, on recorded trials (sizes in bytes, p50 in ms): within budget, the first that
    keeps both savings; else the fastest that keeps the size saving; else the smallest; else the
    one that lost least."""
    from edge_opt.repair import Limits, RepairBudget, choose_trial

    budget, limits = RepairBudget(0.01), Limits(size=100, latency_ms=1.0, fp32_ms=2.0)
    first = _trial("as configured", 0.05, 60, 0.5)
    slow, big, slower = _trial("slow", 0.0, 90, 1.5), _trial("big", 0.0, 150, 0.4), _trial("slower", 0.0, 95, 1.9)
    assert choose_trial([_trial("as configured", 0.005, 60, 0.5), slow], budget, limits)[1] == "as configured"
    chosen, why = choose_trial([first, slower, big, slow], budget, limits)
    assert chosen is slow and "fastest of those that kept the size saving" in why
    kept = _trial("kept", 0.008, 99, 0.9)
    assert choose_trial([first, slow, kept, big], budget, limits)[0] is kept
    assert choose_trial([first, big, _trial("bigger", 0.0, 200, 0.1)], budget, limits)[0] is big  # the smallest
    worse = _trial("worse", 0.08, 50, 0.4)
    assert choose_trial([first, worse], budget, limits) == (first, "none within budget: the one that lost least")
    assert choose_trial([first, slow], budget, Limits(size=100))[0] is slow  # no latency known: size alone


def test_pruning_backs_off_the_most_sensitive_layer_first(broken, tmp_path, adult_small):
    """A pruning pipeline over its budget: after equalization, the pruned layer the debugger ranks
    first gets its own sparsity 0.1 lower (the file is fp32: no layer to leave in float)."""
    folder, _, _ = broken
    profile = yaml.safe_load((folder / "int8.yaml").read_text())
    prune = {"pass": "prune", "target_sparsity": 0.9, "epochs": 1}
    profile.update(name="pruned", pipelines=[[prune, {"pass": "tflite", "precision": "fp32"}]])
    profile["accuracy_aware"] = {"max_drop": "0pt", "metric": "agreement", "max_trials": 2}
    (tmp_path / "pruned.yaml").write_text(yaml.safe_dump(profile))
    np.savez(tmp_path / "train.npz", x=adult_small.x_train, y=adult_small.y_train)
    out = tmp_path / "out"
    proc = cli(
        "optimize", folder / "relu.keras", "--target", tmp_path / "pruned.yaml", "--out", out, "--no-latency",
        "--train", tmp_path / "train.npz", "--eval", folder / "eval.npz",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    repair = json.loads((out / "summary.json").read_text())["artifacts"][0]["repair"]
    tried = [t["tried"] for t in repair["trials"]]
    first = repair["ranked_layers"][0]
    assert tried == ["as configured", "equalize", f"prune: gentler on {first}"], tried
    assert repair["trials"][2]["label"].endswith("prune-90-per1+tflite-fp32"), repair["trials"][2]


def test_back_off_candidates_accumulate_in_the_ranked_order():
    """Each candidate backs one more layer off, the ranked ones first, then the rest in model order."""
    from edge_opt.passes import get_pass
    from edge_opt.passes.base import Step
    from edge_opt.repair.loop import backoff_candidates

    steps = [Step.model_validate({"pass": "prune", "target_sparsity": 0.8}), Step.model_validate({"pass": "tflite"})]
    cfg = get_pass("prune").config(steps[0].config)
    found = backoff_candidates(steps, 0, cfg, ["a", "b", "c"], ("c", "a"))
    assert [tried for tried, _ in found] == [
        "prune: gentler on c",
        "prune: gentler on c, a",
        "prune: gentler on c, a, b",
    ]
    last = get_pass("prune").config(found[-1][1][0].config)
    assert last.per_layer == {"c": 0.7, "a": 0.7, "b": 0.7} and found[-1][1][1] == steps[1]


def test_bias_correction_takes_out_the_mean_error_of_int8_weights(tmp_path):
    """One Dense layer whose per-tensor int8 scale is set by a single large weight, so the small
    ones round to zero: the file's outputs are off by E[x] · W_small on average. After
    ``bias_correct`` the mean error of the LiteRT file against the float model is over 5x smaller
    (what remains is the activations' rounding)."""
    from edge_opt.runtimes import get_backend_class

    rng = np.random.default_rng(0)
    k = keras()
    inputs = k.Input((16,))
    model = k.Model(inputs, k.layers.Dense(4, name="dense")(inputs))
    kernel = rng.uniform(0.01, 0.03, (16, 4)).astype("float32")
    kernel[0, 0] = 10.0  # per tensor: scale 10/127, every other weight rounds to 0
    model.get_layer("dense").set_weights([kernel, np.zeros(4, "float32")])
    root = _root_of(model, tmp_path)
    x = rng.uniform(0, 1, (512, 16)).astype("float32")
    ctx = PassContext(target="cpu", calibration=x[:256], calibration_source="uniform rows")
    int8 = {"precision": "int8", "per_channel": False}

    def mean_error(artifact):
        backend = get_backend_class("litert")()
        backend.load(str(get_pass("tflite").apply(artifact, int8, tmp_path, ctx).model_path))
        return float(np.abs((backend.predict(x[256:]) - model.predict(x[256:], verbose=0)).mean(axis=0)).max())

    corrected = get_pass("bias_correct").apply(root, {"per_channel": False}, tmp_path, ctx)
    before, after = mean_error(root), mean_error(corrected)
    assert before > 0.1 and after < before / 5, (before, after)  # measured: 0.165 -> 0.019
    assert corrected.manifest["notes"]["largest_shift"]["dense"] > 0.1


def _root_of(model, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    return _root(path, tmp_path / "artifacts")
