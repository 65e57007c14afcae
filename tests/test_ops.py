"""Per-op profiles (issue 21, 1): one schema on every runtime, real runtimes only.

Each profile runs in the harness's worker after the timed runs. A model built here with one op
that does nearly all the work (a 512 x 512 MatMul beside an Add and a Relu) must show that op on
top; the tiny MLP of the shared fixture must show the layers it was built with.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_opt.measure.harness import HarnessOptions, measure
from tests.conftest import cli

FAST = HarnessOptions(min_runs=5, min_time_s=0.0, warmup_runs=1, ops_runs=20)


@pytest.fixture(scope="module")
def matmul_onnx(tmp_path_factory):
    """x[1,512] -> Add(bias) -> MatMul(512x512, node 'big') -> Relu: the MatMul is the work."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.standard_normal((512, 512)).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.standard_normal(512).astype(np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "b"], ["xb"], name="small"),
            helper.make_node("MatMul", ["xb", "w"], ["y0"], name="big"),
            helper.make_node("Relu", ["y0"], ["y"], name="relu"),
        ],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 512])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 512])],
        [weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("ops") / "matmul.onnx"
    onnx.save(model, path)
    return path


def _profile(model, runtime: str, **kwargs) -> dict:
    result = measure(model, runtime, options=FAST, **kwargs)
    assert result.status == "ok", result.error
    return result.raw


@pytest.mark.parametrize(
    ("runtime", "method"), [("onnxruntime", "onnxruntime-profiler"), ("openvino", "openvino-perf-counters")]
)
def test_the_op_that_does_the_work_is_the_top_op(matmul_onnx, runtime, method):
    raw = _profile(matmul_onnx, runtime)
    assert raw["ops_method"] == method and raw["ops_runs"] == 20
    top = raw["ops"][0]
    assert "big" in top["name"] and top["share"] > 0.5, raw["ops"]
    assert top["precision"] == "fp32" and top["exec"]  # what ran it: the provider, or the kernel
    assert raw["ops_total_ms"] == pytest.approx(sum(op["ms"] for op in raw["ops"]))
    assert sum(op["share"] for op in raw["ops"]) == pytest.approx(1.0)
    assert raw["ops_whole_ms"] > 0


def test_litert_times_each_op_of_the_file_alone(tiny_artifacts):
    """LiteRT has no profiler in Python: each op of the file is cut out and timed alone."""
    fp32 = _profile(tiny_artifacts["tflite"].model_path, "litert")
    assert fp32["ops_method"] == "isolated" and "timed alone" in fp32["ops_note"]
    assert sorted(op["type"] for op in fp32["ops"]) == ["FULLY_CONNECTED", "FULLY_CONNECTED", "LOGISTIC"]
    assert {op["precision"] for op in fp32["ops"]} == {"fp32"} and {op["exec"] for op in fp32["ops"]} <= {
        "XNNPACK",
        "builtin",
    }
    int8 = _profile(tiny_artifacts["tflite_int8"].model_path, "litert")
    fcs = [op for op in int8["ops"] if op["type"] == "FULLY_CONNECTED"]
    assert len(fcs) == 2 and {op["precision"] for op in fcs} == {"int8"}  # the file's int8 layers, as built


def test_onnx_runtime_names_the_layers_it_was_given(tiny_artifacts):
    raw = _profile(tiny_artifacts["onnx"].model_path, "onnxruntime")
    types = {op["type"] for op in raw["ops"]}
    assert types & {"Gemm", "FusedGemm", "MatMul"} and all(op["exec"] == "CPUExecutionProvider" for op in raw["ops"])


def test_a_runtime_that_cannot_profile_says_why_and_the_measurement_stands():
    raw = _profile(None, "null", shapes={"x": (1, 4)})
    assert raw["samples_ms"] and raw["ops"] is None and raw["ops_method"] is None
    assert raw["ops_note"] == "null has no per-op profiler in edge-opt"


def test_bench_ops_prints_the_top_ops_and_writes_them(tmp_path, matmul_onnx):
    out = tmp_path / "r.json"
    proc = cli("bench", matmul_onnx, "--ops", "--ops-runs", "10", "--min-time", "0", "--runs", "5", "--json", out)
    assert proc.returncode == 0, proc.stderr
    assert "ops · onnxruntime-profiler, mean of 10 invokes" in proc.stdout and "by type: MatMul" in proc.stdout
    record = json.loads(out.read_text())
    assert record["ops"][0]["name"] == "big" and record["ops_method"] == "onnxruntime-profiler"
    plain = cli("bench", matmul_onnx, "--min-time", "0", "--runs", "5", "--json", out)
    assert plain.returncode == 0 and "ops ·" not in plain.stdout and json.loads(out.read_text())["ops"] is None


def test_the_runtime_entry_of_a_chosen_record_is_found_even_when_its_tool_names_itself():
    """A phone's record says benchmark_model ran it; the mobile profile's litert entry did."""
    from types import SimpleNamespace

    from edge_opt.run.runner import _runtime_spec
    from edge_opt.targets import load_profile

    mobile = load_profile("mobile")
    art = {"format": "tflite"}
    local = SimpleNamespace(runtime={"name": "litert", "device": "cpu", "precision_requested": None}, artifact=art)
    phone = SimpleNamespace(runtime={"name": "benchmark_model", "device": "cpu"}, artifact=art)
    assert _runtime_spec(mobile, local).runtime == "litert" and _runtime_spec(mobile, phone).runtime == "litert"
    gpu = SimpleNamespace(runtime={"name": "litert", "device": "gpu"}, artifact=art)
    assert _runtime_spec(mobile, gpu) is None  # no entry of the profile ran it: not profiled, no crash


@pytest.mark.parametrize("exclude", [[], ["big"]])
def test_a_layer_left_in_float_in_an_int8_file_is_a_fallback(tmp_path, matmul_onnx, exclude):
    """ONNX Runtime's dynamic int8 with the MatMul excluded: the file asks int8, the MatMul ran fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8 = tmp_path / "int8.onnx"
    quantize_dynamic(matmul_onnx, int8, weight_type=QuantType.QInt8, nodes_to_exclude=exclude)
    raw = _profile(int8, "onnxruntime", file_precision="int8")
    fallbacks = [op["name"] for op in raw["ops"] if op["fallback"]]
    assert raw["ops_fallback"] == len(fallbacks)
    if exclude:
        assert fallbacks == ["big"] and "another precision than int8" in raw["ops_note"]
    else:
        assert fallbacks == [] and any(op["precision"] == "int8" for op in raw["ops"]), raw["ops"]
    as_fp32 = _profile(int8, "onnxruntime", file_precision="fp32")  # an int8 MatMul where fp32 was asked
    assert as_fp32["ops_fallback"] == (0 if exclude else 1), as_fp32["ops"]
