import json

import numpy as np
import pytest

from edge_opt.core.artifacts import ArtifactWriter, artifact_id, load_artifact, verify
from edge_opt.core.errors import ModelLoadError
from edge_opt.passes import PassContext, get_pass


def test_manifest_has_the_contract_fields(tiny_artifacts):
    for art in tiny_artifacts.values():
        m = art.manifest
        for key in (
            "id",
            "parent",
            "pass",
            "config",
            "target",
            "format",
            "precision",
            "files",
            "size_bytes",
            "tool_versions",
        ):
            assert key in m
        assert m["size_bytes"]["raw"] == sum((art.folder / f).stat().st_size for f in m["files"])
        assert 0 < m["size_bytes"]["gzip"]
        assert verify(art) == []


def test_lineage_points_to_parents(tiny_artifacts):
    a = tiny_artifacts
    assert a["keras"].parent is None
    assert a["tflite"].parent == a["onnx"].parent == a["keras"].id
    assert a["openvino"].parent == a["onnx"].id
    assert a["tflite_int8"].manifest["notes"]["calibration"]["rows"] == 32


def test_manifest_round_trips(tiny_artifacts):
    art = tiny_artifacts["openvino"]
    again = load_artifact(art.folder)
    assert again.manifest == art.manifest
    assert json.loads((art.folder / "manifest.json").read_text()) == art.manifest
    assert set(art.manifest["files"]) == {"model.xml", "model.bin"}


def test_id_is_deterministic_and_sensitive():
    tools = {"x": "1"}

    def ident(target="cpu", **config):
        return {"config": config, "target": target}

    a = artifact_id("p", "tflite", ident(precision="int8", io="float"), tools)
    assert a == artifact_id("p", "tflite", ident(io="float", precision="int8"), tools)
    assert a != artifact_id("p", "tflite", ident(precision="fp32", io="float"), tools)
    assert a != artifact_id("q", "tflite", ident(precision="int8", io="float"), tools)
    assert a != artifact_id("p", "tflite", ident("mobile", precision="int8", io="float"), tools)
    assert a != artifact_id("p", "tflite", ident(precision="int8", io="float"), {"x": "2"})


def test_same_inputs_reuse_the_published_artifact(tiny_artifacts, tmp_path):
    root = tiny_artifacts["keras"]
    out = tiny_artifacts["tflite"].folder.parent
    again = get_pass("tflite").apply(root, {"precision": "fp32"}, out, PassContext(target="cpu"))
    assert again.id == tiny_artifacts["tflite"].id
    assert again.manifest["created"] == tiny_artifacts["tflite"].manifest["created"]


def test_passes_never_modify_their_input(tiny_artifacts, tmp_path, adult_small):
    root = tiny_artifacts["keras"]
    before = {p.name: p.read_bytes() for p in root.folder.iterdir()}
    ctx = PassContext(target="mobile", calibration=adult_small.calibration(16), calibration_source="test")
    get_pass("tflite").apply(root, {"precision": "int8"}, tmp_path, ctx)
    assert {p.name: p.read_bytes() for p in root.folder.iterdir()} == before
    assert verify(root) == []


def test_failed_pass_leaves_nothing_behind(tmp_path):
    with pytest.raises(RuntimeError):
        with ArtifactWriter(
            tmp_path,
            parent=None,
            pass_name="x",
            config={},
            target=None,
            fmt="tflite",
            precision="fp32",
            model_file="model.tflite",
        ) as w:
            raise RuntimeError("conversion blew up")
    assert list(tmp_path.iterdir()) == []
    assert not w.final.exists()


def test_wrong_input_format_is_refused(tiny_artifacts, tmp_path):
    from edge_opt.core.errors import UnsupportedTargetError

    with pytest.raises(UnsupportedTargetError, match="takes onnx input, not tflite"):
        get_pass("openvino").apply(tiny_artifacts["tflite"], {}, tmp_path, PassContext())


def test_bad_pass_config_is_named(tiny_artifacts, tmp_path):
    from edge_opt.core.errors import ConfigError

    with pytest.raises(ConfigError, match="io: int8 needs precision: int8"):
        get_pass("tflite").apply(tiny_artifacts["keras"], {"precision": "fp32", "io": "int8"}, tmp_path, PassContext())


def test_corrupt_manifest_is_a_model_load_error(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="corrupt manifest"):
        load_artifact(tmp_path)


@pytest.mark.parametrize(
    ("key", "runtime", "tol"),
    [
        ("tflite", "litert", 1e-5),
        ("onnx", "onnxruntime", 1e-5),
        ("openvino", "openvino", 1e-4),
    ],
)
def test_converted_artifacts_agree_with_the_float_model(tiny_artifacts, adult_small, key, runtime, tol):
    from edge_opt.runtimes import get_backend_class

    x = adult_small.x_test[:300]
    ref = get_backend_class("keras")()
    ref.load(str(tiny_artifacts["keras"].model_path))
    backend = get_backend_class(runtime)()
    backend.load(str(tiny_artifacts[key].model_path))
    np.testing.assert_allclose(backend.predict(x), ref.predict(x), atol=tol)
    # An fp32 file executes in fp32 whatever the CPU offers (OpenVINO would pick bf16 on its own).
    assert backend.info()["precision"] in (None, "fp32")


def test_openvino_bf16_is_asked_for_and_recorded(tiny_artifacts, adult_small):
    from edge_opt.runtimes import get_backend_class

    cls = get_backend_class("openvino")
    reason = cls.cannot_run("cpu", "bf16")
    if reason:
        assert "bf16" in reason
        pytest.skip(f"no bf16 here: {reason}")
    x = adult_small.x_test[:300]
    fp32, bf16 = cls(), cls(precision="bf16")
    fp32.load(str(tiny_artifacts["openvino"].model_path))
    bf16.load(str(tiny_artifacts["openvino"].model_path))
    assert (fp32.info()["precision"], bf16.info()["precision"]) == ("fp32", "bf16")
    # bf16 keeps 8 bits of mantissa: close to fp32, not equal to it.
    np.testing.assert_allclose(bf16.predict(x), fp32.predict(x), atol=2e-2)


def test_runtimes_without_a_precision_knob_refuse_one():
    from edge_opt.runtimes import get_backend_class

    assert "cannot execute at bf16" in get_backend_class("litert").cannot_run("cpu", "bf16")
    assert get_backend_class("litert").cannot_run("cpu", None) is None


def test_int8_artifact_stays_close_to_the_float_model(tiny_artifacts, adult_small):
    """Full-integer int8 (int8 I/O, 32 calibration rows): close on average, a few rows clip."""
    from edge_opt.models import predicted_labels
    from edge_opt.runtimes import get_backend_class

    x = adult_small.x_test[:500]
    ref = get_backend_class("keras")()
    ref.load(str(tiny_artifacts["keras"].model_path))
    int8 = get_backend_class("litert")()
    int8.load(str(tiny_artifacts["tflite_int8"].model_path))
    got, want = int8.predict(x), ref.predict(x)
    assert np.mean(np.abs(got - want)) < 0.02
    assert np.mean(predicted_labels(got, 2) == predicted_labels(want, 2)) >= 0.97
