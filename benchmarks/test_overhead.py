"""pytest-benchmark figures for the harness's own costs (``tox -e bench``).

In-process, per call: each backend's ``invoke`` on the Adult MLP artifact (what the
harness times in its child), the NullBackend (nothing but the call), and ``summarize``
on 100k samples (the statistics are not free either).
Smoke test: EDGE_OPT_BENCH_SMOKE=1 trains on 256 rows; add ``--benchmark-max-time=0.001 --benchmark-min-rounds=1``.
"""

import os

import numpy as np
import pytest

from edge_opt.bench.stats import summarize
from edge_opt.runtimes import get_backend_class
from edge_opt.runtimes.base import random_inputs

SMOKE = os.environ.get("EDGE_OPT_BENCH_SMOKE") == "1"  # tiny sizes, for a smoke test


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    from edge_opt.datasets import load_dataset
    from edge_opt.models import ModelConfig, train_artifact
    from edge_opt.passes import PassContext, get_pass

    data = load_dataset("adult", train_rows=256 if SMOKE else 2000)
    out = tmp_path_factory.mktemp("bench")
    root = train_artifact(ModelConfig(hidden=[256, 128], epochs=1), data, "bench", out)
    ctx = PassContext(target="cpu", calibration=data.calibration(128), calibration_source="adult train")
    onnx = get_pass("onnx").apply(root, {}, out, ctx)
    return {
        "litert": get_pass("tflite").apply(root, {"precision": "fp32"}, out, ctx).model_path,
        "onnxruntime": onnx.model_path,
        "openvino": get_pass("openvino").apply(onnx, {}, out, ctx).model_path,
    }


@pytest.mark.parametrize("runtime", ["litert", "onnxruntime", "openvino"])
def test_invoke(benchmark, artifacts, runtime):
    backend = get_backend_class(runtime)(threads=1)
    backend.load(str(artifacts[runtime]), {} if runtime == "litert" else None)
    specs = [s if not s.dynamic else type(s)(s.name, (1, *s.shape[1:]), s.dtype) for s in backend.inputs()]
    if runtime == "openvino":
        backend.load(str(artifacts[runtime]), {s.name: s.shape for s in specs})
    backend.bind(random_inputs(specs))
    benchmark(backend.invoke)


def test_null_backend(benchmark):
    backend = get_backend_class("null")()
    backend.load("", {"x": (1, 1)})
    benchmark(backend.invoke)


def test_summarize_100k(benchmark):
    samples = np.random.default_rng(0).lognormal(-3, 0.2, 100_000)
    benchmark(summarize, samples)
