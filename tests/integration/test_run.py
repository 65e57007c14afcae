"""`edge-opt run` end to end on the quick suite, then `report` and `gate` on its result."""

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error, cli, run_cli

# quick_run: one run of the quick suite shared by every test of tests/integration (conftest.py).

RECORD_KEYS = {
    "artifact",
    "runtime",
    "latency_ms",
    "load_ms",
    "cold_start_ms",
    "memory_mb",
    "size_bytes",
    "accuracy",
    "status",
    "error",
}


def test_run_writes_results_reports_and_history(quick_run):
    out, run_dir, proc = quick_run
    for name in ("results.json", "report.md", "report.json", "samples.npz"):
        assert (run_dir / name).is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".partial")]
    results = json.loads((run_dir / "results.json").read_text())
    assert set(results["targets"]) == {"cpu", "gpu", "edgetpu", "mobile"}
    prov = results["provenance"]
    assert prov["python"] and prov["versions"]["ai-edge-litert"] and prov["machine"]["cpu"]
    recs = results["measurements"]
    for rec in recs:
        assert RECORD_KEYS <= set(rec)
        assert rec["status"] in ("ok", "failed", "skipped")
    assert not [r for r in recs if r["status"] == "failed"], [r["error"] for r in recs if r["status"] == "failed"]
    ok = {(r["target"], r["artifact"]["format"], r["runtime"]["name"]) for r in recs if r["status"] == "ok"}
    assert {
        ("cpu", "tflite", "litert"),
        ("cpu", "onnx", "onnxruntime"),
        ("cpu", "openvino", "openvino"),
        ("mobile", "tflite", "litert"),
        ("edgetpu", "tflite", "litert"),
        (None, "keras", "keras"),
    } <= ok
    # Where a device or precision is missing the record is skipped with the reason, never run on the
    # CPU (or in fp32) instead; where it is present, it ran there. Either way the record says which.
    from edge_opt.bench.process import usable_cpus
    from edge_opt.runtimes import get_backend_class

    for rec in recs:
        rt = rec["runtime"]
        if rt["name"] in ("-", "keras") or rec["status"] == "failed":
            continue
        if rt["threads"] > usable_cpus():  # a machine with fewer CPUs than the profile's thread counts
            assert rec["status"] == "skipped" and "threads asked" in rec["error"], rec
            continue
        reason = get_backend_class(rt["name"]).cannot_run(rt["device"], rt.get("precision_requested"))
        if reason:
            assert rec["status"] == "skipped" and rec["error"] == reason, rec
        else:
            assert rec["status"] == "ok" and rt["precision"], rec
            if rt.get("precision_requested"):
                assert rt["precision"] == rt["precision_requested"]
    assert [r for r in recs if r["target"] == "gpu"] and [r for r in recs if r["runtime"]["device"] == "edgetpu"]
    assert {r["runtime"].get("precision_requested") for r in recs if r["target"] == "cpu"} == {None, "bf16"}
    int8 = next(r for r in recs if r["target"] == "edgetpu" and r["status"] == "ok")
    assert int8["artifact"]["precision"] == "int8" and int8["accuracy_drop"] is not None
    assert all((run_dir / r["artifact"]["path"]).is_file() for r in recs if r["artifact"]["path"])
    with sqlite3.connect(out / "history.sqlite") as con:
        assert con.execute("select count(*) from measurements").fetchone()[0] == len(recs)
        rows = con.execute("select requested_precision, executed_precision from measurements where status = 'ok'")
        assert all(executed and requested in (None, executed) for requested, executed in rows)
    report = (run_dir / "report.md").read_text()
    assert "| cpu | tflite-fp32 | litert |" in report and "skipped" in report
    assert "tflite-int8" in proc.stdout  # the summary table reached the terminal


def test_run_ends_with_what_to_ship_and_the_folder_finds_it_by_label(quick_run):
    # Issue 19 (9): the terminal, report.md, report.json and report.html open with the chosen file per
    # task and target and the verdict of its profile's budgets; by-label/ finds artifacts without ids.
    _, run_dir, proc = quick_run
    stdout = proc.stdout
    assert "What to ship" in stdout and stdout.index("What to ship") > stdout.index("tflite-int8")
    assert max(len(line) for line in stdout.splitlines() if str(run_dir) not in line) <= 120  # paths aside
    report = json.loads((run_dir / "report.json").read_text())
    ship = {(v["task"], v["target"]): v for v in report["ship"]}
    assert set(ship) == {("adult-mlp", t) for t in ("cpu", "gpu", "edgetpu", "mobile")}
    results = json.loads((run_dir / "results.json").read_text())
    for (task, target), v in ship.items():
        assert v["verdict"] in ("PASS", "FAIL", "SKIP", "no budgets")
        assert f"adult-mlp · {target}" in stdout
        if v["artifact_id"] is None:  # none fits (FAIL), or none could be measured here (SKIP: the gpu)
            assert v["verdict"] in ("FAIL", "SKIP") and v["reasons"]
            assert not (run_dir / "by-label" / task / target / "chosen").exists()
            continue
        chosen = run_dir / "by-label" / task / target / "chosen"
        assert chosen.resolve() == (run_dir / v["path"]).resolve().parent == (run_dir / "artifacts" / v["artifact_id"])
        label = (chosen / "manifest.json").resolve()
        assert json.loads(label.read_text())["label"] == v["artifact"]
        assert (run_dir / "by-label" / task / target / v["artifact"]).resolve() == chosen.resolve()
        assert v["verdict"] + (" (" if v["verdict"] == "PASS" else "") in stdout
    from edge_opt.analysis.inputs import float_model_for

    # the trust checks find the float model from the link, as from the artifact's own folder
    chosen = run_dir / "by-label" / "adult-mlp" / "mobile" / "chosen"
    assert float_model_for(chosen, None) == float_model_for(chosen.resolve(), None) is not None
    floats = [r for r in results["measurements"] if r["target"] is None]
    assert (run_dir / "by-label" / "adult-mlp" / "float" / floats[0]["artifact"]["label"]).is_dir()
    # every link stays inside the run folder (relative, so the folder can move)
    for link in (run_dir / "by-label").rglob("*"):
        if link.is_symlink():
            assert not Path(os.readlink(link)).is_absolute()
            assert run_dir.resolve() in link.resolve().parents
    md = (run_dir / "report.md").read_text()
    assert md.index("## What to ship") < md.index("## adult-mlp")
    html = (run_dir / "report.html").read_text()
    first = html.index("<section")
    assert html.index('data-section="ship"') == html.index("data-section", first)  # the first section
    assert "<details><summary>All sections</summary><nav>" in html  # the anchors fold away


def _strings(obj, key=None):
    """(key, string) for every string in a JSON-like object."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(v, k)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v, key)
    elif isinstance(obj, str):
        yield key, obj


def test_a_landed_run_names_no_staging_folder_and_its_paths_resolve_in_it(quick_run):
    # Issue 18 (b): checks' model, reference_model and float_model named reports/.partial-<id>/...
    _, run_dir, _ = quick_run
    for name in ("results.json", "nas.json", "report.json"):
        if not (run_dir / name).is_file():
            continue
        text = (run_dir / name).read_text()
        assert ".partial-" not in text, name
    results = json.loads((run_dir / "results.json").read_text())
    named = [(k, v) for k, v in _strings(results["checks"]) if k in ("model", "reference_model", "float_model")]
    files = [v for _, v in named if v.startswith("artifacts")]
    assert files, named  # the checks name the files they ran on, relative to the run folder
    for path in files:
        assert (run_dir / path).exists(), path


def test_trust_checks_run_on_each_targets_artifact(quick_run):
    _, run_dir, _ = quick_run
    results = json.loads((run_dir / "results.json").read_text())
    checks = results["checks"]["adult-mlp"]
    # Every tflite file of the edgetpu target gets the compatibility analysis; the trust
    # checks run on one artifact per target.
    checked = {k: e for k, e in checks["artifacts"].items() if e["note"] != "edgetpu analysis only"}
    targets = sorted(t for entry in checked.values() for t in entry["targets"])
    assert targets == ["cpu", "edgetpu", "gpu", "mobile"]
    for entry in checked.values():
        summary = entry["summary"]
        assert {"fairness", "explain", "robustness"} <= set(summary), entry.get("fairness")
        assert summary["fairness"]["flips"] >= 0 and "demographic_parity_difference" in summary["fairness"]
        assert -1 <= summary["explain"]["shap_rank_corr"] <= 1
    tpu = next(e for e in checks["artifacts"].values() if "edgetpu" in e["targets"])
    assert tpu["summary"]["edgetpu"]["fraction_ops"] == 1.0
    assert checks["robustness"]["float"]["clean_accuracy"] > 0.5
    # The gate sees the summaries on the records of each checked artifact.
    with_checks = [r for r in results["measurements"] if r.get("checks")]
    assert {r["target"] for r in with_checks} >= {"cpu", "mobile", "edgetpu"}
    assert (run_dir / "checks.md").read_text().startswith("# Trust checks on the deployed files")
    assert "## Trust checks on the deployed files" in (run_dir / "report.md").read_text()


def test_gate_fails_on_a_fairness_budget(quick_run, tmp_path):
    _, run_dir, _ = quick_run
    budgets = tmp_path / "fair.yaml"
    budgets.write_text("mobile:\n  - latency.p90 <= 1s\n  - fairness.demographic_parity_difference <= -1\n")
    proc = run_cli("gate", str(run_dir), "--budgets", str(budgets))
    assert proc.returncode == 1 and "fairness.demographic_parity_difference" in proc.stdout
    budgets.write_text(
        "mobile:\n  - fairness.flips <= 100000\n  - explain.shap_rank_corr >= -1\n"
        "  - robustness.clean_accuracy >= 0.5\n"
    )
    proc = cli("gate", str(run_dir), "--budgets", str(budgets))
    assert proc.returncode == 0, proc.stdout


def test_report_command_reprints_the_table(quick_run):
    _, run_dir, _ = quick_run
    proc = cli("report", str(run_dir))
    assert proc.returncode == 0 and "openvino-fp32" in proc.stdout
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 120, max(lines, key=len)  # the summary fits 120 columns
    # Long statuses are numbered footnotes below the table, each number used in the table.
    notes = [line for line in lines if line.startswith("[")]
    assert any(n.startswith("[1] ok (float reference)") for n in notes), notes
    for note in notes:
        number = note.split("]", 1)[0] + "]"
        assert any(number in line and not line.startswith("[") for line in lines), note


def test_gate_passes_on_generous_budgets(quick_run, tmp_path):
    _, run_dir, _ = quick_run
    budgets = tmp_path / "ok.yaml"
    budgets.write_text(
        "cpu:\n  - latency.p90 <= 1s\n  - size.raw <= 10MB\n  - accuracy.drop <= 5%\n"
        "mobile:\n  - memory.peak_rss <= 4096MB\n"
    )
    proc = cli("gate", str(run_dir), "--budgets", str(budgets), "--json", str(tmp_path / "gate.json"))
    assert proc.returncode == 0, proc.stdout
    verdicts = json.loads((tmp_path / "gate.json").read_text())
    assert verdicts["passed"] and verdicts["counts"]["PASS"] > 0 and verdicts["counts"]["FAIL"] == 0


def test_gate_fails_on_a_budget_that_cannot_be_met(quick_run, tmp_path):
    _, run_dir, _ = quick_run
    budgets = tmp_path / "tight.yaml"
    # No file is one byte: impossible on any machine, however fast (a latency budget is not).
    budgets.write_text("cpu:\n  - size.raw <= 1B\n  - latency.p90 <= 10s\n")
    proc = cli("gate", str(run_dir), "--budgets", str(budgets))
    assert proc.returncode == 1
    assert "FAIL" in proc.stdout and "PASS" in proc.stdout and "INVALID" in proc.stdout


def test_gate_with_profile_budgets_fails_on_skipped_gpu_unless_allowed(quick_run):
    _, run_dir, _ = quick_run
    results = json.loads((run_dir / "results.json").read_text())
    if not any(r["status"] == "skipped" for r in results["measurements"] if r["target"] == "gpu"):
        pytest.skip("this machine has the GPU runtimes the gpu profile names: nothing is skipped")
    assert cli("gate", str(run_dir)).returncode == 1
    proc = cli("gate", str(run_dir), "--allow-skipped")
    assert proc.returncode == 0, proc.stdout


def test_lineage_shows_the_tree_from_the_float_model(quick_run):
    _, run_dir, _ = quick_run
    proc = cli("lineage", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("float (keras, fp32")
    onnx = next(i for i, ln in enumerate(lines) if "onnx-fp32 [cpu]" in ln)
    assert "openvino-fp32 [cpu]" in lines[onnx + 1] and lines[onnx + 1].startswith("        └── ")
    assert "## Lineage" in (run_dir / "report.md").read_text()
    assert '"chosen": [' in (run_dir / "report.json").read_text()


def test_a_run_writes_a_model_card_per_target_and_card_reprints_it(quick_run, tmp_path):
    """Each target's card names the file the gate would ship, with its sha256 and lineage, its
    accuracy per slice with intervals, and the trust checks; a target with nothing to ship (no
    GPU here) says why; a run whose checks were removed says they did not run, with no figure."""
    _, run_dir, _ = quick_run
    cards = {(c["task"], c["target"]): c for c in json.loads((run_dir / "model_card.json").read_text())["cards"]}
    results = json.loads((run_dir / "results.json").read_text())
    assert {t for _, t in cards} == set(results["targets"])
    cpu = next(c for (_, t), c in cards.items() if t == "cpu")
    details = cpu["model_details"]
    record = next(r for r in results["measurements"] if (r["artifact"] or {}).get("id") == details["artifact_id"])
    assert details["sha256"] == record["artifact"]["sha256"] and details["lineage"][-1] == details["name"]
    assert cpu["fairness"]["status"] == "ok" and "demographic_parity_difference" in cpu["fairness"]["summary"]
    female = cpu["quantitative_analysis"]["per_slice"]["sex"]["Female"]
    assert female["ci"][0] <= female["accuracy"] <= female["ci"][1]
    gpu = next(c for (_, t), c in cards.items() if t == "gpu")
    assert gpu["model_details"]["artifact_id"] is None and gpu["gate"]["verdict"] in ("SKIP", "FAIL")

    proc = cli("card", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (run_dir / "model_card.md").read_text()
    assert "### Accuracy per slice (95% interval)" in proc.stdout and "## adult-mlp · gpu: no file" in proc.stdout
    assert "model card" in (run_dir / "report.html").read_text()

    bare = tmp_path / "run"
    shutil.copytree(run_dir, bare, ignore=shutil.ignore_patterns("samples.npz", "artifacts"))
    stripped = dict(results, checks={})
    (bare / "results.json").write_text(json.dumps(stripped))
    proc = cli("card", str(bare), "--json")
    assert proc.returncode == 0, proc.stderr
    for card in json.loads(proc.stdout)["cards"]:
        for kind in ("fairness", "robustness", "explanations"):
            assert card[kind]["status"] == "not run" and "summary" not in card[kind], card[kind]


def test_lineage_of_a_folder_that_is_not_a_run_exits_2(tmp_path):
    proc = cli("lineage", str(tmp_path))
    assert proc.returncode == 2 and "no artifacts/ folder" in proc.stderr


def test_card_of_a_folder_that_is_not_a_run_exits_2(tmp_path):
    assert_clean_error(cli("card", str(tmp_path)), "no results.json here")


def test_compare_runs_flags_a_slowdown_only_when_significant(quick_run, tmp_path):
    import shutil

    import numpy as np

    _, run_dir, _ = quick_run
    same = run_cli("compare", str(run_dir), str(run_dir), "--fail-on", "10%")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "slower" not in same.stdout and "same" in same.stdout
    slow = tmp_path / "slow"
    shutil.copytree(run_dir, slow, symlinks=True)
    with np.load(run_dir / "samples.npz") as npz:
        np.savez(slow / "samples.npz", **{k: npz[k] * 1.5 for k in npz.files})
    results = json.loads((slow / "results.json").read_text())
    for rec in results["measurements"]:
        if rec.get("latency_ms"):
            rec["latency_ms"]["p50"] *= 1.5
    (slow / "results.json").write_text(json.dumps(results))
    out = tmp_path / "cmp.json"
    # --min-delta 0: this test is about significance; the absolute floor has its own test
    proc = cli("compare", str(run_dir), str(slow), "--fail-on", "10%", "--min-delta", "0", "--json", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    cmp = json.loads(out.read_text())
    verdicts = {r["label"]: (r["verdict"], r["p_value"], r["change"]) for r in cmp["rows"]}
    # A 50% slowdown is called one wherever the samples can tell (few, noisy Keras samples may not).
    assert all(v[0] == "slower" or v[1] >= 0.01 for v in verdicts.values()), verdicts
    assert len(cmp["regressions"]) >= len(verdicts) - 1, verdicts
    assert cli("compare", str(run_dir), str(slow), "--fail-on", "80%", "--min-delta", "0").returncode == 0


def _copy_run(run_dir, to, factor: float = 1.0, edit=lambda results: None):
    """A copy of a run whose samples and medians are ``factor`` times the original's, its
    results.json changed by ``edit``."""
    import shutil

    import numpy as np

    shutil.copytree(run_dir, to, ignore=shutil.ignore_patterns("artifacts", "nas", "by-label"))
    with np.load(run_dir / "samples.npz") as npz:
        np.savez(to / "samples.npz", **{k: npz[k] * factor for k in npz.files})
    results = json.loads((to / "results.json").read_text())
    for rec in results["measurements"]:
        if rec.get("latency_ms"):
            rec["latency_ms"]["p50"] *= factor
    edit(results)
    (to / "results.json").write_text(json.dumps(results))
    return to


def test_compare_counts_a_change_only_beyond_both_noise_floors_and_says_why(quick_run, tmp_path):
    """Before: two identical quick runs failed --fail-on 10% on a 1.02 -> 1.12 µs row, and p-values read 0."""
    _, run_dir, _ = quick_run
    slow = _copy_run(run_dir, tmp_path / "slow", 1.2)
    out = tmp_path / "cmp.json"
    proc = cli("compare", str(run_dir), str(slow), "--fail-on", "10%", "--min-delta", "0.5us", "--json", str(out))
    rows = json.loads(out.read_text())["rows"]
    for r in rows:
        if abs(r["p50_b"] - r["p50_a"]) < 0.0005:  # 20% of a sub-2.5 µs median: under the floor
            assert r["verdict"] == "same" and r["why"] == "under 0.5 µs", r
        elif r["p_value"] < 0.01:
            assert r["verdict"] == "slower" and r["why"].startswith("p "), r
    assert proc.returncode == (1 if any(r["verdict"] == "slower" for r in rows) else 0)
    assert "<0.0001" in proc.stdout  # p-values that read, not "0"
    assert "A change counts when p < 0.01 and the median moved by at least 10% and 0.5 µs." in proc.stdout


def test_compare_does_not_call_a_change_between_two_timing_bases(quick_run, tmp_path):
    """Issue 19 (1): before, OpenVINO records held OpenVINO's own timer and the others the wall clock."""
    from edge_opt.run.compare import compare_runs

    _, run_dir, _ = quick_run
    results = json.loads((run_dir / "results.json").read_text())
    ov = [r for r in results["measurements"] if r["runtime"]["name"] == "openvino" and r["status"] == "ok"]
    assert ov and all(r["latency_basis"] == "wall" and r["runtime_latency_ms"]["n"] for r in ov)
    assert all(r["runtime_latency_ms"] is None for r in results["measurements"] if r["runtime"]["name"] == "litert")

    def old_style(results):  # a record of the earlier version: latency_ms was the runtime's own timer
        rec = next(r for r in results["measurements"] if r["runtime"]["name"] == "openvino" and r["status"] == "ok")
        del rec["latency_basis"]
        rec["runtime"]["timer"] = "runtime"

    old = _copy_run(run_dir, tmp_path / "old", 0.3, edit=old_style)  # B looks 3x slower
    result = compare_runs(old, run_dir)
    other = [r for r in result["rows"] if r["verdict"] == "other basis"]
    assert len(other) == 1 and other[0]["why"] == "not comparable: A timed by the runtime clock, B by the wall clock"
    assert other[0]["label"] not in result["regressions"] and result["regressions"]  # the others: slower


def test_compare_refuses_two_suites_and_marks_pairs_of_other_files(quick_run, tmp_path):
    """Before: a run of one suite compared with another's by label, without a word."""
    _, run_dir, _ = quick_run

    def rename(results):
        results["suite"]["name"] = "other"

    other = _copy_run(run_dir, tmp_path / "other", edit=rename)
    proc = cli("compare", str(run_dir), str(other))
    assert_clean_error(proc, "is a run of suite 'quick' and")
    assert "--other-suite" in proc.stderr
    assert cli("compare", str(run_dir), str(other), "--other-suite").returncode == 0

    def retrain(results):
        rec = next(r for r in results["measurements"] if r.get("latency_ms") and r["status"] == "ok")
        rec["artifact"]["sha256"] = "0" * 64

    changed = _copy_run(run_dir, tmp_path / "changed", edit=retrain)
    out = tmp_path / "cmp.json"
    proc = cli("compare", str(run_dir), str(changed), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert len(result["other_files"]) == 1 and sum(r["same_file"] is False for r in result["rows"]) == 1
    assert "warning: 1 of" in proc.stdout and "compare different files" in proc.stdout


def test_each_targets_chosen_artifact_says_where_its_time_goes(quick_run):
    """checks.ops (on by default): the chosen record of each measured target carries its per-op profile."""
    from edge_opt.budgets.choose import choose_each

    _, run_dir, _ = quick_run
    results = json.loads((run_dir / "results.json").read_text())
    chosen = {key: sel.chosen for key, sel in choose_each(results).items() if sel.chosen is not None}
    assert chosen and all(rec["ops_runs"] for rec in chosen.values())
    for rec in chosen.values():
        method = {"litert": "isolated", "onnxruntime": "onnxruntime-profiler", "openvino": "openvino-perf-counters"}
        assert rec["ops_method"] == method.get(rec["runtime"]["name"]), rec["ops_note"]
        assert rec["ops_count"] == len(rec["ops"] or []) and rec["ops_fallback"] is not None
    profiled = [r for r in results["measurements"] if r.get("ops_runs")]
    assert len(profiled) == len(chosen)  # the others are not profiled: only the choices are explained
    assert "## Where the time goes" in (run_dir / "report.md").read_text()
