"""Bad input is exit 2 with one line on stderr, never exit 3 or a traceback (before: 41 cases)."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from tests.conftest import assert_clean_error, cli, run_cli


def _artifact_copy(tmp_path, art):
    folder = tmp_path / "art"
    shutil.copytree(art.folder, folder)
    (folder / "manifest.json").chmod(0o644)
    return folder


def _manifest(**fields) -> bytes:
    return json.dumps({"format": "tflite", "precision": "fp32", **fields}).encode()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"\xff\xfe not utf-8 \x00", "unreadable manifest"),
        (b"[]", "expected an object"),
        (b"[" * 100_000, "manifest"),
        (_manifest(id="a"), "field 'model_file'"),
        (_manifest(id="a", model_file="../../model.tflite"), "field 'model_file'"),
        (_manifest(id="a/../b", model_file="m"), "field 'id'"),
    ],
)
def test_a_corrupt_or_forged_manifest_is_one_line(tmp_path, tiny_artifacts, content, says):
    folder = _artifact_copy(tmp_path, tiny_artifacts["tflite"])
    (folder / "manifest.json").write_bytes(content)
    assert_clean_error(cli("fairness", str(folder), "--rows", "50"), says)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda s: s.update(seed=1e30), "field 'seed'"),
        (
            lambda s: s["tasks"][0]["model"]["baseline"].update(hidden=[200_000_000]),
            "field 'tasks.0.model.nas.baseline.hidden.0'",
        ),
    ],
)
def test_absurd_suite_numbers_are_config_errors(tmp_path, change, says):
    suite = yaml.safe_load(open("benchmarks/quick.yaml"))
    change(suite)
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    assert_clean_error(cli("run", str(path), "--out", str(tmp_path / "out")), says)


def test_a_suite_nested_thousands_of_levels_deep(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("name: deep\ntasks: " + "[" * 5000 + "]" * 5000 + "\n")
    assert_clean_error(cli("run", str(path), "--out", str(tmp_path / "out")), "deep.yaml")


def test_an_input_shape_too_large_for_memory(tiny_artifacts):
    proc = run_cli("bench", str(tiny_artifacts["onnx"].model_path), "--shape", "100000,100000,3")
    # The ONNX model takes (batch, 108): the shape does not fit, or is refused for its size.
    assert_clean_error(proc, "--shape")
    proc = run_cli("bench", str(tiny_artifacts["onnx"].model_path), "--shape", "10000000,108")
    assert_clean_error(proc, "GiB of input")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("bench",), "Missing argument 'model'"),
        (("run", "--nope"), "No such option: --nope"),
        (("nope",), "No such command"),
    ],
)
def test_usage_errors_are_one_line(args, says):
    assert_clean_error(cli(*args), says)


def test_a_runtime_error_keeps_its_meaning_not_only_a_source_location(tmp_path):
    """Before: OpenVINO's errors were cut to 'Exception from src/inference/src/cpp/core.cpp:84:'."""
    xml = tmp_path / "model.xml"
    xml.write_text(
        '<?xml version="1.0"?>\n<net name="x" version="11"><layers><layer id="0" type="Parameter" name="x">'
        '<data shape="1,4" element_type="f32"/></layer></layers></net>\n'
    )
    (tmp_path / "model.bin").write_bytes(b"")
    proc = run_cli("bench", str(xml), "--runs", "1", "--min-time", "0")
    assert_clean_error(proc, "missing mandatory attribute: version")
    assert "core.cpp" not in proc.stderr


def test_runtime_message_drops_source_locations():
    from edge_opt.core.errors import runtime_message

    exc = RuntimeError("Exception from src/a.cpp:84:\nCheck 'false' failed at src/b.cpp:53:\nBad model\n\n")
    assert runtime_message(exc) == "Bad model"
    assert runtime_message(RuntimeError("plain")) == "plain"
