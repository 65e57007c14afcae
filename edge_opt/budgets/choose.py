"""Choosing a target's artifact: the fastest candidate that meets every budget, unless noise decides."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from edge_opt.budgets.grammar import PROFILE_METRICS, Check, profile_budgets
from edge_opt.core.units import fmt_ms
from edge_opt.measure.records import runtime_label


@dataclass
class Selection:
    """The candidate of a task's target chosen among those that meet every budget, and why the others lost.

    ``tied`` lists the candidates whose latency could not be told from the fastest one (their
    median confidence intervals overlap): among them fewer threads won, then the smaller file,
    then the more accurate one. ``decided_by`` says which of threads, size, accuracy or latency
    made the choice.
    """

    target: str
    chosen: dict[str, Any] | None
    rejected: list[tuple[dict[str, Any], str]]
    tied: list[dict[str, Any]] = field(default_factory=list)
    decided_by: str | None = None  # threads | size | accuracy | latency
    task: str | None = None

    def to_dict(self) -> dict[str, Any]:
        chosen = self.chosen
        return {
            "task": self.task,
            "target": self.target,
            "chosen": None
            if chosen is None
            else {
                "id": chosen.get("id"),
                "label": record_label(chosen),
                "p50_ms": (chosen.get("latency_ms") or {}).get("p50"),
                "median_ci_ms": (chosen.get("latency_ms") or {}).get("median_ci"),
            },
            "decided_by": self.decided_by,
            "tied": [{"id": r.get("id"), "label": record_label(r)} for r in self.tied],
            "rejected": [{"id": r.get("id"), "label": record_label(r), "reason": why} for r, why in self.rejected],
        }

    def tie_note(self) -> str:
        """`` (a tie on latency with N others: the smaller file won)``, or "" when latency decided."""
        if not self.tied:
            return ""
        n = len(self.tied)
        why = {"threads": "fewer threads won", "size": "the smaller file won", "accuracy": "the more accurate won"}.get(
            self.decided_by, "the lowest median won"
        )
        return f" (a tie on latency with {n} other{'s' if n > 1 else ''}: {why})"


def _ci(rec: dict[str, Any]) -> tuple[float, float]:
    lat = rec["latency_ms"]
    lo, hi = lat.get("median_ci") or (lat["p50"], lat["p50"])
    return float(lo), float(hi)


#: A latency difference smaller than this share of the faster median is a tie even when the
#: confidence intervals do not overlap: with thousands of samples a within-run interval
#: shrinks to nanoseconds, while a fresh process (another memory layout, another core)
#: moves a median by more than that.
MIN_SPEEDUP = 0.02


def _fits(
    records: list[dict[str, Any]], checks: list[Check], reference: bool, strict: bool
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
    """The measured records that pass every check, and the others with why. A check that cannot
    apply (no float model to compare with) does not reject, unless ``strict``. A per-op budget
    (``ops.*``) reads N/A on records without a profile; once a record of the target has one (its
    chosen file, profiled after the choice), it judges only profiled records, so the gate cannot
    pass a file nobody profiled in place of one that failed."""
    fits, rejected = [], []
    profiled = any(rec.get("ops_count") is not None for rec in records)
    for rec in records:
        if rec.get("status") != "ok" or not rec.get("latency_ms"):
            rejected.append((rec, f"not measured: {rec.get('status')}: {rec.get('error') or 'no latency'}"))
            continue
        results = [(c.metric in PROFILE_METRICS, c.evaluate(rec, reference)) for c in checks]
        failed = [
            r.message
            for per_op, r in results
            if r.passed is False or (not r.applies and (strict or (per_op and profiled)))
        ]
        if failed:
            rejected.append((rec, "; ".join(failed)))
        else:
            fits.append(rec)
    return fits, rejected


def _size(r: dict[str, Any]) -> float:
    return (r.get("size_bytes") or {}).get("raw") or math.inf


def _accuracy(r: dict[str, Any]) -> float:
    return r.get("accuracy") if r.get("accuracy") is not None else -math.inf


def _threads(r: dict[str, Any]) -> int:
    return (r.get("runtime") or {}).get("threads") or 1


#: What breaks a tie on latency, in order (lower wins); then the lower median, then the record id.
_TIE_KEYS = (("threads", _threads), ("size", _size), ("accuracy", lambda r: -_accuracy(r)))


def _tie_key(r: dict[str, Any]) -> tuple:
    return (*(key(r) for _, key in _TIE_KEYS), r["latency_ms"]["p50"], str(r.get("id")))


def _decider(rec: dict[str, Any], chosen: dict[str, Any]) -> str:
    """The first tie key on which ``rec`` lost to ``chosen`` ("latency": equal on every key)."""
    return next((name for name, key in _TIE_KEYS if key(rec) != key(chosen)), "latency")


def _tie_reason(rec: dict[str, Any], chosen: dict[str, Any], min_speedup: float) -> str:
    (r_lo, r_hi), (c_lo, c_hi) = _ci(rec), _ci(chosen)
    why = (
        f"ties on latency: p50 {fmt_ms(rec['latency_ms']['p50'])} (CI {fmt_ms(r_lo)}–{fmt_ms(r_hi)}) vs the chosen "
        f"{fmt_ms(chosen['latency_ms']['p50'])} (CI {fmt_ms(c_lo)}–{fmt_ms(c_hi)}), within noise of the fastest "
        f"(intervals overlap, or medians under {min_speedup:.0%} apart)"
    )
    lost_on = _decider(rec, chosen)
    if lost_on == "threads":
        return why + f"; more threads ({_threads(rec)} vs {_threads(chosen)})"
    if lost_on == "size":
        return why + f"; larger file ({_size(rec):.0f} vs {_size(chosen):.0f} bytes)"
    if lost_on == "accuracy":
        return why + f"; same size, less accurate ({_accuracy(rec):.4f} vs {_accuracy(chosen):.4f})"
    return why + "; same threads, size and accuracy, higher median"


def choose(
    target: str,
    records: list[dict[str, Any]],
    checks: list[Check],
    min_speedup: float = MIN_SPEEDUP,
    *,
    task: str | None = None,
    reference: bool = True,
    strict: bool = False,
) -> Selection:
    """Among one task's measured candidates for a target that pass every check, the fastest, unless noise decides.

    A candidate beats another on latency only when their median confidence intervals (the
    95% order-statistic intervals of each record's samples) do not overlap and its median is
    at least ``min_speedup`` (2%) lower. The candidates that cannot be told apart from the
    fastest form a tie, which fewer threads win, then the smaller file (raw bytes), then the
    more accurate, then the lower median (then the record id: the same records, the same
    choice). ``reference=False``: the task has no float model, so a check against one cannot
    apply and rejects no one (unless ``strict``).

    Trust-check budgets are left out here when the checks ran on the chosen artifact only: the
    gate then holds it to them. When every measured candidate was checked (``checks:
    candidates: all``), they take part in the choice like any other budget.
    """
    measured = [r for r in records if r.get("status") == "ok" and r.get("latency_ms")]
    every_checked = bool(measured) and all(r.get("checks") for r in measured)
    fits, rejected = _fits(records, [c for c in checks if every_checked or not c.trust], reference, strict)
    if not fits:
        return Selection(target, None, rejected, task=task)
    fits.sort(key=lambda r: (r["latency_ms"]["p50"], str(r.get("id"))))
    fastest = fits[0]
    lo, hi = _ci(fastest)
    best = fastest["latency_ms"]["p50"]
    # tied: its interval overlaps the fastest's, or the gap is negligible
    tied = [r for r in fits if _ci(r)[0] <= hi or r["latency_ms"]["p50"] < best * (1 + min_speedup)]
    slower = [r for r in fits if r not in tied]
    tied.sort(key=_tie_key)
    chosen, others = tied[0], tied[1:]
    # the deepest key the choice needed: "latency" when alone, or tied on every key with another
    order = [name for name, _ in _TIE_KEYS] + ["latency"]
    decided_by = max((_decider(r, chosen) for r in others), key=order.index, default="latency")
    rejected += [(rec, _tie_reason(rec, chosen, min_speedup)) for rec in others]
    for rec in slower:
        r_lo, r_hi = _ci(rec)
        rejected.append(
            (
                rec,
                f"meets the budgets but slower: p50 {fmt_ms(rec['latency_ms']['p50'])} vs {fmt_ms(best)}"
                f" (median CIs {fmt_ms(r_lo)}–{fmt_ms(r_hi)} and {fmt_ms(lo)}–{fmt_ms(hi)} do not overlap)",
            )
        )
    return Selection(target, chosen, rejected, tied=others, decided_by=decided_by, task=task)


def has_reference(records: list[dict[str, Any]], task: str | None) -> bool:
    """Whether a run's task has a float model (its reference record, the one with no target)."""
    return any(r.get("task") == task and r.get("target") is None for r in records)


def task_targets(results: dict[str, Any]) -> list[tuple[str | None, str]]:
    """Every (task, target) of a run that has records, tasks in the order they ran."""
    records = results.get("measurements") or []
    tasks = dict.fromkeys(r.get("task") for r in records)
    present = {(r.get("task"), r.get("target")) for r in records}
    return [(task, target) for task in tasks for target in results.get("targets") or {} if (task, target) in present]


def choose_each(
    results: dict[str, Any], budgets: dict[str, list[Check]] | None = None, strict: bool = False
) -> dict[tuple[str | None, str], Selection]:
    """The choice per (task, target) of a run, with the profiles' budgets unless ``budgets`` are given."""
    records = results.get("measurements") or []
    budgets = profile_budgets(results) if budgets is None else budgets
    out = {}
    for task, target in task_targets(results):
        mine = [r for r in records if r.get("task") == task and r.get("target") == target]
        reference = has_reference(records, task)
        out[task, target] = choose(target, mine, budgets.get(target, []), task=task, reference=reference, strict=strict)
    return out


def record_label(record: dict[str, Any]) -> str:
    """``tflite-int8 · litert · 1 thread``; a pipeline that made no file: ``prune → qat (pipeline)``."""
    art, rt = record.get("artifact") or {}, record.get("runtime") or {}
    label = art.get("label") or art.get("pass") or record.get("id") or "?"
    if rt.get("name") in (None, "-"):  # no runtime ran: the pipeline failed or could not apply
        return f"{label} (pipeline)"
    threads = rt.get("threads")
    parts = [label, runtime_label(rt)]
    if threads is not None:
        parts.append(f"{threads} thread" + ("" if threads == 1 else "s"))
    return " · ".join(parts)


def checked_record(results: dict[str, Any], target: str, task: str | None) -> dict[str, Any] | None:
    """The record of ``target`` whose file the run's trust checks ran on (``checks.*.artifacts.*.picked``)."""
    by_id = {r.get("id"): r for r in results.get("measurements") or []}
    for check_task, checks in (results.get("checks") or {}).items():
        if task is not None and check_task != task:
            continue
        for entry in (checks or {}).get("artifacts", {}).values():
            rec_id = (entry.get("picked") or {}).get(target)
            if rec_id in by_id:
                return by_id[rec_id]
    return None
