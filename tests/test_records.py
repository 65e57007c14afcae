"""The typed measurement record and how trust-check results reach it."""

from __future__ import annotations

import dataclasses

import pytest

from edge_opt.analysis.checks import attach
from edge_opt.measure.records import Measurement, build_record, runtime_label


def _rec(artifact_id: str, sha: str, target: str) -> Measurement:
    artifact = {"id": artifact_id, "path": "", "sha256": sha, "format": "tflite", "precision": "int8",
                "target": target, "pass": "tflite", "parent": None, "label": "tflite-int8"}  # fmt: skip
    return build_record(artifact=artifact, runtime="litert", device="cpu", threads=1, size_bytes={"raw": 1, "gzip": 1})


def test_a_record_is_immutable_and_its_json_shares_nothing():
    rec = _rec("a", "s", "mobile")
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.status = "ok"
    js = rec.to_json()
    js["artifact"]["path"] = "elsewhere"
    assert rec.artifact["path"] == "" and set(js) >= {"id", "artifact", "runtime", "latency_ms", "checks"}
    assert rec.key == ("a", "litert", "cpu", 1, None, None)  # the last: the inventory device (None: this host)


def test_a_requested_precision_is_part_of_the_identity_and_the_label():
    plain = build_record(artifact={"id": "a", "precision": "fp32"}, runtime="openvino", device="cpu", threads=1,
                         size_bytes=None)  # fmt: skip
    bf16 = build_record(artifact={"id": "a", "precision": "fp32"}, runtime="openvino", device="cpu", threads=1,
                        size_bytes=None, precision="bf16")  # fmt: skip
    assert plain.id != bf16.id and plain.key != bf16.key
    assert runtime_label(bf16.runtime) == "openvino@bf16" and runtime_label(plain.runtime) == "openvino"
    assert (plain.runtime["precision"], bf16.runtime["precision"]) == ("fp32", "bf16")


def test_checks_reach_every_target_whose_file_has_the_same_bytes():
    """mobile and edgetpu give the same int8 file under two artifact ids: one check covers both.

    Before, results were looked up by artifact id, so the second target's records had no
    ``checks`` and its trust budgets failed as "not measured".
    """
    mobile, edgetpu, other = _rec("a-mobile", "same", "mobile"), _rec("a-tpu", "same", "edgetpu"), _rec("b", "x", "cpu")
    checks = {"artifacts": {"a-mobile": {"sha256": "same", "summary": {"fairness": {"flips": 2}}}}}
    out = attach([mobile, edgetpu, other], checks)
    assert [r.checks for r in out] == [{"fairness": {"flips": 2}}, {"fairness": {"flips": 2}}, None]
    assert mobile.checks is None  # a new record, the old one unchanged


def test_history_keeps_the_record_id_and_precisions_and_upgrades_an_old_file(tmp_path):
    import sqlite3

    from edge_opt.store.history import SCHEMA, append_history

    db = tmp_path / "history.sqlite"
    with sqlite3.connect(db) as con:  # a history file written before the precision columns
        con.execute(SCHEMA)
    rec = build_record(artifact={"id": "a", "format": "openvino", "precision": "fp32"}, runtime="openvino",
                       device="cpu", threads=1, size_bytes=None, precision="bf16", status="skipped")  # fmt: skip
    append_history(db, {"run_id": "r", "suite": {"name": "s"}, "measurements": [rec.to_json()]})
    with sqlite3.connect(db) as con:
        row = con.execute("select record_id, executed_precision, requested_precision from measurements").fetchone()
    assert row == (rec.id, "bf16", "bf16")


def test_paths_under_a_relative_out_folder_become_relative_to_the_run(tmp_path, monkeypatch):
    """Before: with `run --out out` (a relative folder) the records kept out/.partial-<id>/... paths,
    which name the staging folder, gone once the run lands."""
    from edge_opt.store import relative_paths

    monkeypatch.chdir(tmp_path)
    stage = "out/.partial-1"
    obj = {"a": [f"{stage}/artifacts/x/model.tflite"], "b": str(tmp_path / stage / "samples.npz"), "c": "tflite-int8"}
    assert relative_paths(obj, stage) == {"a": ["artifacts/x/model.tflite"], "b": "samples.npz", "c": "tflite-int8"}
    assert relative_paths({"d": "out/other/model.onnx", "e": "a/b"}, stage) == {"d": "out/other/model.onnx", "e": "a/b"}
