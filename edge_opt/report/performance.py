"""The performance sections of report.html: trade-off, latency, size, memory and roofline per task and
target, and the latency trend per task.

The trade-off section carries the record ids of its Pareto frontier (``data-frontier``) and of the
chosen candidate (``data-chosen``), so that a test can hold the picture to results.json.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edge_opt.analysis.roofline import roofline_rows
from edge_opt.budgets.choose import record_label
from edge_opt.budgets.grammar import profile_budgets
from edge_opt.core.errors import EdgeOptError
from edge_opt.core.units import fmt_bytes, fmt_mib, fmt_ms, fmt_points
from edge_opt.report.charts import FLOAT_COLOR, PALETTE, esc, ms_axis, section, table, value_axis
from edge_opt.report.markdown import repaired, status_text
from edge_opt.report.page import Page
from edge_opt.store import load_samples, record_key


def pareto_frontier(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The measured records no other beats on both median latency and accuracy, fastest first.

    A record is dominated when another has a median no higher and an accuracy no lower, one
    of them strictly. Records without a median or an accuracy are left out.
    """
    pts = [
        r
        for r in records
        if r.get("status") == "ok"
        and (r.get("latency_ms") or {}).get("p50") is not None
        and r.get("accuracy") is not None
    ]

    def dominated(r: dict[str, Any]) -> bool:
        lat, acc = r["latency_ms"]["p50"], r["accuracy"]
        return any(
            o["latency_ms"]["p50"] <= lat
            and o["accuracy"] >= acc
            and (o["latency_ms"]["p50"] < lat or o["accuracy"] > acc)
            for o in pts
        )

    return sorted((r for r in pts if not dominated(r)), key=lambda r: (r["latency_ms"]["p50"], -r["accuracy"], r["id"]))


def _float_record(results: dict[str, Any], task: str) -> dict[str, Any] | None:
    """The float model's measurement of a task (no target), if it was measured."""
    return next(
        (
            r
            for r in results["measurements"]
            if r.get("task") == task and r.get("target") is None and r["status"] == "ok"
        ),
        None,
    )


def _budgets(results: dict[str, Any], target: str) -> list:
    """A target's budget checks (none when the profiles cannot be read)."""
    try:
        return profile_budgets(results).get(target, [])
    except EdgeOptError:
        return []


# ------------------------------------------------------------------------------ trade-off


def tradeoff(page: Page, task: str, target: str) -> str:
    """Latency against accuracy: every measured candidate, the Pareto frontier, the chosen one, the budgets."""
    recs = page.records(task, target)
    front = pareto_frontier(recs)
    sel = page.selections().get((task, target))
    chosen = sel.chosen if sel is not None and sel.chosen in recs else None
    measured = [r for r in recs if r in front or r.get("status") == "ok" and r.get("accuracy") is not None]
    attrs = f' data-frontier="{" ".join(r["id"] for r in front)}" data-chosen="{chosen["id"] if chosen else ""}"'
    if measured:
        parts = [_tradeoff_figure(page, task, target, measured, front, chosen)]
    else:
        parts = ["<p>No candidate of this target was measured here; the table says why.</p>"]
    parts.append(_tradeoff_table(recs, front, chosen))
    if sel is not None and sel.chosen is not None:
        parts.append(f"<p>Chosen: <b>{esc(record_label(sel.chosen))}</b>{esc(sel.tie_note())}.</p>")
    return section(
        "tradeoff", page.sid("tradeoff", task, target), f"{target}: latency vs accuracy", "".join(parts), attrs
    )


def _tradeoff_figure(
    page: Page,
    task: str,
    target: str,
    measured: list[dict[str, Any]],
    front: list[dict[str, Any]],
    chosen: dict[str, Any] | None,
) -> str:
    fig, ax = page.charts.figure(7.0, 3.6)
    ax.scatter(
        [r["latency_ms"]["p50"] for r in measured],
        [r["accuracy"] for r in measured],
        s=22,
        color="#9aa5b1",
        label="candidate",
        zorder=2,
    )
    ax.plot(
        [r["latency_ms"]["p50"] for r in front],
        [r["accuracy"] for r in front],
        "-o",
        color=PALETTE[0],
        ms=5,
        label="Pareto frontier",
        zorder=3,
    )
    for r in front:
        ax.annotate(
            record_label(r),
            (r["latency_ms"]["p50"], r["accuracy"]),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    if chosen is not None:
        ax.scatter(
            [chosen["latency_ms"]["p50"]],
            [chosen["accuracy"]],
            s=160,
            facecolors="none",
            edgecolors=PALETTE[3],
            linewidths=2,
            label="chosen",
            zorder=4,
        )
    _tradeoff_budgets(ax, page.results, task, target)
    ms_axis(ax)
    ax.set_xlabel("median latency (log scale)")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"{task} · {target}: latency vs accuracy")
    return page.charts.svg(fig, f"{target}: latency against accuracy with the Pareto frontier")


def _tradeoff_budgets(ax, results: dict[str, Any], task: str, target: str) -> None:
    """The target's latency and accuracy budgets as lines, and the float model's accuracy."""
    ref = _float_record(results, task)
    for check in _budgets(results, target):
        if check.metric.startswith("latency."):
            ax.axvline(check.value, color=PALETTE[3], ls="--", lw=1, label=f"budget {check.spec}")
        elif check.metric == "accuracy.drop" and ref is not None:
            ax.axhline(ref["accuracy"] - check.value, color=PALETTE[1], ls="--", lw=1, label=f"budget {check.spec}")
        elif check.metric == "accuracy":
            ax.axhline(check.value, color=PALETTE[1], ls="--", lw=1, label=f"budget {check.spec}")
    if ref is not None:
        ax.axhline(ref["accuracy"], color=FLOAT_COLOR, ls=":", lw=1, label="float model accuracy")


def _tradeoff_table(recs: list[dict[str, Any]], front: list[dict[str, Any]], chosen: dict[str, Any] | None) -> str:
    on_front = {r["id"] for r in front}
    rows = []
    for r in recs:
        lat = r.get("latency_ms") or {}
        mark = ("chosen" if chosen is r else "") + (" · frontier" if r["id"] in on_front else "")
        rows.append(
            [
                esc(record_label(r)),
                fmt_ms(lat.get("p50")),
                fmt_ms(lat.get("p90")),
                "–" if r.get("accuracy") is None else f"{r['accuracy']:.4f}",
                fmt_points(r.get("accuracy_drop")),
                esc(mark.strip(" ·")),
                esc(status_text(r)),
            ]
        )
    return table(["candidate", "p50", "p90", "accuracy", "Δ acc", "", "status"], rows, {1, 2, 3, 4})


# ---------------------------------------------------------------- latency, size, memory, roofline


def latency(page: Page, task: str, target: str) -> str:
    """The distribution of the raw latency samples of every measured candidate."""
    data = []
    for r in page.records(task, target):
        if r.get("status") == "ok":
            samples = load_samples(page.view.run_dir, r)
            if samples is not None and len(samples):
                data.append((record_label(r), samples))
    sid = page.sid("latency", task, target)
    if not data:
        return section("latency", sid, f"{target}: latency distributions", "<p>No raw samples for this target.</p>")
    fig, ax = page.charts.figure(7.0, 0.9 + 0.3 * len(data))
    ax.boxplot([d[1] for d in data], orientation="horizontal", whis=(1, 99), showfliers=False, widths=0.6)
    ax.set_yticks(range(1, len(data) + 1), [d[0] for d in data], fontsize=7)
    ax.invert_yaxis()
    ms_axis(ax)
    ax.set_xlabel("latency per call (log); whiskers: 1st-99th percentile")
    ax.grid(alpha=0.3, axis="x")
    n = ", ".join(f"{len(d[1])}" for d in data)
    body = page.charts.svg(fig, f"{target}: latency distribution per candidate") + f"<p>Samples per candidate: {n}.</p>"
    return section("latency", sid, f"{target}: latency distributions", body)


def size(page: Page, task: str, target: str) -> str:
    """Every artifact's size, raw and gzip, against the size budgets."""
    arts: dict[str, dict[str, Any]] = {}
    for r in page.records(task, target):
        if r.get("size_bytes"):
            arts.setdefault(r["artifact"]["id"], r)
    sid = page.sid("size", task, target)
    if not arts:
        return section("size", sid, f"{target}: size", "<p>No artifact sizes for this target.</p>")
    labels = [r["artifact"].get("label") or r["artifact"]["id"] for r in arts.values()]
    raw = [r["size_bytes"]["raw"] for r in arts.values()]
    gz = [r["size_bytes"]["gzip"] for r in arts.values()]
    y = np.arange(len(labels))
    fig, ax = page.charts.figure(7.0, 0.9 + 0.35 * len(labels))
    ax.barh(y - 0.2, raw, 0.4, label="raw", color=PALETTE[0])
    ax.barh(y + 0.2, gz, 0.4, label="gzip", color=PALETTE[1])
    for yi, a, b in zip(y, raw, gz, strict=True):
        ax.annotate(fmt_bytes(a), (a, yi - 0.2), fontsize=7, xytext=(3, -3), textcoords="offset points")
        ax.annotate(fmt_bytes(b), (b, yi + 0.2), fontsize=7, xytext=(3, -3), textcoords="offset points")
    limits = [c for c in _budgets(page.results, target) if c.metric.startswith("size.")]
    for check in limits:
        ax.axvline(check.value, color=PALETTE[3], ls="--", lw=1, label=f"budget {check.spec}")
    value_axis(ax, fmt_bytes)
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, max(raw + [c.value for c in limits]) * 1.25)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="x")
    return section("size", sid, f"{target}: size raw and gzip", page.charts.svg(fig, f"{target}: artifact sizes"))


#: Ops shown per profiled record in the HTML table (results.json holds them all).
TOP_OPS = 10


def ops(page: Page, task: str, target: str) -> str:
    """The chosen artifact's per-op profile: the time per op type (a chart) and the top ops,
    with what ran each op and its precision; the ops off the intended path are marked."""
    profiled = [r for r in page.records(task, target) if r.get("ops")]
    sid = page.sid("ops", task, target)
    title = f"{target}: where the time goes"
    if not profiled:
        return section("ops", sid, title, "<p>No per-op profile for this target (checks.ops, bench --ops).</p>")
    return section("ops", sid, title, "".join(_ops_block(page, target, rec) for rec in profiled))


def _ops_block(page: Page, target: str, rec: dict[str, Any]) -> str:
    by_type: dict[str, float] = {}
    for op in rec["ops"]:
        by_type[op["type"]] = by_type.get(op["type"], 0.0) + op["ms"]
    ranked = sorted(by_type.items(), key=lambda kv: -kv[1])
    fig, ax = page.charts.figure(7.0, 0.9 + 0.3 * len(ranked))
    ax.barh(range(len(ranked)), [ms for _, ms in ranked], color=PALETTE[0])
    ax.set_yticks(range(len(ranked)), [t for t, _ in ranked], fontsize=7)
    ax.invert_yaxis()
    value_axis(ax, fmt_ms)
    ax.set_xlabel(f"time per invoke, by op type ({rec['ops_method']})")
    ax.grid(alpha=0.3, axis="x")
    total, whole = rec.get("ops_total_ms"), rec.get("ops_whole_ms")
    summary = f"{esc(record_label(rec))}: {rec.get('ops_count')} ops, {rec.get('ops_fallback')} off the intended path"
    if total and whole:
        summary += f"; their sum {fmt_ms(total)} against the whole model's {fmt_ms(whole)} while profiled"
    head = ["op", "type", "time", "share", "ran on", "precision"]
    return (
        f"<p>{summary}. {esc(rec.get('ops_note') or '')}</p>"
        + page.charts.svg(fig, f"{target}: time per op type")
        + table(head, [_op_row(op) for op in rec["ops"][:TOP_OPS]], {2, 3})
    )


def _op_row(op: dict[str, Any]) -> list[str]:
    share = f"{op['share']:.0%}" if op.get("share") is not None else "–"
    ran_on = esc(op.get("exec") or "–") + (" <b>(fallback)</b>" if op.get("fallback") else "")
    return [esc(op["name"]), esc(op["type"]), fmt_ms(op["ms"]), share, ran_on, esc(op.get("precision") or "–")]


def repair(page: Page, task: str, target: str) -> str:
    """Per pipeline with a max_drop budget: the repair path, each candidate's accuracy drop
    against its p50 (a chart) and a table of the steps tried."""
    recs = repaired({"measurements": page.records(task, target)})
    sid = page.sid("repair", task, target)
    title = f"{target}: repairs within max_drop"
    if not recs:
        return section("repair", sid, title, "<p>No pipeline of this target has a max_drop budget.</p>")
    return section("repair", sid, title, "".join(_repair_block(page, target, r["repair"]) for r in recs))


def _repair_block(page: Page, target: str, rep: dict[str, Any]) -> str:
    measured = [t for t in rep["trials"] if t["drop"] is not None]
    fig, ax = page.charts.figure(7.0, 3.2)
    for i, t in enumerate(measured):
        kept = rep.get("chosen") is not None and t is rep["trials"][rep["chosen"]]
        y = t["p50_ms"] if t["p50_ms"] is not None else math.nan
        ax.scatter(t["drop"] * 100, y, s=60 if kept else 25, color=PALETTE[3] if kept else PALETTE[0], zorder=3)
        ax.annotate(
            f"{i}. {t['tried'][:40]}", (t["drop"] * 100, y), fontsize=7, xytext=(4, 2), textcoords="offset points"
        )
    ax.axvline(rep["max_drop"] * 100, color=PALETTE[3], ls="--", lw=1, label=f"max_drop {rep['max_drop'] * 100:g}pt")
    ax.set_xlabel(f"{rep['metric']} drop against the float model (points)")
    ms_axis(ax)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    rows = [
        [
            esc(t["tried"]),
            esc(t["status"] if t["status"] != "ok" else (t["label"] or "")),
            fmt_points(t["drop"]),
            fmt_ms(t["p50_ms"]),
            fmt_bytes((t["size_bytes"] or {}).get("raw")),
            esc(", ".join(t["float_layers"]) or "–"),
        ]
        for t in rep["trials"]
    ]
    head = ["tried", "file", "drop", "p50", "size", "layers in float"]
    return (
        f"<p>{esc(rep['pipeline'])}: {esc(rep['summary'])} ({rep['seconds']:.1f} s; layers ranked by "
        f"{esc(rep.get('ranking') or '–')}).</p>"
        + page.charts.svg(fig, f"{target}: repair path of {rep['pipeline']}")
        + table(head, rows, {2, 3, 4})
    )


def memory(page: Page, task: str, target: str) -> str:
    """The peak RSS and USS of the measuring process per candidate, against the memory budgets."""
    recs = [r for r in page.records(task, target) if r.get("status") == "ok" and r.get("memory_mb")]
    sid = page.sid("memory", task, target)
    if not recs:
        return section("memory", sid, f"{target}: peak memory", "<p>No memory figures for this target.</p>")
    y = np.arange(len(recs))
    rss = [r["memory_mb"].get("peak_rss") or 0 for r in recs]
    uss = [r["memory_mb"].get("peak_uss") or 0 for r in recs]
    fig, ax = page.charts.figure(7.0, 0.9 + 0.3 * len(recs))
    ax.barh(y - 0.2, rss, 0.4, label="peak RSS", color=PALETTE[2])
    ax.barh(y + 0.2, uss, 0.4, label="peak USS", color=PALETTE[4])
    limits = [c for c in _budgets(page.results, target) if c.metric.startswith("memory.")]
    for check in limits:
        ax.axvline(check.value, color=PALETTE[3], ls="--", lw=1, label=f"budget {check.spec}")
    ax.set_xlim(0, max(rss + uss + [c.value for c in limits]) * 1.1)
    ax.set_yticks(y, [record_label(r) for r in recs], fontsize=7)
    ax.invert_yaxis()
    value_axis(ax, fmt_mib)
    ax.set_xlabel("memory of the measuring process")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="x")
    return section("memory", sid, f"{target}: peak memory", page.charts.svg(fig, f"{target}: peak memory"))


def roofline(page: Page, task: str, target: str) -> str:
    """Achieved GOP/s per candidate against the target's peak (a table)."""
    rows = roofline_rows(page.results, task, target)
    sid = page.sid("roofline", task, target)
    title = f"{target}: roofline"
    if not rows:
        return section("roofline", sid, title, "<p>No measured candidate with a MAC count for this target.</p>")
    cells = [
        [
            esc(r.label),
            f"{r.macs:,}",
            fmt_ms(r.p50_ms),
            f"{r.achieved_gops:.3g}",
            "–" if r.peak_gops is None else f"{r.peak_gops:.3g}",
            "–" if r.share is None else f"{r.share:.2%}",
            esc(r.peak_source),
        ]
        for r in rows
    ]
    body = table(
        ["candidate", "MACs", "p50", "achieved GOP/s", "peak GOP/s", "share of peak", "peak from"],
        cells,
        {1, 2, 3, 4, 5},
    )
    body += (
        "<p>Achieved GOP/s = 2 × MACs / median latency (one multiply-add is two operations); MACs count "
        "the dense, convolution and depthwise layers of the model file. A share far below 1% says the "
        "call is dominated by overhead, not arithmetic.</p>"
    )
    return section("roofline", sid, title, body)


# ---------------------------------------------------------------------------------- trend


def trend(page: Page, task: str) -> str:
    """The median latency of each candidate of this run across the runs of the history, per target."""
    sid = page.sid("trend", task)
    points = [p for p in page.view.history if p.task == task and p.target is not None]
    title = "Latency trend over runs (history.sqlite)"
    if not points:
        return section("trend", sid, title, f"<p>{esc(page.view.history_note)}</p>")
    runs = sorted({(p.created or "", p.run_id) for p in points})
    order = {run_id: i for i, (_, run_id) in enumerate(runs)}
    mine = {(r.get("target"), record_key(r)) for r in page.results["measurements"] if r.get("task") == task}
    chosen = {t: record_key(s.chosen) for (k, t), s in page.selections().items() if k == task and s.chosen is not None}
    targets = [t for t in page.results.get("targets") or {} if any(p.target == t for p in points)]
    fig, axes = page.charts.figure(7.5, 2.9, ncols=max(len(targets), 2))
    for ax, target in zip(axes, targets, strict=False):
        keys = sorted({p.key for p in points if p.target == target and (target, p.key) in mine})
        for key in keys:
            series = sorted((order[p.run_id], p.p50_ms) for p in points if p.target == target and p.key == key)
            best = chosen.get(target) == key
            ax.plot(
                [s[0] for s in series],
                [s[1] for s in series],
                marker="o",
                ms=4 if best else 2,
                lw=2 if best else 0.8,
                color=PALETTE[3] if best else "#9aa5b1",
                label=f"chosen: {key}" if best else None,
                zorder=3 if best else 2,
            )
        ms_axis(ax, "y")
        ax.set_title(target, fontsize=9)
        ax.set_xlabel("run (oldest → newest)")
        ax.set_xticks(range(len(runs)))
        ax.grid(alpha=0.3)
        if chosen.get(target) in keys:
            ax.legend(fontsize=6)
    body = page.charts.svg(fig, "median latency of each candidate across the runs of the history")
    body += f"<p>{esc(page.view.history_note)}; runs: {esc(', '.join(run_id for _, run_id in runs))}.</p>"
    return section("trend", sid, title, body)
