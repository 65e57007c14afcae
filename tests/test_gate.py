"""The release gate: check parsing, evaluation on hand-made records, budget files."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from edge_opt.budgets.choose import choose, record_label
from edge_opt.budgets.grammar import Check, load_budgets
from edge_opt.core.config import read_yaml
from edge_opt.core.errors import EXIT_BAD_INPUT, ConfigError
from edge_opt.gate import evaluate, ship_verdicts
from edge_opt.store.run import load_schema

TARGETS = Path(__file__).resolve().parents[1] / "targets"


def _record(target="cpu", status="ok", error=None, label="tflite-int8", runtime="litert", threads=1, **figures):
    rec = {
        "id": f"{label}-{runtime}-{threads}",
        "target": target,
        "status": status,
        "error": error,
        "artifact": {"id": "a1", "label": label, "pass": "tflite", "target": target},
        "runtime": {"name": runtime, "version": "1", "threads": threads, "device": "cpu", "note": ""},
        "latency_ms": None,
        "load_ms": None,
        "cold_start_ms": None,
        "memory_mb": None,
        "size_bytes": None,
        "accuracy": None,
        "accuracy_drop": None,
        "agreement": None,
    }
    rec.update(figures)
    return rec


GOOD = dict(
    latency_ms={"p50": 0.01, "p90": 0.012, "p95": 0.013, "p99": 0.02, "mean": 0.011, "max": 0.05},
    load_ms=3.0,
    cold_start_ms=4.5,
    memory_mb={"peak_rss": 300.0, "peak_uss": 250.0},
    size_bytes={"raw": 500_000, "gzip": 400_000},
    accuracy=0.91,
    accuracy_drop=0.004,
)


def _results(*records, budgets=None, targets=("cpu",)):
    profiles = {t: {"name": t, "budgets": list(budgets or [])} for t in targets}
    reference = _record(target=None, label="float", runtime="keras", accuracy=0.914)
    return {"run_id": "r1", "targets": profiles, "measurements": [reference, *records]}


# --- parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, metric, op, value",
    [
        ("size.raw <= 8MB", "size.raw", "<=", 8_000_000),
        ("size.raw <= 8 MiB", "size.raw", "<=", 8 * 1024**2),
        ("size.gzip < 500KB", "size.gzip", "<", 500_000),
        ("size.gzip < 2KiB", "size.gzip", "<", 2048),
        ("size.raw <= 1000B", "size.raw", "<=", 1000),
        ("size.raw <= 1000", "size.raw", "<=", 1000),
        ("latency.p50 < 500us", "latency.p50", "<", 0.5),
        ("latency.p90 <= 5ms", "latency.p90", "<=", 5.0),
        ("latency.p95 <= 0.25s", "latency.p95", "<=", 250.0),
        ("latency.p99>=1ms", "latency.p99", ">=", 1.0),
        ("latency.mean > 0.5", "latency.mean", ">", 0.5),
        ("latency.max <= 1e1 ms", "latency.max", "<=", 10.0),
        ("load_ms <= 2s", "load_ms", "<=", 2000.0),
        ("cold_start_ms < 300ms", "cold_start_ms", "<", 300.0),
        ("memory.peak_rss <= 1024MB", "memory.peak_rss", "<=", 1024.0),
        ("memory.peak_uss <= 512MiB", "memory.peak_uss", "<=", 512.0),
        ("accuracy >= 0.9", "accuracy", ">=", 0.9),
        ("accuracy >= 90%", "accuracy", ">=", 0.9),
        ("accuracy.drop <= 0.01", "accuracy.drop", "<=", 0.01),
        ("accuracy.drop <= 1%", "accuracy.drop", "<=", 0.01),
        ("accuracy.drop <= 1pt", "accuracy.drop", "<=", 0.01),  # points, as the README says
        ("accuracy.drop <= 0.5 pt", "accuracy.drop", "<=", 0.005),
        ("accuracy >= 90pt", "accuracy", ">=", 0.9),
        ("accuracy.drop <= 0", "accuracy.drop", "<=", 0.0),
        ("  accuracy.drop <= 0.5 %  ", "accuracy.drop", "<=", 0.005),
        # trust-check shares read points too (before: 'pt' refused)
        ("fairness.worst_slice_accuracy_drop <= 2pt", "fairness.worst_slice_accuracy_drop", "<=", 0.02),
        ("fairness.demographic_parity_difference <= 0.1", "fairness.demographic_parity_difference", "<=", 0.1),
        ("robustness.blackbox_success_rate@0.1 <= 5pt", "robustness.blackbox_success_rate@0.1", "<=", 0.05),
        ("explain.shap_top5_overlap >= 80pt", "explain.shap_top5_overlap", ">=", 0.8),
        ("explain.shap_rank_corr >= 0.9", "explain.shap_rank_corr", ">=", 0.9),
    ],
)
def test_parse(spec, metric, op, value):
    check = Check.parse(spec)
    assert (check.metric, check.op) == (metric, op)
    assert check.value == pytest.approx(value)
    assert check.spec == spec.strip()


@pytest.mark.parametrize(
    "spec, says",
    [
        ("latency.p90 == 5ms", "op one of <=, <, >=, >"),
        ("latency.p90 5ms", "<metric> <op> <value>[unit]"),
        ("latency.p90 <= fast", "<metric> <op> <value>[unit]"),
        ("", "<metric> <op> <value>[unit]"),
        ("latency.p91 <= 5ms", "unknown metric 'latency.p91'; allowed: size.raw"),
        ("latency.p90 <= 5MB", "unit 'MB' not allowed for latency.p90; allowed: ms, us"),
        ("size.raw <= 8GB", "unit 'GB' not allowed for size.raw; allowed: B, KB, MB, KiB, MiB"),
        ("memory.peak_rss <= 1KB", "unit 'KB' not allowed for memory.peak_rss"),
        ("accuracy >= 90", "a bare 90 is ambiguous for accuracy"),
        ("accuracy >= 120pt", "between 0 and 1 (or 0pt and 100pt)"),
        ("accuracy.drop <= 200%", "between -1 and 1"),
        ("size.raw <= -1B", "must be >= 0"),
        ("latency.p90 <= 5ms ms", "<metric> <op> <value>[unit]"),
        ("explain.shap_rank_corr >= 90pt", "unit 'pt' not allowed for explain.shap_rank_corr"),  # no share
        ("fairness.flips <= 3pt", "unit 'pt' not allowed for fairness.flips"),
    ],
)
def test_bad_spec(spec, says):
    with pytest.raises(ConfigError) as exc:
        Check.parse(spec)
    assert f"bad check {spec!r}" in str(exc.value)
    assert says in str(exc.value)
    assert exc.value.exit_code == EXIT_BAD_INPUT


@pytest.mark.parametrize("spec", ["accuracy.drop <= 1", "accuracy.drop <= 2", "accuracy >= 1", "accuracy.drop <= -1.5"])
def test_a_bare_accuracy_number_that_could_be_points_is_refused(spec):
    # Before: 'accuracy.drop <= 1' read as a fraction (a 100-point drop), so it could never fail.
    with pytest.raises(ConfigError) as exc:
        Check.parse(spec)
    message = str(exc.value)
    assert "\n" not in message and exc.value.exit_code == EXIT_BAD_INPUT
    assert "ambiguous" in message and "1pt" in message and "1%" in message and "0.01" in message


def test_one_point_fails_a_drop_of_two_points():
    two_points = _record(**{**GOOD, "accuracy_drop": 0.02})
    for spec in ("accuracy.drop <= 1pt", "accuracy.drop <= 1%", "accuracy.drop <= 0.01"):
        assert Check.parse(spec).evaluate(two_points).passed is False, spec
    assert Check.parse("accuracy.drop <= 3pt").evaluate(two_points).passed is True


def test_spec_must_be_a_string():
    with pytest.raises(ConfigError, match="must be a string"):
        Check.parse(5)


# --- evaluating one record --------------------------------------------------------------


def test_a_drop_of_minus_zero_reads_zero():
    # Issue 19 (11): a file as accurate as its float model read "accuracy.drop = -0% <= 1%".
    result = Check.parse("accuracy.drop <= 1%").evaluate(_record(**{**GOOD, "accuracy_drop": -1e-18}))
    assert result.message == "accuracy.drop = 0% <= 1%: pass"


@pytest.mark.parametrize(
    "spec, passed, message",
    [
        ("latency.p90 <= 5ms", True, "latency.p90 = 0.012 ms <= 5 ms: pass"),
        ("latency.p90 <= 10us", False, "latency.p90 = 12 µs > 10 µs: FAIL"),  # typed us, shown µs
        ("latency.p90 < 12us", False, "latency.p90 = 12 µs >= 12 µs: FAIL"),  # boundary, despite unit noise
        ("latency.p90 <= 12µs", True, "latency.p90 = 12 µs <= 12 µs: pass"),
        ("size.raw <= 1MB", True, "size.raw = 0.5 MB <= 1 MB: pass"),
        ("size.gzip <= 300KB", False, "size.gzip = 400 KB > 300 KB: FAIL"),
        ("memory.peak_rss <= 256MB", False, "memory.peak_rss = 300 MB > 256 MB: FAIL"),
        ("memory.peak_uss <= 256MiB", True, "memory.peak_uss = 250 MiB <= 256 MiB: pass"),
        ("accuracy >= 90%", True, "accuracy = 91% >= 90%: pass"),
        ("accuracy > 0.95", False, "accuracy = 0.91 <= 0.95: FAIL"),
        ("accuracy.drop <= 1%", True, "accuracy.drop = 0.4% <= 1%: pass"),
        ("accuracy.drop < 0.003", False, "accuracy.drop = 0.004 >= 0.003: FAIL"),
        ("accuracy.drop <= 0.3pt", False, "accuracy.drop = 0.4pt > 0.3pt: FAIL"),
        ("load_ms <= 2s", True, "load_ms = 0.003 s <= 2 s: pass"),
        ("cold_start_ms >= 5ms", False, "cold_start_ms = 4.5 ms < 5 ms: FAIL"),
    ],
)
def test_evaluate_record(spec, passed, message):
    result = Check.parse(spec).evaluate(_record(**GOOD))
    assert result.passed is passed
    assert result.message == message
    assert result.actual is not None


def test_close_values_show_enough_digits():
    result = Check.parse("latency.p90 <= 5ms").evaluate(_record(latency_ms={"p90": 5.0004}))
    assert result.passed is False
    assert result.message == "latency.p90 = 5.0004 ms > 5 ms: FAIL"


def test_failed_record_fails_with_its_error():
    rec = _record(status="failed", error="onnxruntime: segfault in worker")
    result = Check.parse("latency.p90 <= 5ms").evaluate(rec)
    assert result.passed is False and result.actual is None
    assert result.message == "latency.p90 <= 5ms: FAIL (measurement failed: onnxruntime: segfault in worker)"


def test_skipped_record_skips_with_its_error():
    result = Check.parse("latency.p90 <= 2ms").evaluate(_record(status="skipped", error="no GPU on this machine"))
    assert result.passed is None
    assert result.message == "latency.p90 <= 2ms: SKIP (skipped: no GPU on this machine)"


@pytest.mark.parametrize(
    "figures",
    [{}, {"latency_ms": {"p50": 1.0}}, {"latency_ms": {"p90": None}}, {"latency_ms": "n/a"}],
)
def test_missing_metric_is_a_fail_with_reason(figures):
    result = Check.parse("latency.p90 <= 5ms").evaluate(_record(**figures))
    assert result.passed is False
    assert result.message == "latency.p90 <= 5ms: FAIL (latency.p90 not measured for this record)"


def test_non_number_metric_is_a_fail():
    result = Check.parse("accuracy >= 0.9").evaluate(_record(accuracy="high"))
    assert result.passed is False
    assert "accuracy is not a number: 'high'" in result.message


def test_record_label():
    assert record_label(_record(label="tflite-int8", runtime="litert", threads=1)) == "tflite-int8 · litert · 1 thread"
    rec = _record(label="onnx-fp32", runtime="onnxruntime", threads=2)
    assert record_label(rec) == "onnx-fp32 · onnxruntime · 2 threads"
    rec["runtime"]["device"] = "edgetpu"
    assert record_label(rec) == "onnx-fp32 · onnxruntime (edgetpu) · 2 threads"
    bf16 = _record(label="openvino-fp32", runtime="openvino")
    bf16["runtime"]["precision_requested"] = "bf16"
    assert record_label(bf16) == "openvino-fp32 · openvino@bf16 · 1 thread"


# --- the gate over a run ----------------------------------------------------------------


def test_gate_passes_and_fails_per_record():
    fast = _record(label="tflite-int8", **GOOD)
    slow = _record(label="tflite-fp32", **{**GOOD, "latency_ms": {"p90": 7.5}})
    budgets = {"cpu": [Check.parse("latency.p90 <= 5ms"), Check.parse("accuracy.drop <= 1%")]}
    report = evaluate(_results(fast, slow), budgets, every=True)
    assert [(r.record, r.check, r.verdict) for r in report.rows] == [
        ("tflite-int8 · litert · 1 thread", "latency.p90 <= 5ms", "PASS"),
        ("tflite-int8 · litert · 1 thread", "accuracy.drop <= 1%", "PASS"),
        ("tflite-fp32 · litert · 1 thread", "latency.p90 <= 5ms", "FAIL"),
        ("tflite-fp32 · litert · 1 thread", "accuracy.drop <= 1%", "PASS"),
    ]
    assert report.rows[2].message == "latency.p90 = 7.5 ms > 5 ms: FAIL"
    assert report.passed is False
    assert evaluate(_results(fast), budgets).passed is True


def test_gate_looks_at_the_chosen_candidate_first():
    fast = _record(label="tflite-int8", **GOOD)
    slow = _record(label="tflite-fp32", **{**GOOD, "latency_ms": {"p50": 6.0, "p90": 7.5}})
    budgets = {"cpu": [Check.parse("latency.p90 <= 5ms")]}
    report = evaluate(_results(fast, slow), budgets)
    assert report.passed
    assert [(r.record, r.verdict) for r in report.rows] == [("tflite-int8 · litert · 1 thread", "PASS")]
    sel = report.selections[None, "cpu"]
    assert sel.chosen is fast and sel.rejected == [(slow, "latency.p90 = 7.5 ms > 5 ms: FAIL")]
    only_slow = evaluate(_results(slow), budgets)
    assert not only_slow.passed and only_slow.selections[None, "cpu"].chosen is None


def test_choose_prefers_the_fastest_that_fits_and_explains_every_rejection():
    fastest_but_inaccurate = _record(
        label="int8", **{**GOOD, "latency_ms": {"p50": 0.001, "p90": 0.002}, "accuracy_drop": 0.05}
    )
    fits_fast = _record(label="fp16", **{**GOOD, "latency_ms": {"p50": 0.01, "p90": 0.02}})
    fits_slow = _record(label="fp32", **{**GOOD, "latency_ms": {"p50": 0.03, "p90": 0.04}})
    skipped = _record(label="gpu", status="skipped", error="no GPU here")
    checks = [Check.parse("accuracy.drop <= 1%"), Check.parse("latency.p90 <= 1ms")]
    sel = choose("cpu", [fastest_but_inaccurate, fits_slow, fits_fast, skipped], checks)
    assert sel.chosen is fits_fast
    reasons = {rec["artifact"]["label"]: why for rec, why in sel.rejected}
    assert reasons["int8"] == "accuracy.drop = 5% > 1%: FAIL"
    assert reasons["gpu"] == "not measured: skipped: no GPU here"
    assert reasons["fp32"].startswith("meets the budgets but slower: p50 30.0 µs vs 10.0 µs")
    assert sel.to_dict()["chosen"]["label"] == "fp16 · litert · 1 thread"


def _timed(label, p50, ci, raw, accuracy=0.9):
    lat = {"p50": p50, "p90": p50 * 1.1, "median_ci": list(ci)}
    return _record(
        label=label, **{**GOOD, "latency_ms": lat, "size_bytes": {"raw": raw, "gzip": raw}, "accuracy": accuracy}
    )


def test_choose_does_not_crown_noise_and_a_tie_goes_to_the_smaller_file():
    """10 ns apart with overlapping median CIs is a tie: the 2x smaller file wins (it lost before)."""
    faster = _timed("big", 0.000681, (0.000670, 0.000700), 20_000)
    smaller = _timed("small", 0.000691, (0.000675, 0.000705), 10_000)
    sel = choose("cpu", [faster, smaller], [])
    assert sel.chosen is smaller and sel.decided_by == "size" and sel.tied == [faster]
    ((lost, why),) = sel.rejected
    assert lost is faster and why.startswith("ties on latency") and "larger file (20000 vs 10000 bytes)" in why
    assert "a tie on latency with 1 other: the smaller file won" in sel.tie_note()
    assert sel.to_dict()["decided_by"] == "size" and sel.to_dict()["tied"][0]["label"].startswith("big")


def test_choose_lets_latency_decide_when_the_intervals_do_not_overlap():
    faster = _timed("big", 0.000681, (0.000660, 0.000690), 20_000)
    smaller = _timed("small", 0.000720, (0.000700, 0.000730), 10_000)
    sel = choose("cpu", [smaller, faster], [])
    assert sel.chosen is faster and sel.decided_by == "latency" and not sel.tied and sel.tie_note() == ""
    assert "do not overlap" in sel.rejected[0][1]


def test_a_gap_under_two_percent_is_a_tie_even_with_intervals_that_do_not_overlap():
    """Thousands of samples shrink a within-run CI to nanoseconds: 1 ns of 1.15 µs is no win."""
    faster = _timed("big", 0.001151, (0.001151, 0.001151), 20_000)
    smaller = _timed("small", 0.001152, (0.001152, 0.001152), 10_000)
    sel = choose("cpu", [faster, smaller], [])
    assert sel.chosen is smaller and sel.decided_by == "size" and "under 2% apart" in sel.rejected[0][1]
    assert choose("cpu", [faster, smaller], [], min_speedup=0).chosen is faster


def test_a_tie_on_latency_and_size_goes_to_the_more_accurate():
    a = _timed("a", 1.00, (0.95, 1.05), 1000, accuracy=0.80)
    b = _timed("b", 1.01, (0.97, 1.06), 1000, accuracy=0.85)
    sel = choose("cpu", [a, b], [])
    assert sel.chosen is b and sel.decided_by == "accuracy" and "less accurate" in sel.rejected[0][1]


def test_a_tie_goes_to_fewer_threads_then_the_smaller_file_and_the_order_of_records_never_matters():
    """Before: identical runs chose 1 thread, then 2 threads, as noise moved the lower median."""
    one = _timed("int8", 0.000700, (0.000690, 0.000710), 10_000)
    two = {**_timed("int8", 0.000695, (0.000685, 0.000705), 10_000), "id": "int8-litert-2"}
    two["runtime"] = {**two["runtime"], "threads": 2}
    sel = choose("cpu", [two, one], [])
    assert sel.chosen is one and sel.decided_by == "threads" and "more threads (2 vs 1)" in sel.rejected[0][1]
    chosen_schema = load_schema("report.json")["properties"]["chosen"]["items"]
    jsonschema.validate(sel.to_dict(), chosen_schema)  # report.json can say so (it could not before)
    assert "fewer threads won" in sel.tie_note()
    smaller_two = {**two, "size_bytes": {"raw": 5_000, "gzip": 5_000}}
    assert choose("cpu", [smaller_two, one], []).chosen is one  # threads before size
    same = [_timed("a", 0.0007, (0.00069, 0.00071), 1000), _timed("b", 0.0007, (0.00069, 0.00071), 1000)]
    assert choose("cpu", same, []).chosen is choose("cpu", same[::-1], []).chosen is same[0]


def _checked_run():
    """A run whose trust checks ran on the slower candidate (the profile's budgets chose it)."""
    fast = _record(label="int8", **{**GOOD, "latency_ms": {"p50": 0.01, "p90": 0.02, "median_ci": [0.009, 0.011]}})
    slow = _record(label="fp32", **{**GOOD, "latency_ms": {"p50": 0.05, "p90": 0.06, "median_ci": [0.049, 0.051]}})
    fast["artifact"] = {**fast["artifact"], "id": "a-int8", "sha256": "s-int8"}
    slow["artifact"] = {**slow["artifact"], "id": "a-fp32", "sha256": "s-fp32"}
    slow["checks"] = {"fairness": {"flips": 3}}
    results = _results(fast, slow)
    results["checks"] = {"t": {"artifacts": {"a-fp32": {"sha256": "s-fp32", "picked": {"cpu": slow["id"]}}}}}
    return results, fast, slow


def test_trust_budgets_are_held_to_the_record_the_checks_ran_on():
    results, fast, slow = _checked_run()
    budgets = {"cpu": [Check.parse("latency.p90 <= 1s"), Check.parse("fairness.flips <= 5")]}
    report = evaluate(results, budgets)
    assert report.selections[None, "cpu"].chosen is fast
    lat, fair = report.rows
    assert (lat.record_id, lat.verdict) == (fast["id"], "PASS")
    # Before: the trust budget was evaluated on the gate's own choice, never checked ("not measured").
    assert (fair.record_id, fair.verdict, fair.actual) == (slow["id"], "PASS", 3.0)
    assert "trust checks ran on fp32 · litert · 1 thread" in fair.message and "did not check" in fair.message
    assert report.passed


def test_float_reference_is_not_gated():
    budgets = {"cpu": [Check.parse("latency.p90 <= 5ms")]}
    report = evaluate(_results(_record(**GOOD)), budgets)
    assert len(report.rows) == 1 and report.passed


def test_failed_record_fails_the_gate():
    report = evaluate(_results(_record(status="failed", error="boom")), {"cpu": [Check.parse("size.raw <= 1MB")]})
    assert [r.verdict for r in report.rows] == ["FAIL"]
    assert "boom" in report.rows[0].message
    assert report.passed is False


def test_skipped_passes_only_when_allowed():
    results = _results(_record(target="gpu", status="skipped", error="no GPU"), targets=("gpu",))
    budgets = {"gpu": [Check.parse("latency.p90 <= 2ms"), Check.parse("accuracy.drop <= 0.01")]}
    strict = evaluate(results, budgets)
    assert [r.verdict for r in strict.rows] == ["SKIP", "SKIP"]
    assert strict.passed is False
    assert evaluate(results, budgets, allow_skipped=True).passed is True


def test_skipped_only_failure_names_allow_skipped():
    results = _results(_record(**GOOD), _record(target="gpu", status="skipped", error="no GPU"), targets=("cpu", "gpu"))
    budgets = {"cpu": [Check.parse("latency.p90 <= 5ms")], "gpu": [Check.parse("latency.p90 <= 2ms")]}
    strict = evaluate(results, budgets)
    assert strict.passed is False
    assert "--allow-skipped" in strict.verdict and "only skipped" in strict.verdict
    assert strict.to_dict()["verdict"] == strict.verdict
    allowed = evaluate(results, budgets, allow_skipped=True)
    assert allowed.passed and allowed.verdict.startswith("VALID") and "1 skipped" in allowed.verdict
    # A real failure next to a skip is not blamed on the skip.
    budgets["cpu"] = [Check.parse("latency.p90 <= 1us")]
    failing = evaluate(results, budgets)
    assert failing.verdict == "INVALID: a budget is not met"


def test_skip_does_not_hide_a_fail():
    results = _results(_record(status="skipped", error="no GPU"), _record(label="x", **{**GOOD, "load_ms": 9e9}))
    assert evaluate(results, {"cpu": [Check.parse("load_ms <= 1s")]}, allow_skipped=True).passed is False


def test_target_without_records_fails():
    report = evaluate(_results(targets=("cpu",)), {"cpu": [Check.parse("latency.p90 <= 5ms")]})
    assert [(r.target, r.verdict, r.message) for r in report.rows] == [
        ("cpu", "FAIL", "no measurements for target cpu in this run")
    ]
    assert report.passed is False


def test_budgets_for_a_target_not_in_the_run_are_a_config_error():
    # Before: a FAIL row (exit 1), as if the run had failed a budget.
    with pytest.raises(ConfigError) as exc:
        evaluate(_results(_record(**GOOD)), {"mobile": [Check.parse("size.raw <= 1MB")]}, source="b.yaml")
    assert str(exc.value) == "b.yaml: budgets name target 'mobile', which is not in this run; its targets: cpu"
    assert exc.value.exit_code == EXIT_BAD_INPUT


def test_targets_without_budgets_are_not_gated():
    results = _results(_record(**GOOD), _record(target="gpu", **GOOD), targets=("cpu", "gpu"))
    report = evaluate(results, {"cpu": [Check.parse("latency.p90 <= 5ms")], "gpu": []})
    assert {r.target for r in report.rows} == {"cpu"} and report.passed


def test_empty_gate_fails():
    report = evaluate(_results(_record(**GOOD)), {})
    assert report.passed is False
    assert "no budgets to check" in report.rows[0].message


def test_default_budgets_come_from_the_profiles():
    results = _results(_record(**GOOD), budgets=["latency.p90 <= 5ms", "memory.peak_rss <= 256MB"])
    report = evaluate(results)
    assert [(r.check, r.verdict) for r in report.rows] == [
        ("latency.p90 <= 5ms", "PASS"),
        ("memory.peak_rss <= 256MB", "FAIL"),
    ]


@pytest.mark.parametrize("profile", sorted(TARGETS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_profile_budgets_parse(profile):
    assert [Check.parse(spec) for spec in read_yaml(profile).get("budgets", [])]


def test_bad_default_budget_names_the_profile_field():
    with pytest.raises(ConfigError, match=r"field 'targets\.cpu\.budgets\.0': bad check 'latency <= 5ms'"):
        evaluate(_results(_record(**GOOD), budgets=["latency <= 5ms"]))


def test_report_to_dict_is_json():
    report = evaluate(_results(_record(**GOOD)), {"cpu": [Check.parse("latency.p90 <= 5ms")]})
    data = json.loads(json.dumps(report.to_dict()))
    assert data["passed"] is True
    assert data["counts"] == {"PASS": 1, "FAIL": 0, "SKIP": 0, "N/A": 0}
    assert data["selections"][0]["target"] == "cpu" and data["selections"][0]["chosen"]["id"] == "tflite-int8-litert-1"
    assert data["rows"][0] == {
        "target": "cpu",
        "check": "latency.p90 <= 5ms",
        "record": "tflite-int8 · litert · 1 thread",
        "verdict": "PASS",
        "message": "latency.p90 = 0.012 ms <= 5 ms: pass",
        "record_id": "tflite-int8-litert-1",
        "actual": 0.012,
        "task": None,
    }


# --- a suite of several models: each task judged on its own (issue 18, defect a) -------------


def _two_models(kws_p50=0.01):
    """A suite with a trained Keras model (with its float reference) and a deployed .tflite (none),
    both measured for cpu and mobile."""

    def rec(task, target, label, p50, **figures):
        lat = {**GOOD["latency_ms"], "p50": p50, "p90": p50 * 1.2}
        return {
            **_record(target=target, label=f"{label}", **{**GOOD, **figures, "latency_ms": lat}),
            "id": f"{task}-{target}-{label}",
            "task": task,
        }

    adult = [rec("adult", t, "tflite-int8", 0.01) for t in ("cpu", "mobile")]
    kws = [rec("kws", t, "kws.tflite", kws_p50, accuracy_drop=None, agreement=None) for t in ("cpu", "mobile")]
    reference = {**_record(target=None, label="float", runtime="keras", accuracy=0.914), "task": "adult"}
    targets = {t: {"name": t, "budgets": ["latency.p90 <= 5ms", "accuracy.drop <= 1pt"]} for t in ("cpu", "mobile")}
    return {"run_id": "r2", "targets": targets, "measurements": [reference, *adult, *kws]}


def test_every_model_of_a_suite_is_chosen_and_gated_per_target():
    report = evaluate(_two_models())
    assert set(report.selections) == {("adult", "cpu"), ("adult", "mobile"), ("kws", "cpu"), ("kws", "mobile")}
    for (task, target), sel in report.selections.items():
        assert sel.chosen is not None and sel.chosen["task"] == task and sel.chosen["target"] == target
    assert report.passed, report.verdict
    kws = [r for r in report.rows if r.task == "kws"]
    assert {r.target for r in kws} == {"cpu", "mobile"}
    drop = [r for r in kws if r.check == "accuracy.drop <= 1pt"]
    assert [r.verdict for r in drop] == ["N/A", "N/A"] and "no float model" in drop[0].message


def test_a_model_that_fails_its_budgets_fails_the_gate_even_when_another_passes():
    report = evaluate(_two_models(kws_p50=9.0))  # kws: p90 10.8 ms over the 5 ms budget
    assert not report.passed and report.verdict.startswith("INVALID")
    assert report.selections["kws", "cpu"].chosen is None and report.selections["adult", "cpu"].chosen is not None
    failed = {(r.task, r.target) for r in report.rows if r.verdict == "FAIL"}
    assert failed == {("kws", "cpu"), ("kws", "mobile")}


def test_what_to_ship_gives_each_task_and_target_its_file_and_verdict():
    # Issue 19 (9): the end of a run says what to ship per (task, target) and whether its budgets hold.
    results = _two_models(kws_p50=9.0)
    results["targets"]["edge"] = {"name": "edge", "budgets": []}
    results["measurements"].append({**results["measurements"][1], "target": "edge", "id": "adult-edge"})
    verdicts = {(v.task, v.target): v for v in ship_verdicts(results)}
    assert set(verdicts) == {(t, p) for t in ("adult", "kws") for p in ("cpu", "mobile")} | {("adult", "edge")}
    ok = verdicts["adult", "cpu"]
    assert (ok.verdict, ok.chosen["id"], ok.checks, ok.text) == ("PASS", "adult-cpu-tflite-int8", 2, "PASS (2 budgets)")
    bad = verdicts["kws", "mobile"]
    assert bad.verdict == "FAIL" and bad.chosen is None
    assert bad.text.startswith("FAIL: no candidate meets every budget; ") and "latency.p90" in bad.text
    free = verdicts["adult", "edge"]
    assert (free.verdict, free.chosen["id"], free.text) == ("no budgets", "adult-edge", "no budgets")
    row = bad.to_dict()
    assert row["verdict"] == "FAIL" and row["artifact"] is None
    assert row["reasons"][0] == "no candidate meets every budget"
    assert ok.to_dict()["artifact"] == "tflite-int8" and ok.to_dict()["p50_ms"] == 0.01


def test_a_failed_trust_budget_on_the_checked_file_fails_what_to_ship():
    results, fast, _ = _checked_run()
    results["targets"]["cpu"]["budgets"] = ["latency.p90 <= 1s", "fairness.flips <= 2"]
    (v,) = ship_verdicts(results)
    assert v.verdict == "FAIL" and v.chosen is fast and v.reasons[0].startswith("fairness.flips <= 2: ")


def test_strict_fails_a_budget_that_cannot_apply():
    report = evaluate(_two_models(), strict=True)
    assert not report.passed
    assert report.selections["kws", "cpu"].chosen is None  # no candidate fits once N/A counts
    rows = [r for r in report.rows if r.verdict == "FAIL"]
    assert rows and all(r.task == "kws" for r in rows)
    assert all(r.check == "accuracy.drop <= 1pt" and "--strict" in r.message for r in rows)


def test_junit_and_markdown_list_every_task():
    from edge_opt.gate import to_junit, to_markdown

    report = evaluate(_two_models(kws_p50=9.0))
    xml = to_junit(report, "r2")
    for name in ("adult · cpu", "adult · mobile", "kws · cpu", "kws · mobile"):
        assert f'name="{name}"' in xml
    assert 'classname="edge-opt.gate.kws.cpu"' in xml
    md = to_markdown(report, "r2")
    assert "| kws | cpu |" in md and "| adult | mobile |" in md and "**kws · cpu**: none" in md


# --- budget files -----------------------------------------------------------------------


def test_load_budgets(tmp_path):
    path = tmp_path / "budgets.yaml"
    path.write_text("cpu:\n  - latency.p90 <= 5ms   # tight\n  - accuracy.drop <= 1%\nmobile: []\n")
    budgets = load_budgets(path)
    assert [c.spec for c in budgets["cpu"]] == ["latency.p90 <= 5ms", "accuracy.drop <= 1%"]
    assert budgets["mobile"] == []


def test_load_budgets_wrapped(tmp_path):
    path = tmp_path / "budgets.yaml"
    path.write_text("budgets:\n  edgetpu: ['size.raw <= 8MB']\n")
    assert load_budgets(path)["edgetpu"][0].value == 8_000_000


@pytest.mark.parametrize(
    "text, says",
    [
        ("cpu: [latency.p90 <= 5ms\n", "malformed YAML"),
        ("- latency.p90 <= 5ms\n", "expected a mapping at the top level"),
        ("cpu: latency.p90 <= 5ms\n", "field 'cpu': expected a list of checks"),
        ("cpu:\n", "field 'cpu': expected a list of checks"),
        ("cpu: ['latency.p90 <= 5ms', 'latency.p90 ~ 5ms']\n", "field 'cpu.1': bad check 'latency.p90 ~ 5ms'"),
        ("cpu: [{latency.p90: 5ms}]\n", "field 'cpu.0': bad check"),
        ("budgets:\n  cpu: ['speed <= 5ms']\n", "field 'budgets.cpu.0': bad check 'speed <= 5ms': unknown metric"),
        ("budgets: ['latency.p90 <= 5ms']\n", "field 'budgets'"),
        ("budgets: {}\ncpu: []\n", "field 'budgets'"),
        ("1: ['latency.p90 <= 5ms']\n", "target names must be strings"),
    ],
)
def test_load_budgets_errors_name_the_file(tmp_path, text, says):
    path = tmp_path / "budgets.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_budgets(path)
    assert str(exc.value).startswith(str(path))
    assert says in str(exc.value)


def test_load_budgets_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_budgets(tmp_path / "nope.yaml")


# --- the command ------------------------------------------------------------------------


def test_gate_command_config_errors_and_the_skipped_only_verdict(tmp_path):
    from tests import runs
    from tests.conftest import assert_clean_error, cli

    reference = runs.record("float", target=None, runtime={"name": "keras", "threads": None, "device": "cpu"})
    runs.write(tmp_path, runs.results(reference, runs.record("gpu", target="gpu", status="skipped", error="no GPU")))
    budgets = tmp_path / "b.yaml"
    budgets.write_text("gpu:\n  - latency.p90 <= 2ms\n")
    proc = cli("gate", str(tmp_path), "--budgets", str(budgets))
    assert proc.returncode == 1 and "pass --allow-skipped" in proc.stdout, proc.stdout + proc.stderr
    assert cli("gate", str(tmp_path), "--budgets", str(budgets), "--allow-skipped").returncode == 0

    budgets.write_text("gpu:\n  - latency.p90 <= 2ms\ncpux:\n  - size.raw <= 1MB\n")
    assert_clean_error(cli("gate", str(tmp_path), "--budgets", str(budgets)), "target 'cpux'")
    budgets.write_text("gpu:\n  - accuracy.drop <= 1\n")
    assert_clean_error(cli("gate", str(tmp_path), "--budgets", str(budgets)), "1pt (percentage points), 1%")


def test_an_ops_budget_judges_the_profiled_record_and_reads_n_a_on_the_others():
    """ops.fallback counts the ops off the intended path; a record without a profile is N/A."""
    profiled = _record(label="int8", **GOOD, ops_count=3, ops_fallback=1)
    plain = _record(label="fp32", **GOOD)
    check = Check.parse("ops.fallback <= 0")
    assert check.evaluate(profiled).passed is False and "ops.fallback = 1 > 0: FAIL" in check.evaluate(profiled).message
    na = check.evaluate(plain)
    assert na.passed is None and not na.applies and "no per-op profile" in na.message
    assert Check.parse("ops.count <= 3").evaluate(profiled).passed
    report = evaluate(_results(profiled, plain, budgets=["ops.fallback <= 0"]))
    assert report.selections[(None, "cpu")].chosen is None and not report.passed  # no unprofiled stand-in
    before = evaluate(_results(plain, budgets=["ops.fallback <= 0"]))  # the run's choice, before profiling
    assert before.selections[(None, "cpu")].chosen["artifact"]["label"] == "fp32"
    clean = _record(label="int8", **GOOD, ops_count=3, ops_fallback=0)
    assert evaluate(_results(clean, plain, budgets=["ops.fallback <= 0"])).passed


def test_ops_unsupported_reads_the_edgetpu_map_of_the_chosen_file():
    """ops.unsupported: the ops the EdgeTPU compiler would leave on the CPU, a trust figure of the chosen file."""
    check = Check.parse("ops.unsupported <= 0")
    assert check.trust
    mapped = _record(label="int8", **GOOD, checks={"edgetpu": {"unsupported": 2, "fraction_ops": 0.6}})
    assert check.evaluate(mapped).passed is False and "ops.unsupported = 2 > 0" in check.evaluate(mapped).message
    assert Check.parse("ops.unsupported <= 2").evaluate(mapped).passed
