"""Issue 20 (3): run folders are data from elsewhere. gate, compare and report validate results.json
against the shipped JSON Schema before reading it, follow no path out of the folder, refuse a
corrupt or pickled samples file, and print no control character a file carries.

The corpus is generated: every mutation of a valid run folder below, through every command that
reads it (in-process, so the few hundred cases cost seconds). Before this change, most were exit 3
(TypeError, KeyError, ZeroDivisionError, ValueError on a pickled array), and the samples path was
followed out of the folder.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests import runs
from tests.conftest import assert_clean_error, cli, run_cli


def _two_runs(tmp_path):
    """Two runs of the same suite: a fast and a slower artifact on the cpu target."""
    a = runs.results(runs.record("m1"), runs.record("m2", artifact=runs.record()["artifact"] | {"label": "int8"}))
    return runs.write(tmp_path / "a", a), runs.write(tmp_path / "b", json.loads(json.dumps(a)))


def _set(path: str, value):
    """A mutation that sets one dotted field of results.json (``measurements.0.latency_ms.p50``)."""

    def change(results: dict) -> None:
        *head, last = path.split(".")
        node = results
        for part in head:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is _DELETE:
            del node[int(last) if isinstance(node, list) else last]
        else:
            node[int(last) if isinstance(node, list) else last] = value

    return change


_DELETE = object()

#: results.json mutations: (id, change to the parsed file or raw text to write, what the error names).
RESULTS_CASES = [
    ("p50-text", _set("measurements.0.latency_ms.p50", "fast"), "field 'measurements.0.latency_ms.p50'"),
    ("p50-zero", _set("measurements.0.latency_ms.p50", 0), "field 'measurements.0.latency_ms.p50'"),
    ("p50-negative", _set("measurements.0.latency_ms.p50", -1.0), "field 'measurements.0.latency_ms.p50'"),
    ("p50-null", _set("measurements.0.latency_ms.p50", None), "field 'measurements.0.latency_ms.p50'"),
    ("p90-list", _set("measurements.1.latency_ms.p90", [1]), "field 'measurements.1.latency_ms.p90'"),
    ("n-zero", _set("measurements.0.latency_ms.n", 0), "field 'measurements.0.latency_ms.n'"),
    ("no-latency-fields", _set("measurements.0.latency_ms", {}), "field 'measurements.0.latency_ms.p50': missing"),
    ("no-size", _set("measurements.0.size_bytes", _DELETE), "field 'measurements.0.size_bytes': missing"),
    ("size-text", _set("measurements.0.size_bytes.raw", "big"), "field 'measurements.0.size_bytes.raw'"),
    ("size-negative", _set("measurements.0.size_bytes.gzip", -5), "field 'measurements.0.size_bytes.gzip'"),
    ("status", _set("measurements.0.status", "great"), "field 'measurements.0.status'"),
    ("ok-with-error", _set("measurements.0.error", 5), "field 'measurements.0.error'"),
    ("no-id", _set("measurements.1.id", _DELETE), "field 'measurements.1.id': missing"),
    ("artifact-text", _set("measurements.0.artifact", "x"), "field 'measurements.0.artifact'"),
    ("threads-text", _set("measurements.0.runtime.threads", "many"), "field 'measurements.0.runtime.threads'"),
    ("accuracy-2", _set("measurements.0.accuracy", 2.0), "field 'measurements.0.accuracy'"),
    ("measurements-dict", _set("measurements", {"a": 1}), "field 'measurements'"),
    ("targets-list", _set("targets", [1]), "field 'targets'"),
    ("budget-number", _set("targets.cpu.budgets", [5]), "field 'targets.cpu.budgets.0'"),
    ("peak-zero", _set("targets.cpu.peak.gops", 0), "field 'targets.cpu.peak.gops'"),
    ("run-id-path", _set("run_id", "../../etc"), "field 'run_id'"),
    ("schema-future", _set("schema", "edge-opt/results/9"), "field 'schema'"),
    ("no-schema", _set("schema", _DELETE), "field 'schema': missing"),
    ("samples-up", _set("measurements.0.samples", "../other/samples.npz#m1"), "field 'measurements.0.samples'"),
    ("samples-abs", _set("measurements.0.samples", "/etc/passwd#x"), "field 'measurements.0.samples'"),
    ("samples-other-file", _set("measurements.0.samples", "results.json#m1"), "field 'measurements.0.samples'"),
    ("nan", '{"schema": NaN, "measurements": []}', "NaN is not a number JSON allows"),
    ("infinity", '{"measurements": [], "x": -Infinity}', "-Infinity is not a number JSON allows"),
    ("overflow", '{"measurements": [], "x": 1e999}', "1e999 overflows a float"),
    ("long-int", '{"measurements": [], "x": ' + "9" * 5000 + "}", "an integer of 5000 digits"),
    ("deep", "[" * 100_000 + "]" * 100_000, "corrupt results file: RecursionError"),
    ("list", "[1, 2]", "not an edge-opt results file"),
    ("binary", "\udcff\udcfe", "corrupt results file"),
    ("truncated", '{"measurements": [{"id": ', "corrupt results file"),
]


def _write_case(run, change) -> None:
    path = run / "results.json"
    if isinstance(change, str):
        path.write_bytes(change.encode("utf-8", "surrogateescape"))
    else:
        results = json.loads(path.read_text())
        change(results)
        path.write_text(json.dumps(results))


@pytest.mark.parametrize(("change", "says"), [c[1:] for c in RESULTS_CASES], ids=[c[0] for c in RESULTS_CASES])
def test_every_reader_refuses_a_forged_results_file_in_one_line_writing_nothing(tmp_path, change, says):
    good, other = _two_runs(tmp_path)
    _write_case(good, change)
    out = tmp_path / "out"
    for args in (
        ("gate", good, "--json", out / "v.json", "--junit", out / "j.xml"),
        ("report", good),
        ("report", good, "--html", out / "r.html"),
        ("compare", other, good, "--json", out / "c.json"),
        ("compare", good, other),
    ):
        assert_clean_error(cli(*args), says)
    assert not out.exists()


def _samples_of(run, arrays: dict, **kwargs) -> None:
    np.savez(run / "samples.npz", **arrays, **kwargs)


#: samples.npz mutations: (id, what to do to the folder, what the error names).
SAMPLES_CASES = [
    ("missing", lambda run: (run / "samples.npz").unlink(), "corrupt samples of record m1: FileNotFoundError"),
    ("random-bytes", lambda run: (run / "samples.npz").write_bytes(os.urandom(300)), "corrupt samples of record m1"),
    ("truncated", lambda run: (run / "samples.npz").write_bytes((run / "samples.npz").read_bytes()[:200]), "corrupt"),
    ("no-key", lambda run: _samples_of(run, {"other": np.ones(3)}), "corrupt samples of record m1: KeyError"),
    (
        "pickled",
        lambda run: _samples_of(run, {"m1": np.array([{"a": 1}, None], dtype=object), "m2": np.ones(3)}),
        "corrupt samples of record m1: ValueError",
    ),
    ("nan", lambda run: _samples_of(run, {"m1": np.array([np.nan, 1.0]), "m2": np.ones(3)}), "not finite positive"),
    ("negative", lambda run: _samples_of(run, {"m1": np.array([-1.0, 1.0]), "m2": np.ones(3)}), "not finite positive"),
    ("2-d", lambda run: _samples_of(run, {"m1": np.ones((2, 2)), "m2": np.ones(3)}), "not finite positive"),
    ("text", lambda run: _samples_of(run, {"m1": np.array(["fast"]), "m2": np.ones(3)}), "not finite positive"),
    ("link-out", lambda run: _link_out(run), "samples are not in the run folder's samples.npz"),
    ("folder", lambda run: _folder(run), "corrupt samples of record m1"),
]


def _link_out(run) -> None:
    outside = run.parent / "elsewhere"
    outside.mkdir()
    (run / "samples.npz").rename(outside / "samples.npz")
    (run / "samples.npz").symlink_to(outside / "samples.npz")


def _folder(run) -> None:
    (run / "samples.npz").unlink()
    (run / "samples.npz").mkdir()


@pytest.mark.parametrize(("change", "says"), [c[1:] for c in SAMPLES_CASES], ids=[c[0] for c in SAMPLES_CASES])
def test_compare_and_the_html_report_refuse_a_bad_samples_file(tmp_path, change, says):
    good, other = _two_runs(tmp_path)
    change(good)
    out = tmp_path / "out"
    for args in (("compare", other, good, "--json", out / "c.json"), ("report", good, "--html", out / "r.html")):
        assert_clean_error(cli(*args), says)
    assert not out.exists()


def test_a_pickle_in_the_samples_file_runs_no_code(tmp_path):
    good, other = _two_runs(tmp_path)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    np.savez(good / "samples.npz", m1=np.array([Payload()], dtype=object), m2=np.ones(3))
    assert b"mkdir" in (good / "samples.npz").read_bytes() or pickle.dumps(Payload())  # a real pickle is in it
    assert_clean_error(cli("compare", other, good), "corrupt samples of record m1")
    assert not marker.exists()


def test_a_forged_header_in_the_samples_file_is_refused_before_allocating(tmp_path):
    good, other = _two_runs(tmp_path)
    header = np.lib.format.header_data_from_array_1_0(np.ones(3))
    header["shape"] = (10**12,)
    import io
    import zipfile

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    with zipfile.ZipFile(good / "samples.npz", "w") as zf:
        zf.writestr("m1.npy", buf.getvalue() + b"\0" * 24)
        zf.writestr("m2.npy", buf.getvalue() + b"\0" * 24)
    assert_clean_error(cli("compare", other, good), "(m1.npy): declares 7450.6 GiB of data")


ESCAPES = "\x1b]0;owned\x07\x1b[2J\x1b[31mred\r\u202eevil\x9b"


def test_control_characters_in_a_run_folder_never_reach_the_terminal(tmp_path):
    good, other = _two_runs(tmp_path)
    for run in (good, other):
        results = json.loads((run / "results.json").read_text())
        results["measurements"][0]["artifact"]["label"] = f"int8{ESCAPES}"
        results["measurements"][0]["runtime"]["name"] = f"litert{ESCAPES}"
        results["targets"]["cpu"]["budgets"] = ["latency.p50 <= 1ms"]
        (run / "results.json").write_text(json.dumps(results))
    for args in (("gate", good), ("report", good), ("compare", other, good)):
        proc = cli(*args)
        assert proc.returncode in (0, 1), (args, proc.stdout, proc.stderr)
        shown = proc.stdout + proc.stderr
        assert "int8" in shown and "owned" in shown, shown  # the text stays, the controls go
        assert not any(c in shown for c in "\x1b\x07\r\u202e\x9b"), repr(shown)


def test_an_odd_but_valid_run_is_judged_not_crashed(tmp_path):
    """Valid by the schema, yet unusual: an ok record with no size, no latency (a tool that only
    printed a summary), no samples. The gate and compare judge what is there (exit 0 or 1)."""
    good, other = _two_runs(tmp_path)
    for run in (good, other):
        results = json.loads((run / "results.json").read_text())
        results["measurements"][0] |= {"size_bytes": None, "latency_ms": None, "samples": None}
        results["targets"]["cpu"]["budgets"] = ["size.raw <= 1MB", "latency.p50 <= 1ms", "accuracy >= 0.5"]
        (run / "results.json").write_text(json.dumps(results))
    for args in (
        ("gate", good),
        ("report", good),
        ("compare", other, good),
        ("report", good, "--html", tmp_path / "r.html"),
    ):
        proc = cli(*args)
        assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, (args, proc.stdout, proc.stderr)


def test_the_commands_refuse_a_forged_run_as_a_user_sees_it(tmp_path):
    """One case end to end, in a child process: exit 2, one line, nothing written."""
    good, _ = _two_runs(tmp_path)
    _write_case(good, _set("measurements.0.latency_ms.p50", "fast"))
    proc = run_cli("gate", str(good), "--json", str(tmp_path / "v.json"))
    assert_clean_error(proc, "field 'measurements.0.latency_ms.p50': 'fast' is not of type")
    assert not (tmp_path / "v.json").exists()


def _artifacts(tmp_path, tiny_artifacts, change) -> Path:
    """A run folder of two real artifacts whose tflite manifest ``change`` edits."""
    run = tmp_path / "run"
    for key in ("keras", "tflite"):
        art = tiny_artifacts[key]
        shutil.copytree(art.folder, run / "artifacts" / art.id)
    path = run / "artifacts" / tiny_artifacts["tflite"].id / "manifest.json"
    os.chmod(path, 0o644)
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    return run


def test_lineage_prints_a_manifests_label_as_text(tmp_path, tiny_artifacts):
    run = _artifacts(tmp_path, tiny_artifacts, lambda m: m.update(label=f"int8{ESCAPES}"))
    proc = cli("lineage", run)
    assert proc.returncode == 0 and "int8" in proc.stdout, proc.stdout + proc.stderr
    assert not any(c in proc.stdout for c in "\x1b\x07\r\u202e\x9b"), repr(proc.stdout)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda m: m.pop("size_bytes"), "field 'size_bytes'"),  # before: KeyError, exit 3
        (lambda m: m.update(size_bytes={"raw": -1, "gzip": 1}), "field 'size_bytes.raw'"),
        (lambda m: m.update(size_bytes={"raw": 10**5000, "gzip": 1}), "unreadable manifest: ValueError"),
    ],
)
def test_lineage_refuses_a_manifest_without_sizes(tmp_path, tiny_artifacts, change, says):
    import sys

    sys.set_int_max_str_digits(0)  # write the 5,000-digit integer; edge-opt must still refuse to read it
    try:
        run = _artifacts(tmp_path, tiny_artifacts, change)
    finally:
        sys.set_int_max_str_digits(4300)
    assert_clean_error(cli("lineage", run), says)


def test_an_error_naming_a_file_prints_its_name_as_text(tmp_path):
    """A file name is data too: one with an escape sequence in it is named without the escape."""
    model = tmp_path / f"m{ESCAPES}.tflite"
    model.write_bytes(b"\x00" * 64)
    proc = cli("bench", model)
    assert_clean_error(proc, "not a TFLite flatbuffer")
    assert not any(c in proc.stderr for c in "\x1b\x07\r\u202e\x9b"), repr(proc.stderr)
