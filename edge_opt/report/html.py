"""report.html: the whole trade-off of one run, or several side by side, on one offline page.

One self-contained file: charts drawn with matplotlib (Agg, no pyplot) and inlined as SVG,
no JavaScript, no URL of any kind (the SVGs lose their XML prolog, namespaces and metadata,
which an inline SVG in HTML does not need). Sections, per task and target: latency against
accuracy with the Pareto frontier, the chosen artifact and the budgets; latency
distributions from the raw samples; size; peak memory; the roofline; then per task the
trust checks (slices, fairness gaps, robustness curves, attributions, the layers that
lost accuracy) and, per searched
target of an architecture search, its trials and fronts, efficacy curves and table (from
the run folder's ``nas.json``); then the lineage, the gate's verdicts and the latency trend
from ``history.sqlite``. Every section is a ``<section data-section=KIND>``; the trade-off
figure carries the record ids of its frontier (``data-frontier``) and of the chosen
candidate (``data-chosen``), a search's section the trial ids of its accuracy–latency front
(``data-front``, as ``nas.json``'s ``front_latency``), so that a test can hold the picture
to the JSON.

A section that cannot be drawn says why in its place (``class="section-error"``) and the
others are still drawn: a report never costs a run.

This module composes the page: the run's summary, lineage and gate, the runs compared, and
the sections of ``performance`` (trade-off, latency, size, memory, roofline, trend), ``trust``
(slices, fairness, robustness, attributions, debug) and ``search`` (the architecture search), each
drawn from one run's :class:`~edge_opt.report.page.Page`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from edge_opt.budgets.choose import record_label
from edge_opt.core.fileio import write_text_atomic
from edge_opt.core.units import fmt_ms
from edge_opt.gate import evaluate, ship_verdicts
from edge_opt.report import performance, search, trust
from edge_opt.report.charts import PALETTE, Charts, esc, ms_axis, section, slug, table
from edge_opt.report.page import Page
from edge_opt.report.performance import pareto_frontier
from edge_opt.store import RunView

__all__ = ["ALWAYS", "SECTIONS", "SIZE_BOUND_BYTES", "pareto_frontier", "render_html", "write_html"]

#: Section kinds. ``nas`` (one per task and searched target, after the task's trust checks) only with a search.
SECTIONS = (
    "ship",
    "summary",
    "tradeoff",
    "latency",
    "size",
    "memory",
    "roofline",
    "repair",
    "slices",
    "fairness",
    "robustness",
    "trust-tradeoff",
    "attributions",
    "debug",
    "lineage",
    "gate",
    "card",
    "trend",
    "nas",
)
#: The sections a run with trust checks, a history and artifacts always has (``nas`` only with a search).
ALWAYS = tuple(s for s in SECTIONS if s != "nas")
#: What a report of the quick suite stays under (the tests hold it to this).
SIZE_BOUND_BYTES = 2_000_000

#: The sections drawn per task and target, and per task (the trust checks), in page order.
_PER_TARGET: dict[str, Callable[[Page, str, str], str]] = {
    "tradeoff": performance.tradeoff,
    "latency": performance.latency,
    "size": performance.size,
    "memory": performance.memory,
    "roofline": performance.roofline,
    "ops": performance.ops,
    "repair": performance.repair,
    "card": trust.card,
}
_TRUST: dict[str, Callable[[Page, str], str]] = {
    "slices": trust.slices,
    "fairness": trust.fairness,
    "robustness": trust.robustness,
    "trust-tradeoff": trust.tradeoffs,
    "attributions": trust.attributions,
    "debug": trust.debug,
}


def _safe(kind: str, sid: str, title: str, fn: Callable[..., str], *args: object) -> str:
    """``fn(*args)``, or a section of ``kind`` that says why it could not be drawn."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - one section that cannot be drawn must not cost the page
        msg = f"This section could not be drawn: {type(exc).__name__}: {exc}"
        return section(kind, sid, title, f'<p class="section-error">{esc(msg)}</p>')


# ------------------------------------------------------------------------------- the run


def _ship(page: Page) -> str:
    """What to ship: per task and target, the chosen file and the verdict of the profile's budgets."""
    rows = []
    for v in ship_verdicts(page.results):
        rec = v.chosen or {}
        css = {"PASS": "v-pass", "FAIL": "v-fail", "SKIP": "v-skip"}.get(v.verdict, "v-na")
        rows.append(
            [
                esc(v.where),
                esc(record_label(rec)) if v.chosen else "none",
                esc(fmt_ms((rec.get("latency_ms") or {}).get("p50"))) if v.chosen else "",
                f'<span class="{css}">{esc(v.text)}</span>',
                f"<code>{esc((rec.get('artifact') or {}).get('path'))}</code>" if v.chosen else "",
            ]
        )
    body = table(["task · target", "artifact", "p50", "budgets", "file"], rows, numeric={2}) + (
        "<p>Per task and target, the artifact chosen within the target profile's budgets; "
        "the file is also at <code>by-label/&lt;task&gt;/&lt;target&gt;/chosen</code> in the run folder.</p>"
    )
    return section("ship", page.sid("ship"), "What to ship", body)


def _summary(page: Page) -> str:
    """The run: suite, time, machine, runtimes, commit and the host's probed peak."""
    r = page.results
    prov = r.get("provenance") or {}
    machine = prov.get("machine") or {}
    versions = ", ".join(f"{k} {v}" for k, v in (prov.get("versions") or {}).items() if v)
    probe = prov.get("host_peak") or {}
    rows = [
        ["suite", esc((r.get("suite") or {}).get("name"))],
        ["created", esc(r.get("created"))],
        ["duration", esc(f"{r.get('duration_s', '?')} s")],
        ["machine", esc(f"{machine.get('cpu', '?')} ({machine.get('cores_logical', '?')} logical cores)")],
        ["runtimes", esc(versions)],
        ["commit", esc(str(prov.get("commit"))[:12])],
    ]
    if probe.get("gops_per_thread"):
        rows.append(["host peak (probe)", esc(f"{probe['gops_per_thread']:.1f} GOP/s per thread ({probe['method']})")])
    body = table(["", ""], rows) + (
        "<p>Latency is the median of single calls on inputs bound once, in a fresh process per "
        "measurement, timed by the wall clock around the call on every runtime alike (OpenVINO's own timer "
        "is kept in results.json as <code>runtime_latency_ms</code>); accuracy is on the task's test rows; "
        "Δ is against the float Keras model.</p>"
    )
    return section("summary", page.sid("summary"), f"Run {r['run_id']}", body)


def _lineage(page: Page) -> str:
    """From the float model to every artifact, as the artifacts folder records it."""
    lines = page.view.lineage
    body = f"<pre>{esc(chr(10).join(lines))}</pre>" if lines else "<p>No artifacts folder: no lineage.</p>"
    return section("lineage", page.sid("lineage"), "Lineage: from the float model to every artifact", body)


def _gate(page: Page) -> str:
    """The gate's verdicts: every task's targets against their own budgets, and what each selection rejected."""
    report = evaluate(page.results)
    rows = [
        [
            esc(r.task or "–"),
            esc(r.target),
            esc(r.record),
            esc(r.check),
            f'<span class="v-{r.verdict.lower().replace("/", "")}">{r.verdict}</span>',
            esc(r.message),
        ]
        for r in report.rows
    ]
    counts = report.to_dict()["counts"]
    verdict = "VALID: every budget met" if report.passed else "INVALID: a budget is not met"
    body = (
        f'<p class="{"v-pass" if report.passed else "v-fail"}"><b>{verdict}</b> '
        f"({counts['PASS']} pass, {counts['FAIL']} fail, {counts['SKIP']} skipped, {counts['N/A']} cannot apply; "
        "every task's targets against their own budgets, as <code>edge-opt gate RUN</code> checks them)</p>"
    )
    body += table(["task", "target", "measurement", "check", "verdict", "reason"], rows)
    for (task, target), sel in report.selections.items():
        shown = f"{record_label(sel.chosen)}{sel.tie_note()}" if sel.chosen else "none (no candidate fits)"
        rejected = "".join(f"<li>{esc(record_label(rec))}: {esc(why)}</li>" for rec, why in sel.rejected)
        where = f"{task} · {target}" if task else target
        body += (
            f"<details><summary><b>{esc(where)}</b>: chosen {esc(shown)}; {len(sel.rejected)} rejected</summary>"
            f"<ul>{rejected}</ul></details>"
        )
    return section("gate", page.sid("gate"), "Gate verdicts", body)


# ------------------------------------------------------------------------------ one run


def _render_run(page: Page) -> str:
    """Every section of one run, in page order; a section that fails says so in its place."""
    parts = [
        _safe("ship", page.sid("ship"), "What to ship", _ship, page),
        _safe("summary", page.sid("summary"), "Run", _summary, page),
    ]
    for task in page.tasks():
        parts.append(f'<h2 id="{page.sid("task", task)}">Task {esc(task)}</h2>')
        for target in page.results.get("targets") or {}:
            parts.append(f"<h2 class=target>{esc(task)} · {esc(target)}</h2>")
            for kind, fn in _PER_TARGET.items():
                parts.append(_safe(kind, page.sid(kind, task, target), f"{target}: {kind}", fn, page, task, target))
        parts.append(f"<h2>{esc(task)}: trust checks on the deployed files</h2>")
        for kind, fn in _TRUST.items():
            parts.append(_safe(kind, page.sid(kind, task), kind, fn, page, task))
        parts.append(_search_block(page, task))
    parts.append("<h2>Run</h2>")
    parts.append(_safe("lineage", page.sid("lineage"), "Lineage", _lineage, page))
    parts.append(_safe("gate", page.sid("gate"), "Gate verdicts", _gate, page))
    for task in page.tasks():
        parts.append(_safe("trend", page.sid("trend", task), "Latency trend", performance.trend, page, task))
    for task in [t for t in search.searched_tasks(page) if t not in page.tasks()]:  # a search with no measurement
        parts.append(_search_block(page, task))
    return "".join(parts)


def _search_block(page: Page, task: str) -> str:
    """A task's architecture searches, one section per searched target (nothing without a search)."""
    targets = search.searched_targets(page, task)
    if not targets:
        return ""
    parts = [f"<h2>{esc(task)}: architecture search</h2>"]
    for target in targets:
        sid = page.sid("nas", task, target)
        parts.append(_safe("nas", sid, f"{target}: architecture search", search.nas, page, task, target))
    return "".join(parts)


# ------------------------------------------------------------------------------ the page

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;padding:1em 1.5em;
max-width:1500px;color:#1b1f24;background:#fff}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #d0d7de;margin-top:1.8em}h3{font-size:1.02em}
table{border-collapse:collapse;margin:.5em 0;font-size:12px}td,th{border:1px solid #d0d7de;padding:2px 6px;
text-align:left;vertical-align:top}td.num,th.num{text-align:right;white-space:nowrap}
.runs{display:grid;gap:1.5em}.runs>div{min-width:0}.chart svg{max-width:100%;height:auto}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;font-size:12px}
.v-pass{color:#1a7f37}.v-fail{color:#cf222e}.v-skip{color:#9a6700}.v-na{color:#57606a}.section-error{color:#cf222e}
nav{font-size:12px;columns:3}nav a{color:#0969da}
"""


def _head(title: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
    )


_FOOT = "<p><small>Written by edge-opt; a self-contained page, no script, no link outside it.</small></p></body></html>"


def render_search_html(folder: Path, name: str) -> str:
    """report.html of a standalone ``edge-opt nas`` folder: each task's searches, from its nas.json."""
    view = RunView(folder, {"run_id": f"nas-{name}", "measurements": [], "targets": {}}, None, (), "")
    page = Page(view, 0)
    title = f"edge-opt nas · {name}"
    blocks = [_search_block(page, task) for task in search.searched_tasks(page)]
    body = "".join(blocks) or "<p>nas.json holds no search.</p>"
    return _head(title) + f"<h1>{esc(title)}</h1>" + body + _FOOT


def render_html(views: list[RunView]) -> str:
    """The page: one run, or several side by side (a comparison chart per task and target first)."""
    if not views:
        raise ValueError("render_html needs at least one run")
    pages = [Page(v, i) for i, v in enumerate(views)]
    bodies = [_render_run(p) for p in pages]
    title = "edge-opt · " + " vs ".join(v.results["run_id"] for v in views)
    parts = [_head(title), f"<h1>{esc(title)}</h1>"]
    if len(views) > 1:
        parts.append(_compare(pages))
    nav = "".join(
        f'<a href="#{esc(m.group(1))}">{esc(m.group(1))}</a><br>'
        for m in re.finditer(r'<section id="([^"]+)"', "".join(bodies))
    )
    parts.append(f"<details><summary>All sections</summary><nav>{nav}</nav></details>")
    cols = f"grid-template-columns:repeat({len(views)},minmax(0,1fr))"
    parts.append(f'<div class="runs" style="{cols}">' + "".join(f"<div>{b}</div>" for b in bodies) + "</div>")
    parts.append(_FOOT)
    return "".join(parts)


# ------------------------------------------------------------------------- runs compared


def _compare(pages: list[Page]) -> str:
    """Runs side by side: every candidate of each run on one latency–accuracy chart per task and target."""
    charts = Charts("cmp")
    out = []
    for task in sorted({t for p in pages for t in p.tasks()}):
        for target in dict.fromkeys(t for p in pages for t in (p.results.get("targets") or {})):
            out.append(_compare_one(pages, charts, task, target))
    return "<h2>Runs compared</h2>" + "".join(out)


def _compare_one(pages: list[Page], charts: Charts, task: str, target: str) -> str:
    """One task and target: each run's candidates and frontier on one chart, and each run's chosen one."""
    fig, ax = charts.figure(7.0, 3.4)
    drawn = False
    rows = []
    for i, p in enumerate(pages):
        recs = p.records(task, target)
        pts = [r for r in recs if r.get("status") == "ok" and r.get("accuracy") is not None and r.get("latency_ms")]
        front = pareto_frontier(recs)
        color = PALETTE[i % len(PALETTE)]
        name = p.results["run_id"]
        if pts:
            drawn = True
            ax.scatter(
                [r["latency_ms"]["p50"] for r in pts], [r["accuracy"] for r in pts], s=14, color=color, alpha=0.5
            )
            ax.plot(
                [r["latency_ms"]["p50"] for r in front],
                [r["accuracy"] for r in front],
                "-o",
                ms=4,
                color=color,
                label=f"{name} frontier",
            )
        sel = p.selections().get((task, target))
        chosen = sel.chosen if sel is not None else None
        rows.append(
            [
                esc(name),
                esc(((p.results.get("provenance") or {}).get("machine") or {}).get("cpu", "?")),
                esc(record_label(chosen)) if chosen else "none",
                fmt_ms((chosen or {}).get("latency_ms", {}).get("p50")) if chosen else "–",
            ]
        )
    body = ""
    if drawn:
        ms_axis(ax)
        ax.set_xlabel("median latency (log scale)")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_title(f"{task} · {target}")
        body = charts.svg(fig, f"{target}: candidates of every run")
    body += table(["run", "machine", "chosen", "p50"], rows, {3})
    return section("compare", f"cmp-{slug(task)}-{slug(target)}", f"{task} · {target}: runs compared", body)


def write_html(path: str | Path, views: list[RunView]) -> Path:
    """report.html of one run, or several side by side, written atomically to ``path``."""
    return write_text_atomic(path, render_html(views))
