"""Compare two runs (or devices): the same measurements matched by what they measured.

Like pytest-benchmark's compare and compare-fail: the median change per measurement, with
a Mann-Whitney U test on the raw samples so a change inside the noise is not called one,
and a regression threshold whose breach fails (exit 1). A change counts only when it is
significant and beyond a noise floor, relative (the threshold) and absolute (``min_delta_ms``:
medians of a microsecond-scale model move by a tenth of a microsecond between two processes).
Runs of two suites are refused (their labels may name different models), and a pair whose
files differ is marked: there the model changed, not only the machine.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edge_opt.core.errors import BadInputError
from edge_opt.core.units import TIME_UNITS_MS, fmt_ms
from edge_opt.store import load_run, load_samples

#: The default absolute noise floor: a median change smaller than this is never a change.
MIN_DELTA_MS = 0.00025  # 0.25 µs


def _key(rec: dict) -> tuple:
    rt, art = rec["runtime"], rec["artifact"]
    return (
        rec.get("task"),
        rec.get("target"),
        art.get("label"),
        rt.get("name"),
        rt.get("device"),
        rt.get("threads"),
        rt.get("precision_requested"),
    )


def parse_threshold(spec: str) -> float:
    """``10%`` or ``0.1`` → 0.10 (relative slowdown of the median that counts as a regression)."""
    text = spec.strip()
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise BadInputError(f"--fail-on {spec!r}: expected a relative slowdown like 10% or 0.1") from None
    if not 0 < value < 1e6:  # also refuses NaN
        raise BadInputError(f"--fail-on {spec!r}: must be a positive finite share, like 10% or 0.1")
    return value


_DELTA = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(us|µs|ms|s)?\s*$")


def parse_min_delta(spec: str) -> float:
    """``0.25us``, ``1ms``, ``0`` → milliseconds (a bare number is ms, as in the records)."""
    m = _DELTA.match(spec)
    if not m:
        raise BadInputError(f"--min-delta {spec!r}: expected a duration like 0.25us, 1ms or 0")
    return float(m[1]) * TIME_UNITS_MS[m[2] or "ms"]


def fmt_floor(ms: float) -> str:
    """A noise floor as written: ``0.25 µs``, ``1 ms``."""
    return f"{ms * 1000:g} µs" if ms < 1 else f"{ms:g} ms"


def fmt_p(p: float | None) -> str:
    """A p-value that reads: ``<0.0001`` rather than 0 or 1e-300, two digits otherwise."""
    if p is None:
        return "–"
    return "<0.0001" if p < 1e-4 else f"{p:.2g}"


def _verdict(change: float, delta_ms: float, p_value: float | None, floor: tuple[float, float, float]) -> tuple:
    """(verdict, why): slower or faster only when significant and beyond both noise floors."""
    threshold, min_delta_ms, alpha = floor
    if p_value is None:
        return "no samples", "no raw samples to tell a change from noise"
    if p_value >= alpha:
        return "same", f"not significant (p {fmt_p(p_value)} >= {alpha:g})"
    if abs(change) < threshold:
        return "same", f"under {threshold:.0%}"
    if abs(delta_ms) < min_delta_ms:
        return "same", f"under {fmt_floor(min_delta_ms)}"
    return ("slower" if change > 0 else "faster"), f"p {fmt_p(p_value)}, {change:+.1%}, {fmt_ms(abs(delta_ms))}"


def latency_basis(rec: dict) -> str:
    """What a record's ``latency_ms`` measured: ``wall``, or (records written before every runtime was
    timed alike) ``runtime``, the runtime's own timer."""
    return rec.get("latency_basis") or ("runtime" if (rec.get("runtime") or {}).get("timer") == "runtime" else "wall")


def _row(before: dict, rec: dict, samples: tuple, floor: tuple[float, float, float]) -> dict[str, Any]:
    from scipy.stats import mannwhitneyu

    sa, sb = samples
    p50_a, p50_b = before["latency_ms"]["p50"], rec["latency_ms"]["p50"]
    change = (p50_b - p50_a) / p50_a
    p_value = float(mannwhitneyu(sa, sb).pvalue) if sa is not None and sb is not None else None
    verdict, why = _verdict(change, p50_b - p50_a, p_value, floor)
    basis_a, basis_b = latency_basis(before), latency_basis(rec)
    if basis_a != basis_b:  # one timed by the runtime's own clock, the other by the wall clock
        verdict, why = "other basis", f"not comparable: A timed by the {basis_a} clock, B by the {basis_b} clock"
    acc_a, acc_b = before.get("accuracy"), rec.get("accuracy")
    sha_a, sha_b = before["artifact"].get("sha256"), rec["artifact"].get("sha256")
    return {
        "key": list(_key(rec)),
        "label": " · ".join(str(k) for k in _key(rec)[1:] if k is not None),
        "p50_a": p50_a,
        "p50_b": p50_b,
        "change": change,
        "p_value": p_value,
        "verdict": verdict,
        "why": why,
        "same_file": sha_a == sha_b if sha_a and sha_b else None,  # None: a record without its file's hash
        "accuracy_delta": None if acc_a is None or acc_b is None else acc_b - acc_a,
        "size_delta": (rec.get("size_bytes") or {}).get("raw", 0) - (before.get("size_bytes") or {}).get("raw", 0),
    }


def _suite_name(run: dict) -> str | None:
    suite = run.get("suite")
    return suite.get("name") if isinstance(suite, dict) else suite


def compare_runs(
    run_a: Path,
    run_b: Path,
    threshold: float = 0.05,
    alpha: float = 0.01,
    *,
    min_delta_ms: float = MIN_DELTA_MS,
    other_suite: bool = False,
) -> dict[str, Any]:
    """Every measurement of ``run_b`` that ``run_a`` has too, with its change and verdict."""
    a, b = load_run(run_a), load_run(run_b)
    if _suite_name(a) != _suite_name(b) and not other_suite:
        raise BadInputError(
            f"{run_a} is a run of suite {_suite_name(a)!r} and {run_b} of {_suite_name(b)!r}: their measurements "
            "would match by label only; compare runs of one suite, or pass --other-suite to compare them anyway"
        )
    old = {_key(r): r for r in a["measurements"] if r["status"] == "ok" and r.get("latency_ms")}
    floor = (threshold, min_delta_ms, alpha)
    rows = [
        _row(old[_key(rec)], rec, (load_samples(run_a, old[_key(rec)]), load_samples(run_b, rec)), floor)
        for rec in b["measurements"]
        if rec["status"] == "ok" and rec.get("latency_ms") and _key(rec) in old
    ]
    if not rows:
        raise BadInputError(f"{run_a} and {run_b} have no measurement in common to compare")
    machine = lambda r: (r.get("provenance") or {}).get("machine", {}).get("cpu")  # noqa: E731
    return {
        "a": a["run_id"],
        "b": b["run_id"],
        "suite_a": _suite_name(a),
        "suite_b": _suite_name(b),
        "machine_a": machine(a),
        "machine_b": machine(b),
        "threshold": threshold,
        "min_delta_ms": min_delta_ms,
        "alpha": alpha,
        "rows": rows,
        "regressions": [r["label"] for r in rows if r["verdict"] == "slower"],
        "other_files": [r["label"] for r in rows if r["same_file"] is False],
    }
