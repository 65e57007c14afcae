"""Compare two runs (or devices): the same measurements matched by what they measured.

Like pytest-benchmark's compare and compare-fail: the median change per measurement, with
a Mann-Whitney U test on the raw samples so a change inside the noise is not called one,
and a regression threshold whose breach fails (exit 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_opt.core.errors import BadInputError
from edge_opt.store import load_run, load_samples


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
    if value <= 0:
        raise BadInputError(f"--fail-on {spec!r}: must be positive")
    return value


def compare_runs(run_a: Path, run_b: Path, threshold: float = 0.05, alpha: float = 0.01) -> dict[str, Any]:
    from scipy.stats import mannwhitneyu

    a, b = load_run(run_a), load_run(run_b)
    old = {_key(r): r for r in a["measurements"] if r["status"] == "ok" and r.get("latency_ms")}
    rows = []
    for rec in b["measurements"]:
        if rec["status"] != "ok" or not rec.get("latency_ms") or _key(rec) not in old:
            continue
        before = old[_key(rec)]
        p50_a, p50_b = before["latency_ms"]["p50"], rec["latency_ms"]["p50"]
        change = (p50_b - p50_a) / p50_a
        sa, sb = load_samples(run_a, before), load_samples(run_b, rec)
        p_value = float(mannwhitneyu(sa, sb).pvalue) if sa is not None and sb is not None else None
        if p_value is None:
            verdict = "no samples"  # cannot tell a change from noise without the raw samples
        elif p_value < alpha and abs(change) >= threshold:
            verdict = "slower" if change > 0 else "faster"
        else:
            verdict = "same"
        acc_a, acc_b = before.get("accuracy"), rec.get("accuracy")
        rows.append(
            {
                "key": list(_key(rec)),
                "label": " · ".join(str(k) for k in _key(rec)[1:] if k is not None),
                "p50_a": p50_a,
                "p50_b": p50_b,
                "change": change,
                "p_value": p_value,
                "verdict": verdict,
                "accuracy_delta": None if acc_a is None or acc_b is None else acc_b - acc_a,
                "size_delta": (rec.get("size_bytes") or {}).get("raw", 0)
                - (before.get("size_bytes") or {}).get("raw", 0),
            }
        )
    if not rows:
        raise BadInputError(f"{run_a} and {run_b} have no measurement in common to compare")
    machine = lambda r: (r.get("provenance") or {}).get("machine", {}).get("cpu")  # noqa: E731
    return {
        "a": a["run_id"],
        "b": b["run_id"],
        "machine_a": machine(a),
        "machine_b": machine(b),
        "threshold": threshold,
        "alpha": alpha,
        "rows": rows,
        "regressions": [r["label"] for r in rows if r["verdict"] == "slower"],
    }
