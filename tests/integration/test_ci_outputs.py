"""CI outputs of the shared quick run: the JSON Schemas hold its files, and the gate writes JUnit and Markdown."""

import json
import xml.etree.ElementTree as ET

import jsonschema
import pytest

from edge_opt.store import SCHEMAS, load_schema
from tests.conftest import run_cli


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_run_files_validate_against_the_shipped_schema(quick_run, name):
    _, run_dir, _ = quick_run
    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    document = json.loads((run_dir / name).read_text())
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
    broken = dict(document)
    broken.pop(schema["required"][0])  # the schema is not vacuous: a required field missing fails it
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema, cls=jsonschema.Draft202012Validator)


def test_a_record_with_a_bad_status_breaks_the_results_schema(quick_run):
    _, run_dir, _ = quick_run
    results = json.loads((run_dir / "results.json").read_text())
    results["measurements"][0]["status"] = "great"
    with pytest.raises(jsonschema.ValidationError, match="great"):
        jsonschema.validate(results, load_schema("results.json"), cls=jsonschema.Draft202012Validator)


def test_gate_writes_junit_and_markdown(quick_run, tmp_path):
    _, run_dir, _ = quick_run
    budgets = tmp_path / "b.yaml"
    # One check no file can meet (1 byte), one every file meets: a failure and a pass, on any machine.
    budgets.write_text("cpu:\n  - size.raw <= 1B\n  - latency.p90 <= 10s\ngpu:\n  - size.raw <= 10MB\n")
    junit, md, js = tmp_path / "gate.xml", tmp_path / "gate.md", tmp_path / "gate.json"
    proc = run_cli(
        "gate", str(run_dir), "--budgets", str(budgets), "--junit", str(junit), "--markdown", str(md), "--json", str(js)
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    verdicts = json.loads(js.read_text())
    root = ET.parse(junit).getroot()
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == len(verdicts["rows"]) == int(root.get("tests"))
    failures = [c.find("failure") for c in cases if c.find("failure") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert len(failures) == verdicts["counts"]["FAIL"] == int(root.get("failures")) > 0
    assert len(skipped) == verdicts["counts"]["SKIP"] == int(root.get("skipped"))
    fail_rows = [r for r in verdicts["rows"] if r["verdict"] == "FAIL"]
    assert sorted(f.get("message") for f in failures) == sorted(r["message"] for r in fail_rows)
    assert any("size.raw" in f.get("message") and "FAIL" in f.get("message") for f in failures)
    assert {s.get("name") for s in root.findall("testsuite")} == {"adult-mlp · cpu", "adult-mlp · gpu"}
    text = md.read_text()
    assert text.startswith("## edge-opt gate") and "INVALID" in text
    table = [ln for ln in text.splitlines() if ln.startswith("| ") and not ln.startswith("| task")]
    assert len(table) == len(verdicts["rows"])
    assert sum("❌ FAIL" in ln for ln in table) == verdicts["counts"]["FAIL"]


def test_gate_junit_option_refuses_a_folder(quick_run, tmp_path):
    _, run_dir, _ = quick_run
    proc = run_cli("gate", str(run_dir), "--junit", str(tmp_path))
    assert proc.returncode == 2 and "'--junit'" in proc.stderr and "is a folder" in proc.stderr
