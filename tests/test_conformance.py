"""Every registered backend and pass (and a plug-in of each from tests/plugins) through its
conformance suite (edge_opt.conformance), as scikit-learn runs every estimator through
``check_estimator``. A new backend or pass is tested by registering it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edge_opt.conformance import check_backend, check_pass
from edge_opt.passes import PassContext, pass_class, pass_names
from edge_opt.runtimes import formats_of, get_backend_class, runtime_names

PLUGIN_BACKENDS = ["tests.plugins.onnxref:OnnxReferenceBackend", "tests.plugins.burst:BurstBackend"]
# tests.plugins.crashy:CrashBackend kills its own process in invoke(): it exists to test that the
# harness contains a crash (tests/test_harness.py), so it is the one backend not run in-process.


@pytest.mark.parametrize(
    ("name", "fmt"), [(name, fmt) for name in [*runtime_names(), "null", *PLUGIN_BACKENDS] for fmt in formats_of(name)]
)
def test_backend_conformance(name, fmt, tiny_artifacts, adult_small):
    """Each backend on every format it reads (OpenVINO: IR, ONNX and TFLite files)."""
    model = None if fmt == "none" or name in ("null", *PLUGIN_BACKENDS[1:]) else tiny_artifacts[fmt].model_path
    shapes = {"x": (1, adult_small.x_test.shape[1])} if model is None else None
    check_backend(get_backend_class(name), model, adult_small.x_test[:7], shapes)


# One cheap configuration per pass, each exercising what the pass uses (calibration, data).
PASS_CONFIGS = {
    "tflite": {"precision": "int8", "calibration_samples": 16},
    "onnx": {},
    "openvino": {},
    "ort_quantize": {"mode": "static", "calibration_samples": 16},
    "nncf": {"subset_size": 16},
    "prune": {"epochs": 1},
    "cluster": {"epochs": 1, "number_of_clusters": 4},
    "qat": {"epochs": 1},
    "distill": {"student": {"hidden": [4], "epochs": 1}},
    "equalize": {},
    "bias_correct": {"calibration_samples": 16},
    "reweigh": {"column": "sex", "epochs": 1},
    "fair_thresholds": {"column": "sex"},
    "adversarial": {"attack": "fgsm", "epsilon": 0.1, "epochs": 1},
    "defensive_distill": {"temperature": 10, "epochs": 1},
    "pca": {"components": 4, "epochs": 1},
    "select_features": {"drop": ["age"], "epochs": 1},
    "ica": {"components": 4, "epochs": 1, "max_iter": 50},
    "nmf": {"components": 4, "epochs": 1, "max_iter": 50},
    "tests.plugins.passes:RoundOnnxWeightsPass": {"decimals": 2},
}


def test_every_registered_pass_has_a_conformance_config():
    assert set(pass_names()) <= set(PASS_CONFIGS)


@pytest.mark.parametrize("name", list(PASS_CONFIGS))
def test_pass_conformance(name, tiny_artifacts, adult_small, tmp_path):
    cls = pass_class(name)
    data = adult_small
    if name == "nmf":  # NMF needs non-negative features
        data = replace(data, x_train=np.abs(data.x_train), x_val=np.abs(data.x_val))
    ctx = PassContext(target="cpu", calibration=data.calibration(32), calibration_source="test", data=data)
    parent = tiny_artifacts["keras" if "keras" in cls.inputs else cls.inputs[-1]]
    check_pass(cls, parent, PASS_CONFIGS[name], ctx, tmp_path)


def test_check_pass_catches_an_identity_that_misses_the_calibration_rows(tiny_artifacts, adult_small, tmp_path):
    """The suite fails a pass whose id ignores its calibration data (int8 TFLite did, before)."""
    from edge_opt.passes.convert import TFLitePass

    class Forgetful(TFLitePass):
        def identity(self, cfg, ctx):
            return {"config": cfg.model_dump(mode="json"), "target": ctx.target}

    ctx = PassContext(target="cpu", calibration=adult_small.calibration(32), data=adult_small)
    with pytest.raises(AssertionError, match="changing them does not change its identity"):
        check_pass(Forgetful, tiny_artifacts["keras"], {"precision": "int8"}, ctx, tmp_path, apply=False)


def test_check_backend_catches_a_backend_that_does_not_say_what_ran(tiny_artifacts, adult_small):
    from edge_opt.runtimes.litert import LiteRTBackend

    class Silent(LiteRTBackend):
        def info(self):
            return {"name": self.name}

    with pytest.raises(AssertionError, match="info\\(\\) lacks"):
        check_backend(Silent, tiny_artifacts["tflite"].model_path, adult_small.x_test[:3])


# One cheap configuration per trust check.
TRUST_CONFIGS = {
    "fairness": {"n_boot": 10},
    "explain": {"rows": 40, "shap_rows": 5, "shap_samples": 20},
    "robustness": {"rows": 40, "blackbox_queries": 5, "pgd_steps": 2, "epsilons": [0.0, 0.1], "sigmas": [0.0, 0.1]},
    "tests.plugins.agreement:AgreementCheck": {"rows": 100},
}


def test_every_registered_trust_check_has_a_conformance_config():
    from edge_opt.analysis.trust import trust_check_names

    assert set(trust_check_names()) <= set(TRUST_CONFIGS)


@pytest.mark.parametrize("name", list(TRUST_CONFIGS))
def test_trust_check_conformance(name, tiny_artifacts, adult_small):
    from edge_opt.analysis.data import EvalData
    from edge_opt.analysis.predictor import Predictor
    from edge_opt.analysis.trust import CheckInputs, get_trust_check
    from edge_opt.conformance import check_trust_check

    float_path = tiny_artifacts["keras"].model_path
    inputs = CheckInputs(Predictor(float_path), float_path, EvalData.from_dataset(adult_small, rows=200), seed=0)
    deployed = Predictor(tiny_artifacts["tflite_int8"].model_path)
    check_trust_check(get_trust_check(name), inputs, deployed, TRUST_CONFIGS[name])


def test_check_trust_check_catches_a_delta_that_is_not_zero_on_the_float_model(tiny_artifacts, adult_small):
    from edge_opt.analysis.data import EvalData
    from edge_opt.analysis.predictor import Predictor
    from edge_opt.analysis.trust import CheckInputs
    from edge_opt.conformance import check_trust_check
    from tests.plugins.agreement import AgreementCheck

    class Biased(AgreementCheck):
        def run(self, subjects, inputs, cfg):
            res = super().run(subjects, inputs, cfg)
            for result in res.per_subject.values():
                result["summary"]["max_prob_diff"] += 0.5
            return res

    float_path = tiny_artifacts["keras"].model_path
    inputs = CheckInputs(Predictor(float_path), float_path, EvalData.from_dataset(adult_small, rows=50))
    with pytest.raises(AssertionError, match="on the float model itself, max_prob_diff must be 0.0"):
        check_trust_check(Biased(), inputs, Predictor(tiny_artifacts["tflite"].model_path))
