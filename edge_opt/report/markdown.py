"""Reports of a run: Markdown for people, JSON for tools, and rows for the terminal table."""

from __future__ import annotations

from typing import Any

from edge_opt.analysis.checks import checks_table
from edge_opt.budgets.choose import choose_each, record_label
from edge_opt.core.units import fmt_bytes, fmt_fraction, fmt_mib, fmt_ms, fmt_points
from edge_opt.gate import ship_verdicts
from edge_opt.measure.records import runtime_label

COLUMNS = (
    "target",
    "artifact",
    "runtime",
    "thr",
    "p50",
    "p90",
    "load",
    "peak RSS",
    "size",
    "gzip",
    "acc",
    "Δ acc",
    "status",
)
#: The columns that hold numbers (right-aligned in tables).
NUMERIC = frozenset({"thr", "p50", "p90", "load", "peak RSS", "size", "gzip", "acc", "Δ acc"})


def status_text(rec: dict[str, Any]) -> str:
    """``ok``, ``ok (host proxy: ...)``, ``skipped: <reason>``: the full status of a record."""
    rt = rec.get("runtime") or {}
    status = rec["status"] if rec["status"] == "ok" else f"{rec['status']}: {rec.get('error') or ''}"
    return status + (f" ({rt['note']})" if rt.get("note") and rec["status"] == "ok" else "")


def row(rec: dict[str, Any]) -> list[str]:
    """One measurement as the table cells of COLUMNS (figures through ``edge_opt.core.units``)."""
    lat, mem, size = rec.get("latency_ms") or {}, rec.get("memory_mb") or {}, rec.get("size_bytes") or {}
    rt, art = rec["runtime"], rec["artifact"]
    runtime = runtime_label(rt) if rt.get("name") else "-"
    return [
        rec.get("target") or "reference",  # a record of no target: the float model, the reference
        f"{art.get('label', art['pass'])}",
        runtime,
        str(rt.get("threads", "")) if rt.get("threads") else "–",
        fmt_ms(lat.get("p50")),
        fmt_ms(lat.get("p90")),
        fmt_ms(rec.get("load_ms")),
        fmt_mib(mem.get("peak_rss")),
        fmt_bytes(size.get("raw")),
        fmt_bytes(size.get("gzip")),
        fmt_fraction(rec.get("accuracy")),
        fmt_points(rec.get("accuracy_drop")),
        status_text(rec),
    ]


def selections(results: dict) -> dict:
    """Per (task, target): the fastest measured candidate within the profile's budgets, and why others lost."""
    return choose_each(results)


def nas_section(nas: dict | None) -> list[str]:
    """The architecture search per task and target: what it chose, the front, the headline (nas.json has all)."""
    if not nas:
        return []
    lines = [
        "## Architecture search",
        "",
        "Each trial trained briefly, deployed by the target's pipeline and measured by the harness on its runtime; "
        "every trial, the fronts and the efficacy figures are in `nas.json`.",
        "",
        "| task | target | chosen | trials / grid | oracle | hypervolume | front (acc x latency) | headline |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task, by_target in nas.items():
        for target, s in by_target.items():
            h = s.get("headline") or {}
            head = (
                f"{h['label']}: {h['speedup']:.2f}x the baseline at {h['accuracy']:.4f} "
                f"(baseline {h['baseline_accuracy']:.4f})"
                + (f"; {h['confirmed']['speedup']:.2f}x paired re-measurement" if h.get("confirmed") else "")
                if h.get("trial")
                else "no front member within 0.5 points of the baseline"
            )
            lines.append(
                f"| {task} | {target} | {s['architecture']} | {s['trials']} / {s['grid_size']:,} | {s['oracle']} "
                f"({s['objective']}) | {s['hypervolume']:.4g} | {', '.join(s['front_latency'])} | {head} |"
            )
    return [*lines, ""]


def _header(results: dict) -> list[str]:
    prov = results.get("provenance", {})
    machine = prov.get("machine", {})
    versions = prov.get("versions", {})
    return [
        f"# edge-opt run {results['run_id']}",
        "",
        f"Suite **{results['suite']['name']}** · {results.get('created', '')} · {results.get('duration_s', '?')} s · "
        f"{machine.get('cpu', '?')} ({machine.get('cores_logical', '?')} logical cores) · "
        f"commit {str(prov.get('commit'))[:10]}",
        "",
        "Runtimes: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v),
        "",
        "Latency is one sample per call on inputs bound once, in a fresh process per row, timed by the wall "
        "clock around the call on every runtime alike (OpenVINO's own timer is kept in results.json as "
        "`runtime_latency_ms`); Δ acc is against the float Keras model on the same test rows.",
        "",
    ]


def _ship_section(results: dict) -> list[str]:
    """What to ship: per task and target, the chosen file and the verdict of the profile's budgets."""
    verdicts = ship_verdicts(results)
    if not verdicts:
        return []
    lines = [
        "## What to ship",
        "",
        "Per task and target, the artifact chosen within the target profile's budgets and their verdict "
        "(`edge-opt gate` on this folder gives every check); the file is also at "
        "`by-label/<task>/<target>/chosen`.",
        "",
        "| task · target | artifact | p50 | budgets | file |",
        "|---|---|---:|---|---|",
    ]
    for v in verdicts:
        rec = v.chosen or {}
        cells = [
            v.where,
            record_label(rec) if v.chosen else "none",
            fmt_ms((rec.get("latency_ms") or {}).get("p50")) if v.chosen else "",
            v.text,
            f"`{(rec.get('artifact') or {}).get('path')}`" if v.chosen else "",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return [*lines, ""]


def _chosen_section(results: dict) -> list[str]:
    """Per task and target: the chosen artifact, and why each other candidate lost."""
    chosen = selections(results)
    if not chosen:
        return []
    lines = [
        "## Chosen artifact per task and target",
        "",
        "Among each task's measured candidates that meet every budget of the target profile, the fastest; "
        "candidates whose median 95% confidence intervals overlap the fastest's are a tie, "
        "won by fewer threads, then the smaller file, then the more accurate. "
        "A budget against the float model does not apply to a task that has none (a deployed file).",
        "",
    ]
    for (task, target), sel in chosen.items():
        where = f"{task} · {target}" if task else target
        if sel.chosen is None:
            lines.append(f"- **{where}**: none fits its budgets")
        else:
            rec = sel.chosen
            lines.append(
                f"- **{where}**: {rec['artifact']['label']} on {runtime_label(rec['runtime'])}, "
                f"{rec['runtime']['threads']} thread(s): p50 {fmt_ms(rec['latency_ms']['p50'])}{sel.tie_note()}"
            )
        for rec, why in sel.rejected:
            lines.append(f"  - rejected {record_label(rec)}: {why}")
    return [*lines, ""]


#: The ops report.md names per profiled artifact (report.html and results.json hold them all).
TOP_OPS = 3


def ops_section(results: dict) -> list[str]:
    """Per profiled record (each target's chosen artifact): where its time goes, op by op."""
    profiled = [r for r in results["measurements"] if r.get("ops_runs")]
    if not profiled:
        return []
    lines = [
        "## Where the time goes",
        "",
        "Each target's chosen artifact, profiled op by op on the runtime it was chosen on "
        "(method: the runtime's profiler, or each op timed alone). Every op: results.json `ops`.",
        "",
        "| task · target | artifact · runtime | method | top ops (share, ran on, precision) | sum of ops / whole |",
        "|---|---|---|---|---|",
    ]
    for rec in profiled:
        ops = rec.get("ops") or []
        top = "; ".join(
            f"{op['type']} {op['share']:.0%} ({op.get('exec') or '?'}, {op.get('precision') or '?'})"
            for op in ops[:TOP_OPS]
        )
        total, whole = rec.get("ops_total_ms"), rec.get("ops_whole_ms")
        ratio = f"{fmt_ms(total)} / {fmt_ms(whole)}" if total and whole else "–"
        cells = [
            f"{rec.get('task')} · {rec.get('target')}",
            f"{rec['artifact'].get('label')} · {runtime_label(rec['runtime'])}",
            rec.get("ops_method") or f"none: {rec.get('ops_note')}",
            top or "–",
            ratio,
        ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return [*lines, ""]


def repaired(results: dict) -> list[dict]:
    """One record per (task, target, pipeline) that the repair loop rebuilt or judged."""
    seen, out = set(), []
    for rec in results["measurements"]:
        key = (rec.get("task"), rec.get("target"), (rec.get("repair") or {}).get("pipeline"))
        if rec.get("repair") and key not in seen:
            seen.add(key)
            out.append(rec)
    return out


def repair_section(results: dict) -> list[str]:
    """Per pipeline with a max_drop budget: what the repair loop tried and where it ended."""
    recs = repaired(results)
    if not recs:
        return []
    lines = [
        "## Repairs within max_drop",
        "",
        "Pipelines with a max_drop budget: every candidate the repair loop built, measured on the held-out "
        "rows (drop) and timed (p50, quick). Every step: results.json `repair`.",
        "",
        "| task · target | pipeline | budget | steps tried (drop, p50) | kept |",
        "|---|---|---|---|---|",
    ]
    for rec in recs:
        rep = rec["repair"]
        steps = "; ".join(
            f"{t['tried']} ({fmt_points(t['drop'])}, {fmt_ms(t['p50_ms'])})"
            if t["drop"] is not None
            else f"{t['tried']} ({t['status']})"
            for t in rep["trials"]
        )
        kept = rep["trials"][rep["chosen"]]["label"] if rep.get("chosen") is not None else "–"
        cells = [
            f"{rec.get('task')} · {rec.get('target')}",
            rep["pipeline"],
            f"{rep['max_drop'] * 100:g}pt {rep['metric']}",
            steps,
            f"{kept} ({'within' if rep['within'] else 'over budget'})",
        ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return [*lines, ""]


def _not_measured(results: dict) -> list[str]:
    skipped = [r for r in results["measurements"] if r["status"] != "ok"]
    if not skipped:
        return []
    lines = ["## Not measured", ""]
    for rec in skipped:
        lines.append(
            f"- {rec.get('target')}: {rec['artifact'].get('label')} on {rec['runtime'].get('name')}"
            f" ({rec['runtime'].get('device')}): **{rec['status']}**: {rec.get('error')}"
        )
    return [*lines, ""]


def render_markdown(results: dict, lineage: list[str] | None = None) -> str:
    """report.md: the run, what to ship, a table per task, the search, the choice per task and target, the
    trust checks, the lineage and what could not be measured."""
    lines = _header(results) + _ship_section(results)
    tasks = sorted({r.get("task") or "" for r in results["measurements"]})
    for task in tasks:
        lines += [f"## {task}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        for rec in results["measurements"]:
            if (rec.get("task") or "") == task:
                lines.append("| " + " | ".join(c.replace("|", "/") for c in row(rec)) + " |")
        lines.append("")
    lines += nas_section(results.get("nas"))
    lines += _chosen_section(results)
    lines += ops_section(results)
    lines += repair_section(results)
    if results.get("checks"):
        lines += [
            "## Trust checks on the deployed files",
            "",
            "On each target's chosen artifact, through its runtime, next to the float model (Δ = artifact − float). "
            "Details per check: checks.md.",
            "",
            *checks_table(results["checks"]),
            "",
        ]
    if lineage:
        lines += [
            "## Lineage",
            "",
            "From the float model to every artifact (label [target], format, precision, size, id):",
            "",
            "```",
            *lineage,
            "```",
            "",
        ]
    return "\n".join(lines + _not_measured(results))


def render_json(results: dict) -> dict:
    """A compact summary: the table rows as objects, and the chosen artifact per task and target."""
    keys = ("task", "target", "status", "error", "accuracy", "accuracy_drop", "agreement", "load_ms", "cold_start_ms")
    rows = []
    for rec in results["measurements"]:
        lat = rec.get("latency_ms") or {}
        rows.append(
            {
                **{k: rec.get(k) for k in keys},
                "artifact": rec["artifact"].get("label"),
                "artifact_id": rec["artifact"]["id"],
                "format": rec["artifact"]["format"],
                "precision": rec["artifact"]["precision"],
                "runtime": rec["runtime"].get("name"),
                "device": rec["runtime"].get("device"),
                "threads": rec["runtime"].get("threads"),
                "executed_precision": rec["runtime"].get("precision"),
                "requested_precision": rec["runtime"].get("precision_requested"),
                "p50_ms": lat.get("p50"),
                "p90_ms": lat.get("p90"),
                "peak_rss_mb": (rec.get("memory_mb") or {}).get("peak_rss"),
                "size_bytes": rec.get("size_bytes"),
            }
        )
    chosen = [s.to_dict() for s in selections(results).values()]
    ship = [v.to_dict() for v in ship_verdicts(results)]
    suite = results["suite"]["name"]
    return {"run_id": results["run_id"], "suite": suite, "rows": rows, "chosen": chosen, "ship": ship}
