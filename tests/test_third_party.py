"""Files nobody here wrote: what ``bench`` must handle on third-party models (issue: third-party
models). The models are built here with onnx.helper: a voice-activity-like model whose integer
input must hold one value, and a model with a dynamic batch and dynamic spatial dimensions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import assert_clean_error, cli, run_cli


def _save(graph, path, opset: int = 17, check: bool = True):
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="third-party")
    model.ir_version = 8
    if check:  # the checker wants a shape field, which an input of unknown rank lacks (as exporters leave it)
        onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


@pytest.fixture(scope="module")
def vad_like(tmp_path_factory):
    """Inputs ``audio`` float [1, 16] and ``sr`` int64 [1]; the model only runs when sr // 1000 == 16
    (it reshapes the audio by it), as a VAD model does with its sample-rate input."""
    from onnx import TensorProto, helper

    k = helper.make_tensor("k", TensorProto.INT64, [1], [1000])
    nodes = [
        helper.make_node("Div", ["sr", "k"], ["n"]),
        helper.make_node("Reshape", ["audio", "n"], ["flat"]),
        helper.make_node("ReduceMean", ["flat"], ["score"], keepdims=1),
    ]
    graph = helper.make_graph(
        nodes,
        "vad",
        [
            helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, 16]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, [1]),
        ],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [1])],
        initializer=[k],
    )
    return _save(graph, tmp_path_factory.mktemp("vad") / "vad.onnx")


@pytest.fixture(scope="module")
def dynamic_image(tmp_path_factory):
    """Inputs ``image`` float [N, 3, H, W] and ``meta`` float [N, 8], every ? dimension dynamic."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("ReduceMean", ["image"], ["pooled"], axes=[2, 3], keepdims=0),
        helper.make_node("ReduceMean", ["meta"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Add", ["pooled", "m"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "dyn",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"]),
            helper.make_tensor_value_info("meta", TensorProto.FLOAT, ["N", 8]),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3])],
    )
    return _save(graph, tmp_path_factory.mktemp("dyn") / "dyn.onnx", opset=13)  # axes as attributes


QUICK = ("--runs", "5", "--min-time", "0", "--warmup", "1")


@pytest.mark.parametrize("kind", ["onnx", "tflite", "tflite_int8"])
def test_openvino_measures_onnx_and_tflite_files_directly(tiny_artifacts, tmp_path, kind):
    """Before: "runtime 'openvino' does not read onnx files", though benchmark_app measures them."""
    out = tmp_path / "r.json"
    proc = run_cli("bench", str(tiny_artifacts[kind].model_path), "-r", "openvino", *QUICK, "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    assert record["runtime"]["name"] == "openvino" and record["artifact"]["format"] == kind.split("_")[0]


def test_openvino_on_an_int8_io_tflite_file_predicts_what_litert_does(tiny_artifacts, adult_small):
    from edge_opt.runtimes import get_backend_class

    path, x = str(tiny_artifacts["tflite_int8"].model_path), adult_small.x_test[:200]
    predictions = {}
    for name in ("openvino", "litert"):
        backend = get_backend_class(name)(threads=1)
        backend.load(path)
        predictions[name] = backend.predict(x)
    # The same integer graph: the outputs agree to within a step or two of the output scale.
    assert np.abs(predictions["openvino"] - predictions["litert"]).max() < 0.02
    assert np.mean((predictions["openvino"] > 0.5) == (predictions["litert"] > 0.5)) > 0.97


def test_an_input_that_needs_real_values_is_exit_2_with_the_way_out(vad_like, tmp_path):
    """Before: junk in the sample-rate input made the run fail with exit 3, "internal error"."""
    proc = cli("bench", vad_like, *QUICK)
    assert_clean_error(proc, "the model failed on random inputs")
    assert "--input FILE.npz" in proc.stderr and "--input-range NAME:LO,HI" in proc.stderr

    out = tmp_path / "r.json"
    proc = cli("bench", vad_like, "--input-range", "sr:16000,16000", *QUICK, "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    sources = {i["name"]: i["source"] for i in json.loads(out.read_text())["inputs"]}
    assert sources == {"audio": "random", "sr": "random in [16000, 16000]"}

    feeds = tmp_path / "feeds.npz"
    np.savez(feeds, audio=np.linspace(0, 1, 16, dtype=np.float32)[None], sr=np.array([16000]))
    proc = cli("bench", vad_like, "--input", str(feeds), *QUICK, "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert {i["source"] for i in json.loads(out.read_text())["inputs"]} == {"file"}

    np.savez(feeds, audio=np.zeros((1, 16), np.float32), rate=np.array([16000]))
    assert_clean_error(cli("bench", vad_like, "--input", str(feeds), *QUICK), "unknown input 'rate'")


def test_every_dynamic_input_is_named_in_one_message_with_a_line_to_paste(dynamic_image, tmp_path):
    """Before: one input per attempt, and the placeholder hint timed a 1x1 image without a word."""
    proc = cli("bench", dynamic_image, *QUICK)
    assert_clean_error(proc, "1 input(s) have dynamic dimensions ('image' is ?,3,?,?)")  # meta's ? is its batch
    line = proc.stderr.split("pass ", 1)[1].split(", with each")[0]
    assert line == "--shape image:1,3,1,1"

    out = tmp_path / "r.json"
    proc = cli("bench", dynamic_image, *line.split(), *QUICK, "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "warning: --shape image:1,3,1,1 sets dynamic dimension(s) 2, 3 to 1" in proc.stderr
    assert json.loads(out.read_text())["warnings"]

    proc = cli("bench", dynamic_image, "--shape", "image:2,3,32,32", "--shape", "meta:2,8", *QUICK)
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr

    # Before: an unnamed --shape on a two-input model was taken for an input named ''.
    assert_clean_error(cli("bench", dynamic_image, "--shape", "1,3,32,32", *QUICK), "names no input")


def test_real_inputs_fix_the_shapes_of_a_dynamic_model(dynamic_image, tmp_path):
    feeds = tmp_path / "feeds.npz"
    np.savez(feeds, image=np.ones((1, 3, 24, 24), np.float32), meta=np.ones((1, 8), np.float32))
    out = tmp_path / "r.json"
    proc = cli("bench", dynamic_image, "--input", str(feeds), *QUICK, "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert {i["name"]: i["shape"] for i in json.loads(out.read_text())["inputs"]} == {
        "image": [1, 3, 24, 24],
        "meta": [1, 8],
    }


@pytest.mark.parametrize("given", ["folder", "file"])
def test_an_artifact_keeps_its_id_precision_and_lineage_and_its_batch_needs_no_shape(tiny_artifacts, tmp_path, given):
    """Before: bench refused an artifact folder, and a file beside its manifest got a new id,
    precision "unknown" and no lineage; a dynamic-batch ONNX artifact needed --shape."""
    art = tiny_artifacts["onnx"]
    out = tmp_path / "r.json"
    target = art.folder if given == "folder" else art.model_path
    proc = cli("bench", str(target), *QUICK, "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    assert record["artifact"]["id"] == art.id and record["artifact"]["parent"] == art.parent
    assert record["artifact"]["precision"] == "fp32" and record["artifact"]["label"] == "onnx-fp32"
    assert record["inputs"][0]["shape"][0] == 1 and record["size_bytes"] == art.manifest["size_bytes"]


@pytest.fixture(scope="module")
def unknown_rank(tmp_path_factory):
    """Input ``x`` of unknown rank (as silero-vad's ONNX export leaves some): OpenVINO's CPU plugin
    compiles it only once shapes are set at conversion."""
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 3], np.ones(12, dtype=np.float32))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])],
        "norank",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [weight],
    )
    return _save(graph, tmp_path_factory.mktemp("norank") / "norank.onnx", opset=15, check=False)


def test_shape_reaches_openvinos_conversion_of_an_input_of_unknown_rank(unknown_rank, tmp_path):
    """Issue 19 (6): before, --shape was applied by reshaping the read model, and silero-vad
    failed ("rank has to be known") where ov.convert_model(input=...) compiles it."""
    proc = cli("bench", unknown_rank, "-r", "openvino", *QUICK)
    assert_clean_error(proc, "1 input(s) have dynamic dimensions ('x' is of unknown rank): pass --shape x:DIMS")
    out = tmp_path / "r.json"
    proc = cli("bench", unknown_rank, "-r", "openvino", "--shape", "x:2,4", *QUICK, "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["inputs"] == [
        {"name": "x", "shape": [2, 4], "dtype": "float32", "source": "random"}
    ]


def test_a_shape_names_an_input_as_the_file_does_on_every_runtime(tiny_artifacts, tmp_path):
    """Issue 19 (6): an input is found by its name without the converters' decorations
    (OpenVINO named an int8 .tflite's input_1 input_1_int8; LiteRT says serving_default_features:0)."""
    from edge_opt.bench.worker import resolve_shapes
    from edge_opt.runtimes.base import TensorSpec

    specs = [TensorSpec("input_1_int8", (-1, 8), "int8")]
    assert resolve_shapes(specs, {"input_1": (2, 8)}, None) == {"input_1_int8": (2, 8)}
    two = [TensorSpec("a_int8", (-1, 8), "int8"), TensorSpec("a", (-1, 8), "float32")]
    assert resolve_shapes(two, {"a": (2, 8)}, 1)["a"] == (2, 8)  # the exact name first
    from edge_opt.measure.harness import HarnessOptions, measure

    tflite = tiny_artifacts["tflite_int8"].model_path
    for runtime in ("litert", "openvino"):
        res = measure(tflite, runtime, shapes={"features": (3, 108)}, options=HarnessOptions(min_runs=5, min_time_s=0))
        assert res.status == "ok" and res.raw["inputs"][0]["shape"] == [3, 108], res.error
