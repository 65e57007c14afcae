"""report.html: the whole trade-off of one run, or several side by side, on one offline page.

One self-contained file: charts drawn with matplotlib (Agg, no pyplot) and inlined as SVG,
no JavaScript, no URL of any kind (the SVGs lose their XML prolog, namespaces and metadata,
which an inline SVG in HTML does not need). Sections, per task and target: latency against
accuracy with the Pareto frontier, the chosen artifact and the budgets; latency
distributions from the raw samples; size; peak memory; the roofline; then per task the
trust checks (slices, fairness gaps, robustness curves, attributions) and, per searched
target of an architecture search, its trials and fronts, efficacy curves and table (from
the run folder's ``nas.json``); then the lineage, the gate's verdicts and the latency trend
from ``history.sqlite``. Every section is a ``<section data-section=KIND>``; the trade-off
figure carries the record ids of its frontier (``data-frontier``) and of the chosen
candidate (``data-chosen``), a search's section the trial ids of its accuracy–latency front
(``data-front``, as ``nas.json``'s ``front_latency``), so that a test can hold the picture
to the JSON.

A section that cannot be drawn says why in its place (``class="section-error"``) and the
others are still drawn: a report never costs a run.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_opt.core.units import fmt_bytes, fmt_mib, fmt_ms, fmt_points
from edge_opt.store import RunView, load_samples, record_key

#: Section kinds. ``nas`` (one per task and searched target, after the task's trust checks) only with a search.
SECTIONS = (
    "summary",
    "tradeoff",
    "latency",
    "size",
    "memory",
    "roofline",
    "slices",
    "fairness",
    "robustness",
    "attributions",
    "lineage",
    "gate",
    "trend",
    "nas",
)
#: The sections a run with trust checks, a history and artifacts always has (``nas`` only with a search).
ALWAYS = tuple(s for s in SECTIONS if s != "nas")
#: What a report of the quick suite stays under (the tests hold it to this).
SIZE_BOUND_BYTES = 2_000_000
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
_FLOAT_COLOR, _ARTIFACT_COLOR = "#7f7f7f", "#1f77b4"
#: How a trial's status reads on the search's charts (skipped trials, never trained, sit on the x axis).
_NAS_MARKERS = {
    "ok": {"marker": "o", "s": 18, "color": "#9aa5b1", "zorder": 2},
    "rejected": {"marker": "x", "s": 26, "color": "#d62728", "zorder": 2},
}


# --------------------------------------------------------------------------------------- charts


class _Charts:
    """Figures as inline SVG with ids unique on the page (a salt per figure) and no URL in them."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.count = 0

    @staticmethod
    def figure(width: float = 7.0, height: float = 3.4, ncols: int = 1):
        from matplotlib.figure import Figure

        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(1, ncols) if ncols > 1 else fig.subplots()
        return fig, axes

    def svg(self, fig, alt: str) -> str:
        import matplotlib

        self.count += 1
        rc = {"svg.fonttype": "none", "svg.hashsalt": f"{self.prefix}-{self.count}", "font.size": 9}
        buf = io.StringIO()
        with matplotlib.rc_context(rc):
            fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
        return f'<div class="chart" role="img" aria-label="{_e(alt)}">{_clean_svg(buf.getvalue())}</div>'


def _clean_svg(svg: str) -> str:
    """An SVG for inlining: no prolog, DOCTYPE, metadata or namespace URLs (HTML's parser adds them)."""
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(?::\w+)?="[^"]*"', "", svg)
    # Keep only the ids something points at (markers, clip paths: salted per figure, unique on the
    # page); matplotlib's group ids (figure_1, axes_1, ...) repeat in every figure.
    used = set(re.findall(r'(?:href="#|url\(#)([^")]+)', svg))
    svg = re.sub(r'\s+id="([^"]+)"', lambda m: m.group(0) if m.group(1) in used else "", svg)
    return svg.replace(' version="1.1"', "", 1)


def _ms_axis(ax, axis: str = "x") -> None:
    from matplotlib.ticker import FuncFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    target.set_major_formatter(FuncFormatter(lambda v, _: fmt_ms(v)))
    target.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _narrow_log(ax, fmt: Callable[[float], str]) -> None:
    """A log x axis whose data span less than a decade: three labelled ticks across the data (else one or none)."""
    import numpy as np
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    lo, hi = ax.dataLim.intervalx
    if lo > 0 and math.isfinite(hi) and hi / lo < 10:
        ax.xaxis.set_major_locator(FixedLocator(np.geomspace(lo, hi, 3) if hi > lo else [lo]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))
        ax.xaxis.set_minor_locator(NullLocator())


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _slug(text: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)).strip("-") or "x"


# ------------------------------------------------------------------------------------- helpers


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


def _label(rec: dict[str, Any]) -> str:
    from edge_opt.budgets.choose import record_label

    return record_label(rec)


def _float_record(results: dict[str, Any], task: str) -> dict[str, Any] | None:
    return next(
        (
            r
            for r in results["measurements"]
            if r.get("task") == task and r.get("target") is None and r["status"] == "ok"
        ),
        None,
    )


def _budgets(results: dict[str, Any], target: str) -> list:
    from edge_opt.budgets.grammar import profile_budgets
    from edge_opt.core.errors import EdgeOptError

    try:
        return profile_budgets(results).get(target, [])
    except EdgeOptError:
        return []


def _table(head: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    th = "".join(f"<th{' class=num' if i in numeric else ''}>{_e(h)}</th>" for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(f"<td{' class=num' if i in numeric else ''}>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _section(kind: str, sid: str, title: str, body: str, attrs: str = "") -> str:
    return f'<section id="{_e(sid)}" data-section="{kind}"{attrs}><h3>{_e(title)}</h3>{body}</section>'


# ------------------------------------------------------------------------------ per target


class _Page:
    """The sections of one run, drawn with one chart counter (unique SVG ids on the page)."""

    def __init__(self, view: RunView, index: int) -> None:
        self.view = view
        self.results = view.results
        self.prefix = f"r{index}"
        self.charts = _Charts(self.prefix)
        self._selections: dict[str, Any] | None = None
        self._nas: tuple[dict[str, Any], str] | None = None

    def sid(self, *parts: str) -> str:
        return "-".join([self.prefix, *(_slug(p) for p in parts)])

    def selections(self) -> dict[str, Any]:
        if self._selections is None:
            from edge_opt.report.markdown import selections

            self._selections = selections(self.results)
        return self._selections

    def safe(self, kind: str, sid: str, title: str, fn: Callable[..., str], *args: str) -> str:
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - one section that cannot be drawn must not cost the page
            msg = f"This section could not be drawn: {type(exc).__name__}: {exc}"
            return _section(kind, sid, title, f'<p class="section-error">{_e(msg)}</p>')

    # -- the run

    def summary(self) -> str:
        r = self.results
        prov = r.get("provenance") or {}
        machine = prov.get("machine") or {}
        versions = ", ".join(f"{k} {v}" for k, v in (prov.get("versions") or {}).items() if v)
        probe = prov.get("host_peak") or {}
        rows = [
            ["suite", _e((r.get("suite") or {}).get("name"))],
            ["created", _e(r.get("created"))],
            ["duration", _e(f"{r.get('duration_s', '?')} s")],
            ["machine", _e(f"{machine.get('cpu', '?')} ({machine.get('cores_logical', '?')} logical cores)")],
            ["runtimes", _e(versions)],
            ["commit", _e(str(prov.get("commit"))[:12])],
        ]
        if probe.get("gops_per_thread"):
            rows.append(
                ["host peak (probe)", _e(f"{probe['gops_per_thread']:.1f} GOP/s per thread ({probe['method']})")]
            )
        body = _table(["", ""], rows) + (
            "<p>Latency is the median of single calls on inputs bound once, in a fresh process per "
            "measurement; accuracy is on the task's test rows; Δ is against the float Keras model.</p>"
        )
        return _section("summary", self.sid("summary"), f"Run {r['run_id']}", body)

    def tasks(self) -> list[str]:
        return sorted({r.get("task") for r in self.results["measurements"] if r.get("task")})

    def records(self, task: str, target: str) -> list[dict[str, Any]]:
        return [r for r in self.results["measurements"] if r.get("task") == task and r.get("target") == target]

    def tradeoff(self, task: str, target: str) -> str:
        recs = self.records(task, target)
        front = pareto_frontier(recs)
        sel = self.selections().get(target)
        chosen = sel.chosen if sel is not None and sel.chosen in recs else None
        measured = [r for r in recs if r in front or r.get("status") == "ok" and r.get("accuracy") is not None]
        attrs = f' data-frontier="{" ".join(r["id"] for r in front)}" data-chosen="{chosen["id"] if chosen else ""}"'
        parts = []
        if measured:
            fig, ax = self.charts.figure(7.0, 3.6)
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
                color=_PALETTE[0],
                ms=5,
                label="Pareto frontier",
                zorder=3,
            )
            for r in front:
                ax.annotate(
                    _label(r),
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
                    edgecolors=_PALETTE[3],
                    linewidths=2,
                    label="chosen",
                    zorder=4,
                )
            ref = _float_record(self.results, task)
            for check in _budgets(self.results, target):
                if check.metric.startswith("latency."):
                    ax.axvline(check.value, color=_PALETTE[3], ls="--", lw=1, label=f"budget {check.spec}")
                elif check.metric == "accuracy.drop" and ref is not None:
                    ax.axhline(
                        ref["accuracy"] - check.value, color=_PALETTE[1], ls="--", lw=1, label=f"budget {check.spec}"
                    )
                elif check.metric == "accuracy":
                    ax.axhline(check.value, color=_PALETTE[1], ls="--", lw=1, label=f"budget {check.spec}")
            if ref is not None:
                ax.axhline(ref["accuracy"], color=_FLOAT_COLOR, ls=":", lw=1, label="float model accuracy")
            _ms_axis(ax)
            ax.set_xlabel("median latency (log scale)")
            ax.set_ylabel("accuracy")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
            ax.set_title(f"{task} · {target}: latency vs accuracy")
            parts.append(self.charts.svg(fig, f"{target}: latency against accuracy with the Pareto frontier"))
        else:
            parts.append("<p>No candidate of this target was measured here; the table says why.</p>")
        on_front = {r["id"] for r in front}
        rows = []
        for r in recs:
            lat = r.get("latency_ms") or {}
            mark = ("chosen" if chosen is r else "") + (" · frontier" if r["id"] in on_front else "")
            from edge_opt.report.markdown import status_text

            rows.append(
                [
                    _e(_label(r)),
                    fmt_ms(lat.get("p50")),
                    fmt_ms(lat.get("p90")),
                    "–" if r.get("accuracy") is None else f"{r['accuracy']:.4f}",
                    fmt_points(r.get("accuracy_drop")),
                    _e(mark.strip(" ·")),
                    _e(status_text(r)),
                ]
            )
        parts.append(_table(["candidate", "p50", "p90", "accuracy", "Δ acc", "", "status"], rows, {1, 2, 3, 4}))
        if sel is not None and sel.chosen is not None:
            parts.append(f"<p>Chosen: <b>{_e(_label(sel.chosen))}</b>{_e(sel.tie_note())}.</p>")
        return _section(
            "tradeoff", self.sid("tradeoff", task, target), f"{target}: latency vs accuracy", "".join(parts), attrs
        )

    def latency(self, task: str, target: str) -> str:
        data = []
        for r in self.records(task, target):
            if r.get("status") == "ok":
                samples = load_samples(self.view.run_dir, r)
                if samples is not None and len(samples):
                    data.append((_label(r), samples))
        sid = self.sid("latency", task, target)
        if not data:
            return _section(
                "latency", sid, f"{target}: latency distributions", "<p>No raw samples for this target.</p>"
            )
        fig, ax = self.charts.figure(7.0, 0.9 + 0.3 * len(data))
        ax.boxplot([d[1] for d in data], orientation="horizontal", whis=(1, 99), showfliers=False, widths=0.6)
        ax.set_yticks(range(1, len(data) + 1), [d[0] for d in data], fontsize=7)
        ax.invert_yaxis()
        _ms_axis(ax)
        ax.set_xlabel("latency per call (log); whiskers: 1st-99th percentile")
        ax.grid(alpha=0.3, axis="x")
        n = ", ".join(f"{len(d[1])}" for d in data)
        body = (
            self.charts.svg(fig, f"{target}: latency distribution per candidate")
            + f"<p>Samples per candidate: {n}.</p>"
        )
        return _section("latency", sid, f"{target}: latency distributions", body)

    def size(self, task: str, target: str) -> str:
        arts: dict[str, dict[str, Any]] = {}
        for r in self.records(task, target):
            if r.get("size_bytes"):
                arts.setdefault(r["artifact"]["id"], r)
        sid = self.sid("size", task, target)
        if not arts:
            return _section("size", sid, f"{target}: size", "<p>No artifact sizes for this target.</p>")
        import numpy as np

        labels = [r["artifact"].get("label") or r["artifact"]["id"] for r in arts.values()]
        raw = [r["size_bytes"]["raw"] for r in arts.values()]
        gz = [r["size_bytes"]["gzip"] for r in arts.values()]
        y = np.arange(len(labels))
        fig, ax = self.charts.figure(7.0, 0.9 + 0.35 * len(labels))
        ax.barh(y - 0.2, raw, 0.4, label="raw", color=_PALETTE[0])
        ax.barh(y + 0.2, gz, 0.4, label="gzip", color=_PALETTE[1])
        for yi, a, b in zip(y, raw, gz, strict=True):
            ax.annotate(fmt_bytes(a), (a, yi - 0.2), fontsize=7, xytext=(3, -3), textcoords="offset points")
            ax.annotate(fmt_bytes(b), (b, yi + 0.2), fontsize=7, xytext=(3, -3), textcoords="offset points")
        limits = [c for c in _budgets(self.results, target) if c.metric.startswith("size.")]
        for check in limits:
            ax.axvline(check.value, color=_PALETTE[3], ls="--", lw=1, label=f"budget {check.spec}")
        from matplotlib.ticker import FuncFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_bytes(v)))
        ax.set_yticks(y, labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, max(raw + [c.value for c in limits]) * 1.25)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, axis="x")
        return _section("size", sid, f"{target}: size raw and gzip", self.charts.svg(fig, f"{target}: artifact sizes"))

    def memory(self, task: str, target: str) -> str:
        recs = [r for r in self.records(task, target) if r.get("status") == "ok" and r.get("memory_mb")]
        sid = self.sid("memory", task, target)
        if not recs:
            return _section("memory", sid, f"{target}: peak memory", "<p>No memory figures for this target.</p>")
        import numpy as np

        y = np.arange(len(recs))
        rss = [r["memory_mb"].get("peak_rss") or 0 for r in recs]
        uss = [r["memory_mb"].get("peak_uss") or 0 for r in recs]
        fig, ax = self.charts.figure(7.0, 0.9 + 0.3 * len(recs))
        ax.barh(y - 0.2, rss, 0.4, label="peak RSS", color=_PALETTE[2])
        ax.barh(y + 0.2, uss, 0.4, label="peak USS", color=_PALETTE[4])
        limits = [c for c in _budgets(self.results, target) if c.metric.startswith("memory.")]
        for check in limits:
            ax.axvline(check.value, color=_PALETTE[3], ls="--", lw=1, label=f"budget {check.spec}")
        ax.set_xlim(0, max(rss + uss + [c.value for c in limits]) * 1.1)
        ax.set_yticks(y, [_label(r) for r in recs], fontsize=7)
        ax.invert_yaxis()
        from matplotlib.ticker import FuncFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_mib(v)))
        ax.set_xlabel("memory of the measuring process")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, axis="x")
        return _section("memory", sid, f"{target}: peak memory", self.charts.svg(fig, f"{target}: peak memory"))

    def roofline(self, task: str, target: str) -> str:
        from edge_opt.analysis.roofline import roofline_rows

        rows = roofline_rows(self.results, task, target)
        sid = self.sid("roofline", task, target)
        title = f"{target}: roofline"
        if not rows:
            return _section("roofline", sid, title, "<p>No measured candidate with a MAC count for this target.</p>")
        cells = [
            [
                _e(r.label),
                f"{r.macs:,}",
                fmt_ms(r.p50_ms),
                f"{r.achieved_gops:.3g}",
                "–" if r.peak_gops is None else f"{r.peak_gops:.3g}",
                "–" if r.share is None else f"{r.share:.2%}",
                _e(r.peak_source),
            ]
            for r in rows
        ]
        body = _table(
            ["candidate", "MACs", "p50", "achieved GOP/s", "peak GOP/s", "share of peak", "peak from"],
            cells,
            {1, 2, 3, 4, 5},
        )
        body += (
            "<p>Achieved GOP/s = 2 × MACs / median latency (one multiply-add is two operations); MACs count "
            "the dense, convolution and depthwise layers of the model file. A share far below 1% says the "
            "call is dominated by overhead, not arithmetic.</p>"
        )
        return _section("roofline", sid, title, body)

    # -- per task: trust checks

    def checked(self, task: str) -> list[dict[str, Any]]:
        checks = (self.results.get("checks") or {}).get(task) or {}
        return [e for e in (checks.get("artifacts") or {}).values() if isinstance(e, dict)]

    def slices(self, task: str) -> str:
        sid = self.sid("slices", task)
        title = "Per-slice accuracy, float vs deployed (95% bootstrap CI)"
        charts = []
        import numpy as np

        for entry in self.checked(task):
            fair = entry.get("fairness")
            if not isinstance(fair, dict) or "artifact" not in fair:
                continue
            names, art, ref, art_ci, ref_ci = [], [], [], [], []
            for col in fair.get("columns") or []:
                a_col = fair["artifact"]["columns"].get(col) or {}
                r_col = fair["reference"]["columns"].get(col) or {}
                for name, s in (a_col.get("slices") or {}).items():
                    rs = (r_col.get("slices") or {}).get(name) or {}
                    if s.get("accuracy") is None:
                        continue
                    names.append(f"{col}={name}" + (" (small)" if s.get("small") else ""))
                    art.append(s["accuracy"])
                    ref.append(rs.get("accuracy", math.nan))
                    art_ci.append((s.get("ci") or {}).get("accuracy") or [s["accuracy"]] * 2)
                    ref_ci.append((rs.get("ci") or {}).get("accuracy") or [rs.get("accuracy", math.nan)] * 2)
            if not names:
                continue
            y = np.arange(len(names))

            def err(vals, cis):
                v = np.asarray(vals, dtype=float)
                c = np.asarray(cis, dtype=float)
                return np.abs(np.vstack([v - c[:, 0], c[:, 1] - v]))

            fig, ax = self.charts.figure(7.0, 1.0 + 0.22 * len(names))
            ax.barh(y - 0.2, ref, 0.4, xerr=err(ref, ref_ci), color=_FLOAT_COLOR, label="float", capsize=2)
            ax.barh(y + 0.2, art, 0.4, xerr=err(art, art_ci), color=_ARTIFACT_COLOR, label=entry["label"], capsize=2)
            ax.set_yticks(y, names, fontsize=7)
            ax.invert_yaxis()
            ax.set_xlim(0, 1)
            ax.set_xlabel("accuracy")
            ax.legend(fontsize=7, loc="lower right")
            ax.grid(alpha=0.3, axis="x")
            ax.set_title(f"{entry['label']} ({', '.join(entry.get('targets') or [])})", fontsize=9)
            charts.append(self.charts.svg(fig, f"per-slice accuracy of {entry['label']} and the float model"))
        body = "".join(charts) or "<p>No fairness check ran for this task.</p>"
        return _section("slices", sid, title, body)

    def fairness(self, task: str) -> str:
        sid = self.sid("fairness", task)
        metrics = ("demographic_parity_difference", "equalized_odds_difference", "equal_opportunity_difference")
        short = {
            "demographic_parity_difference": "DP",
            "equalized_odds_difference": "EO",
            "equal_opportunity_difference": "EOpp",
        }
        charts = []
        import numpy as np

        for entry in self.checked(task):
            fair = entry.get("fairness")
            if not isinstance(fair, dict) or "artifact" not in fair:
                continue
            names, art, ref = [], [], []
            for col in fair.get("columns") or []:
                a = (fair["artifact"]["columns"].get(col) or {}).get("fairness") or {}
                r = (fair["reference"]["columns"].get(col) or {}).get("fairness") or {}
                for m in metrics:
                    if a.get(m) is not None:
                        names.append(f"{col}: {short[m]} difference")
                        art.append(a[m])
                        ref.append(r.get(m, math.nan))
            if not names:
                continue
            y = np.arange(len(names))
            fig, ax = self.charts.figure(7.0, 1.0 + 0.22 * len(names))
            ax.barh(y - 0.2, ref, 0.4, color=_FLOAT_COLOR, label="float")
            ax.barh(y + 0.2, art, 0.4, color=_ARTIFACT_COLOR, label=entry["label"])
            ax.set_yticks(y, names, fontsize=7)
            ax.invert_yaxis()
            ax.set_xlabel("gap between slices (0 = parity)")
            ax.legend(fontsize=7, loc="lower right")
            ax.grid(alpha=0.3, axis="x")
            ax.set_title(f"{entry['label']} ({', '.join(entry.get('targets') or [])})", fontsize=9)
            charts.append(self.charts.svg(fig, f"fairness gaps of {entry['label']} and the float model"))
        body = "".join(charts) or "<p>No fairness check ran for this task.</p>"
        body += "<p>DP: demographic parity, EO: equalized odds, EOpp: equal opportunity (fairlearn).</p>"
        return _section("fairness", sid, "Fairness gaps, float vs deployed", body)

    def robustness(self, task: str) -> str:
        sid = self.sid("robustness", task)
        rob = ((self.results.get("checks") or {}).get(task) or {}).get("robustness")
        title = "Robustness: accuracy under attack and noise"
        if not isinstance(rob, dict) or "float" not in rob:
            why = rob.get("error") if isinstance(rob, dict) else "no robustness check ran for this task"
            return _section("robustness", sid, title, f"<p>{_e(why)}</p>")
        labels = {k: e.get("label", k) for k, e in ((self.results["checks"][task].get("artifacts") or {}).items())}
        curves = {"float": rob["float"].get("curves") or {}}
        curves.update({labels.get(k, k): v.get("curves") or {} for k, v in (rob.get("artifacts") or {}).items()})
        kinds = [k for k in ("pgd", "fgsm", "blackbox", "noise") if any(k in c for c in curves.values())]
        fig, axes = self.charts.figure(7.5, 2.8, ncols=max(len(kinds), 2))
        for ax, kind in zip(axes, kinds, strict=False):
            xkey = "sigma" if kind == "noise" else "epsilon"
            for i, (name, c) in enumerate(curves.items()):
                if kind not in c:
                    continue
                style = {"color": _FLOAT_COLOR, "ls": "--"} if name == "float" else {"color": _PALETTE[i % 9]}
                ax.plot(c[kind][xkey], c[kind]["accuracy"], marker="o", ms=3, label=name, **style)
            ax.set_title(kind, fontsize=9)
            ax.set_xlabel("σ" if kind == "noise" else "ε")
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("accuracy")
        axes[0].legend(fontsize=6)
        body = self.charts.svg(fig, "robust accuracy against the attack budget, float and each checked artifact")
        body += (
            "<p>PGD and FGSM are computed on the float model and transferred to each file; the black-box attack "
            "queries the file itself; noise is Gaussian.</p>"
        )
        return _section("robustness", sid, title, body)

    def attributions(self, task: str) -> str:
        sid = self.sid("attributions", task)
        charts = []
        import numpy as np

        for entry in self.checked(task):
            exp = entry.get("explain")
            methods = (exp or {}).get("methods") if isinstance(exp, dict) else None
            if not methods:
                continue
            names = [m for m, v in methods.items() if isinstance(v, dict) and "float" in v and "artifact" in v]
            if not names:
                continue
            fig, axes = self.charts.figure(7.5, 3.2, ncols=max(len(names), 2))
            for ax, method in zip(axes, names, strict=False):
                res = methods[method]
                top = sorted(res["float"], key=lambda k: -abs(res["float"][k]))[:10]
                y = np.arange(len(top))
                ax.barh(y - 0.2, [res["float"][k] for k in top], 0.4, color=_FLOAT_COLOR, label="float")
                ax.barh(
                    y + 0.2, [res["artifact"].get(k, 0) for k in top], 0.4, color=_ARTIFACT_COLOR, label=entry["label"]
                )
                ax.set_yticks(y, top, fontsize=6)
                ax.invert_yaxis()
                shown = [res["float"][k] for k in top] + [res["artifact"].get(k, 0) for k in top]
                if min(shown) > 0 and max(shown) / min(shown) > 100:  # a few features dwarf the rest
                    from matplotlib.ticker import LogLocator

                    ax.set_xscale("log")
                    ax.xaxis.set_major_locator(LogLocator(numticks=4))
                rho = res.get("rank_corr")
                ax.set_title(f"{method}: Spearman ρ = {rho:.2f}" if rho is not None else method, fontsize=9)
                ax.grid(alpha=0.3, axis="x")
            axes[0].legend(fontsize=6)
            fig.suptitle(
                f"{entry['label']} ({', '.join(entry.get('targets') or [])}): top 10 features of the float model",
                fontsize=9,
            )
            charts.append(self.charts.svg(fig, f"global attributions of {entry['label']} and the float model"))
        body = "".join(charts) or "<p>No explanation check ran for this task.</p>"
        return _section("attributions", sid, "Global attributions, float vs deployed", body)

    # -- the run again

    def lineage(self) -> str:
        lines = self.view.lineage
        body = f"<pre>{_e(chr(10).join(lines))}</pre>" if lines else "<p>No artifacts folder: no lineage.</p>"
        return _section("lineage", self.sid("lineage"), "Lineage: from the float model to every artifact", body)

    def gate(self) -> str:
        from edge_opt.gate import evaluate

        report = evaluate(self.results)
        rows = [
            [
                _e(r.target),
                _e(r.record),
                _e(r.check),
                f'<span class="v-{r.verdict.lower()}">{r.verdict}</span>',
                _e(r.message),
            ]
            for r in report.rows
        ]
        counts = report.to_dict()["counts"]
        verdict = "VALID: every budget met" if report.passed else "INVALID: a budget is not met"
        body = (
            f'<p class="{"v-pass" if report.passed else "v-fail"}"><b>{verdict}</b> '
            f"({counts['PASS']} pass, {counts['FAIL']} fail, {counts['SKIP']} skipped; the targets' own budgets, "
            "as <code>edge-opt gate RUN</code> checks them)</p>"
        )
        body += _table(["target", "measurement", "check", "verdict", "reason"], rows)
        for target, sel in report.selections.items():
            shown = f"{_label(sel.chosen)}{sel.tie_note()}" if sel.chosen else "none (no candidate fits)"
            rejected = "".join(f"<li>{_e(_label(rec))}: {_e(why)}</li>" for rec, why in sel.rejected)
            body += (
                f"<details><summary><b>{_e(target)}</b>: chosen {_e(shown)}; {len(sel.rejected)} rejected</summary>"
                f"<ul>{rejected}</ul></details>"
            )
        return _section("gate", self.sid("gate"), "Gate verdicts", body)

    def trend(self, task: str) -> str:
        sid = self.sid("trend", task)
        points = [p for p in self.view.history if p.task == task and p.target is not None]
        title = "Latency trend over runs (history.sqlite)"
        if not points:
            return _section("trend", sid, title, f"<p>{_e(self.view.history_note)}</p>")
        runs = sorted({(p.created or "", p.run_id) for p in points})
        order = {run_id: i for i, (_, run_id) in enumerate(runs)}
        mine = {(r.get("target"), record_key(r)) for r in self.results["measurements"] if r.get("task") == task}
        chosen = {t: record_key(s.chosen) for t, s in self.selections().items() if s.chosen is not None}
        targets = [t for t in self.results.get("targets") or {} if any(p.target == t for p in points)]
        fig, axes = self.charts.figure(7.5, 2.9, ncols=max(len(targets), 2))
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
                    color=_PALETTE[3] if best else "#9aa5b1",
                    label=f"chosen: {key}" if best else None,
                    zorder=3 if best else 2,
                )
            _ms_axis(ax, "y")
            ax.set_title(target, fontsize=9)
            ax.set_xlabel("run (oldest → newest)")
            ax.set_xticks(range(len(runs)))
            ax.grid(alpha=0.3)
            if chosen.get(target) in keys:
                ax.legend(fontsize=6)
        body = self.charts.svg(fig, "median latency of each candidate across the runs of the history")
        body += f"<p>{_e(self.view.history_note)}; runs: {_e(', '.join(run_id for _, run_id in runs))}.</p>"
        return _section("trend", sid, title, body)

    # -- per task and searched target: the architecture search

    def nas_data(self) -> tuple[dict[str, dict[str, Any]], str]:
        """Per task and searched target, the search: nas.json's entries, or results.json's summaries without it.

        The second item says where they come from: ``"nas.json"`` (every trial) or ``"summary"``.
        """
        if self._nas is None:
            path = self.view.run_dir / "nas.json"
            self._nas = ({}, "summary")
            if path.is_file():
                try:
                    doc = json.loads(path.read_text(encoding="utf-8"))
                    if str(doc.get("schema", "")).startswith("edge-opt/nas/") and isinstance(doc.get("tasks"), dict):
                        self._nas = (doc["tasks"], "nas.json")
                except (OSError, ValueError, AttributeError):
                    pass  # the summary below, and the section says nas.json was not readable
            if self._nas[1] == "summary":
                self._nas = (self.results.get("nas") or {}, "summary")
        return self._nas

    def nas_targets(self, task: str) -> list[str]:
        return list((self.nas_data()[0].get(task) or {}).keys())

    def nas(self, task: str, target: str) -> str:
        """One search: every trial on accuracy vs latency and size with the fronts, the efficacy curves, the table."""
        data, source = self.nas_data()
        r = data[task][target]
        sid = self.sid("nas", task, target)
        title = f"{target}: architecture search"
        front = [str(t) for t in r.get("front_latency") or []]
        attrs = f' data-front="{_e(" ".join(front))}" data-chosen="{_e(r.get("chosen") or "")}"'
        if source != "nas.json" or "trials" not in r:
            return _section("nas", sid, title, self._nas_summary(r), attrs)
        attrs += f' data-front-size="{_e(" ".join(str(t) for t in r.get("front_size") or []))}"'
        trials = [t for t in r["trials"] if isinstance(t, dict)]
        baseline = r.get("baseline") or {}
        parts = [self._nas_text(r, trials, baseline)]
        parts.append(self._nas_chart("chart of the trials and fronts", self._nas_front_figure, r, trials, baseline))
        parts.append(self._nas_chart("chart of the efficacy curves", self._nas_curve_figure, r, trials, baseline))
        parts.append(self._nas_table(r, trials, baseline))
        return _section("nas", sid, title, "".join(parts), attrs)

    def _nas_chart(self, what: str, draw: Callable[..., str], *args: Any) -> str:
        """One of the search's figures, or why it is missing (the rest of the section is still drawn)."""
        try:
            return draw(*args)
        except Exception as exc:  # noqa: BLE001 - a figure that cannot be drawn must not cost the section
            return f'<p class="section-error">{_e(f"The {what} could not be drawn: {type(exc).__name__}: {exc}")}</p>'

    def _nas_front_figure(self, r: dict[str, Any], trials: list[dict[str, Any]], baseline: dict[str, Any]) -> str:
        from matplotlib.ticker import FuncFormatter

        def point(t: dict[str, Any], x: str) -> tuple[float, float] | None:
            m = t.get("metrics") or {}
            if m.get("accuracy") is None or not m.get(x):
                return None
            return float(m[x]), float(m["accuracy"])

        by_id = {str(t["trial"]): t for t in trials}
        chosen = by_id.get(str(r.get("chosen")))
        fig, axes = self.charts.figure(9.0, 3.6, ncols=2)
        panels = (("latency_p50_ms", "front_latency", "median latency (log scale)"), ("size_raw", "front_size", ""))
        drawn = False
        for ax, (x, front_key, xlabel) in zip(axes, panels, strict=True):
            for status, style in _NAS_MARKERS.items():
                pts = [p for t in trials if t.get("status") == status and (p := point(t, x))]
                if pts:
                    drawn = True
                    ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=f"trial: {status}", **style)
            front = sorted(p for i in r.get(front_key) or [] if str(i) in by_id and (p := point(by_id[str(i)], x)))
            if front:
                ax.step(
                    [p[0] for p in front],
                    [p[1] for p in front],
                    where="post",
                    color=_PALETTE[0],
                    lw=1.5,
                    zorder=3,
                    label="Pareto front",
                )
                ax.scatter([p[0] for p in front], [p[1] for p in front], s=22, color=_PALETTE[0], zorder=4)
                for i in r.get(front_key) or []:
                    if (p := point(by_id.get(str(i)) or {}, x)) is not None:
                        ax.annotate(f"#{i}", p, fontsize=6, xytext=(3, 3), textcoords="offset points")
            if (p := point(baseline, x)) is not None:
                drawn = True
                ax.scatter([p[0]], [p[1]], marker="*", s=110, color="#1b1f24", zorder=5, label="hand-designed baseline")
            if chosen is not None and (p := point(chosen, x)) is not None:
                ax.scatter(
                    [p[0]],
                    [p[1]],
                    s=160,
                    facecolors="none",
                    edgecolors=_PALETTE[3],
                    linewidths=2,
                    zorder=6,
                    label="chosen",
                )
            if x == "latency_p50_ms":
                skipped = [t["predicted_latency_ms"] for t in trials if t.get("status") == "skipped"]
                skipped = [v for v in skipped if v]
                if skipped:  # no accuracy (not trained): a tick on the x axis at the predicted latency
                    ax.scatter(
                        skipped,
                        [0.0] * len(skipped),
                        transform=ax.get_xaxis_transform(),
                        marker="^",
                        s=30,
                        facecolors="none",
                        edgecolors=_PALETTE[1],
                        clip_on=False,
                        zorder=5,
                        label="skipped (predicted latency)",
                    )
                    # The axis transform leaves the data limits alone: widen them, or a tick falls outside.
                    ax.dataLim.update_from_data_xy([[v, 0.0] for v in skipped], ignore=False, updatey=False)
                    ax.autoscale_view()
                _ms_axis(ax)
                _narrow_log(ax, fmt_ms)
                ax.set_ylabel("accuracy (deployed file, validation rows)")
                ax.set_title("accuracy vs measured p50", fontsize=9)
            else:
                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_bytes(v)))
                ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
                _narrow_log(ax, fmt_bytes)
                xlabel = "size of the deployed file (raw, log scale)"
                ax.set_title("accuracy vs size", fontsize=9)
            ax.set_xlabel(xlabel)
            ax.margins(0.12)
            ax.grid(alpha=0.3)
        if not drawn:
            return "<p>No trial was measured: nothing to draw (the table says why).</p>"
        legend = {}
        for ax in axes:
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                legend.setdefault(label, handle)
        axes[1].legend(legend.values(), legend.keys(), fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        return self.charts.svg(fig, "every trial's accuracy against measured latency and size, with the Pareto fronts")

    def _nas_curve_figure(self, r: dict[str, Any], trials: list[dict[str, Any]], baseline: dict[str, Any]) -> str:
        from edge_opt.nas.pareto import hypervolume

        rnd = r.get("random_search") if isinstance(r.get("random_search"), dict) else None
        fig, axes = self.charts.figure(8.0, 2.9, ncols=2)
        series = [("this search", r, _PALETTE[0], "-")]
        if rnd is not None:
            series.append(("random search, equal trials", rnd, _PALETTE[1], "--"))
        drawn = False
        for name, s, color, ls in series:
            best = [(i, v) for i, v in enumerate(s.get("best_so_far") or [], start=1) if v is not None]
            if best:
                drawn = True
                axes[0].step(
                    [b[0] for b in best],
                    [b[1] for b in best],
                    where="post",
                    color=color,
                    ls=ls,
                    marker="o",
                    ms=3,
                    label=f"{name} ({s.get('oracle') or r.get('oracle')})" if s is r else name,
                )
            hv = list(enumerate(s.get("hypervolume_per_trial") or [], start=1))
            if hv:
                drawn = True
                axes[1].step(
                    [h[0] for h in hv],
                    [h[1] for h in hv],
                    where="post",
                    color=color,
                    ls=ls,
                    marker="o",
                    ms=3,
                    label=name,
                )
        if not drawn:
            return "<p>No trial scored: no best-so-far or hypervolume curve.</p>"
        if baseline.get("score") is not None:
            axes[0].axhline(baseline["score"], color=_FLOAT_COLOR, ls=":", lw=1, label="baseline's score")
        ref = r.get("reference") or {}
        m = baseline.get("metrics") or {}
        if ref.get("latency_ms") and m.get("accuracy") is not None and m.get("latency_p50_ms"):
            base_hv = hypervolume([(m["accuracy"], m["latency_p50_ms"])], (ref.get("accuracy", 0.0), ref["latency_ms"]))
            axes[1].axhline(base_hv, color=_FLOAT_COLOR, ls=":", lw=1, label="baseline alone")
        objective = "MnasNet reward" if r.get("objective") == "soft" else "accuracy within the budgets"
        axes[0].set_title(f"best-so-far score ({objective})", fontsize=9)
        axes[1].set_title(f"hypervolume (reference {fmt_ms(ref.get('latency_ms'))})", fontsize=9)
        axes[1].set_ylabel("accuracy × ms")
        axes[0].set_ylabel("score")
        for ax in axes:
            ax.set_xlabel("trial")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6)
        return self.charts.svg(fig, "best-so-far score and hypervolume after each trial")

    def _nas_text(self, r: dict[str, Any], trials: list[dict[str, Any]], baseline: dict[str, Any]) -> str:
        """The headline, the search's extent and cost, and the predictor (a prediction, labelled so)."""
        items = []
        h = r.get("headline") or None
        if h and h.get("trial") is not None:
            items.append(
                f"<b>Headline</b>: trial #{_e(h['trial'])} <b>{_e(h.get('label'))}</b> is the fastest member of the "
                f"accuracy–latency front within {_e(h.get('within_points', 0.5))} points of the hand-designed "
                f"baseline: accuracy {h['accuracy']:.4f} vs {h['baseline_accuracy']:.4f}, p50 "
                f"{fmt_ms(h['latency_p50_ms'])} vs {fmt_ms(h['baseline_latency_p50_ms'])}, "
                f"<b>{h['speedup']:.2f}×</b> the baseline's speed."
                + (
                    f" Measured again, paired ({h['confirmed']['order']}, {h['confirmed']['rounds']} rounds): "
                    f"<b>{h['confirmed']['speedup']:.2f}×</b>."
                    if h.get("confirmed")
                    else ""
                )
            )
        elif h:
            items.append(f"<b>Headline</b>: {_e(h.get('note'))} (within {_e(h.get('within_points', 0.5))} points).")
        else:
            items.append("<b>Headline</b>: none (the baseline was not measured).")
        statuses = r.get("statuses") or {}
        counts = ", ".join(f"{n} {s}" for s, n in statuses.items() if n)
        t_ms = r.get("latency_target_ms")
        items.append(
            f"<b>{_e(r.get('trials_used', len(trials)))}</b> trial(s) of a <b>{r.get('grid_size') or 0:,}</b>-"
            f"point grid ({_e(counts or 'none')}); oracle {_e(r.get('oracle'))}, {_e(r.get('objective'))} objective"
            + (f", T = {_e(fmt_ms(t_ms))} (p90 target)" if t_ms else "")
            + f"; trials to within {100 * (r.get('target_distance') or 0):g}% of the final best: "
            f"{_e(r.get('trials_to_target') if r.get('trials_to_target') is not None else '–')}."
        )
        cost = r.get("cost_s") or {}
        total = sum(v for v in cost.values() if isinstance(v, int | float))
        split = ", ".join(
            f"{k} {v:g} s ({v / total:.0%})" if total else f"{k} {v:g} s" for k, v in cost.items() if v is not None
        )
        wall = f"; wall clock of the search {r['wall_s']:g} s" if r.get("wall_s") is not None else ""
        reused = f"; {r['reused_trials']} trial(s) reused from a killed search" if r.get("reused_trials") else ""
        items.append(f"<b>Cost</b> of the trials: {_e(split or '–')}{_e(wall)}{_e(reused)}.")
        items.append(
            f"<b>Hypervolume</b> (accuracy × p50, reference accuracy {_e((r.get('reference') or {}).get('accuracy'))}"
            f" and {_e(fmt_ms((r.get('reference') or {}).get('latency_ms')))}): {r.get('hypervolume') or 0:.4g}."
        )
        p = r.get("predictor")
        if p:
            acc = p.get("accuracy")
            held = (
                f"{acc['within_10pct']:.0%} of {acc['held_out']} held-out measured trials within ±10% "
                f"(median error {acc['median_relative_error']:.0%})"
                if acc
                else "too few measured trials to score it"
            )
            items.append(
                f"<b>Latency predictor</b> (a prediction, not a measurement; fitted after {_e(p.get('fitted_after'))} "
                f"measured trials): {_e(held)}; trainings saved: {_e(p.get('trainings_saved', 0))}."
            )
        else:
            items.append("<b>Latency predictor</b>: off for this search.")
        rnd = r.get("random_search")
        if isinstance(rnd, dict):
            best = [v for v in rnd.get("best_so_far") or [] if v is not None]
            items.append(
                f"<b>Random search</b> at equal trials ({len(rnd.get('trials') or [])}): hypervolume "
                f"{rnd.get('hypervolume') or 0:.4g}, best score {_e(f'{best[-1]:.4g}' if best else '–')}."
            )
        return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"

    def _nas_table(self, r: dict[str, Any], trials: list[dict[str, Any]], baseline: dict[str, Any]) -> str:
        on_lat = {str(i) for i in r.get("front_latency") or []}
        on_size = {str(i) for i in r.get("front_size") or []}
        chosen = str(r.get("chosen"))
        rows = []
        for t in [baseline, *trials] if baseline else trials:
            tid = str(t.get("trial"))
            m = t.get("metrics") or {}
            s = t.get("seconds") or {}
            hp = t.get("hyperparameters") or {}
            hps = ", ".join(f"{k}={v}" for k, v in hp.items()) if hp else "hand-designed"
            status = _e(t.get("status"))
            if t.get("reason"):
                status += f": {_e(t['reason'])}"
            fronts = [n for n, ids in (("latency", on_lat), ("size", on_size)) if tid in ids]
            mark = ("chosen · " if tid == chosen and tid != "baseline" else "") + " + ".join(fronts)
            size = f"{fmt_bytes(m.get('size_raw'))} / {fmt_bytes(m.get('size_gzip'))}" if m.get("size_raw") else "–"
            secs = " / ".join(f"{s.get(k, 0):.2f}" for k in ("train", "convert", "measure"))
            rows.append(
                [
                    _e(tid),
                    _e(t.get("label")),
                    f"<small>{_e(hps)}</small>",
                    f'<span class="nas-{_slug(t.get("status"))}">{status}</span>',
                    "–" if m.get("accuracy") is None else f"{m['accuracy']:.4f}",
                    fmt_ms(m.get("latency_p50_ms")),
                    _e(size),
                    secs,
                    "–" if t.get("score") is None else f"{t['score']:.4f}",
                    _e(mark),
                ]
            )
        head = [
            "trial",
            "architecture",
            "hyperparameters",
            "status",
            "accuracy",
            "p50",
            "size raw / gzip",
            "train / convert / measure s",
            "score",
            "front",
        ]
        return _table(head, rows, {4, 5, 6, 7, 8}) + (
            "<p>Accuracy is the deployed file's on the search's validation rows; latency is the harness's median "
            "on the target's runtime (the target's host proxy here when the device is not attached). A rejected "
            "trial broke a budget; a skipped one was not trained (its latency is a prediction); a failed one did "
            "not build, convert or measure.</p>"
        )

    def _nas_summary(self, r: dict[str, Any]) -> str:
        """Without nas.json: what results.json keeps of the search (no trials, so no charts)."""
        h = r.get("headline") or {}
        head = (
            f"{h['label']}: {h['speedup']:.2f}× the baseline's speed at accuracy {h['accuracy']:.4f} "
            f"(baseline {h['baseline_accuracy']:.4f})"
            if h.get("trial") is not None
            else (h.get("note") or "–")
        )
        hp = ", ".join(f"{k}={v}" for k, v in (r.get("hyperparameters") or {}).items()) or "–"
        rows = [
            ["chosen", _e(f"#{r.get('chosen')} {r.get('architecture')}" if r.get("chosen") else r.get("architecture"))],
            ["hyperparameters", _e(hp)],
            ["score", _e("–" if r.get("score") is None else f"{r['score']:.4f}")],
            ["trials / grid", _e(f"{r.get('trials')} / {r.get('grid_size', 0):,}")],
            ["oracle, objective", _e(f"{r.get('oracle')}, {r.get('objective')}")],
            ["front (accuracy × latency)", _e(", ".join(f"#{i}" for i in r.get("front_latency") or []) or "–")],
            ["hypervolume", _e(f"{r.get('hypervolume', 0):.4g}")],
            ["headline", _e(head)],
        ]
        return _table(["", ""], rows) + (
            "<p>nas.json is not in this run folder (or not readable): the summary of results.json is shown; the "
            "charts need every trial's record.</p>"
        )

    def render(self) -> str:
        parts = [self.safe("summary", self.sid("summary"), "Run", self.summary)]
        for task in self.tasks():
            parts.append(f'<h2 id="{self.sid("task", task)}">Task {_e(task)}</h2>')
            for target in self.results.get("targets") or {}:
                parts.append(f"<h2 class=target>{_e(task)} · {_e(target)}</h2>")
                for kind in ("tradeoff", "latency", "size", "memory", "roofline"):
                    fn = getattr(self, kind)
                    parts.append(self.safe(kind, self.sid(kind, task, target), f"{target}: {kind}", fn, task, target))
            parts.append(f"<h2>{_e(task)}: trust checks on the deployed files</h2>")
            for kind in ("slices", "fairness", "robustness", "attributions"):
                fn = getattr(self, kind)
                parts.append(self.safe(kind, self.sid(kind, task), kind, fn, task))
            parts.append(self.nas_block(task))
        parts.append("<h2>Run</h2>")
        parts.append(self.safe("lineage", self.sid("lineage"), "Lineage", self.lineage))
        parts.append(self.safe("gate", self.sid("gate"), "Gate verdicts", self.gate))
        for task in self.tasks():
            parts.append(self.safe("trend", self.sid("trend", task), "Latency trend", self.trend, task))
        for task in [t for t in self.nas_data()[0] if t not in self.tasks()]:  # a search with no measurement
            parts.append(self.nas_block(task))
        return "".join(parts)

    def nas_block(self, task: str) -> str:
        targets = self.nas_targets(task)
        if not targets:
            return ""
        parts = [f"<h2>{_e(task)}: architecture search</h2>"]
        for target in targets:
            sid = self.sid("nas", task, target)
            parts.append(self.safe("nas", sid, f"{target}: architecture search", self.nas, task, target))
        return "".join(parts)


# ------------------------------------------------------------------------------------ the page

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;padding:1em 1.5em;
max-width:1500px;color:#1b1f24;background:#fff}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #d0d7de;margin-top:1.8em}h3{font-size:1.02em}
table{border-collapse:collapse;margin:.5em 0;font-size:12px}td,th{border:1px solid #d0d7de;padding:2px 6px;
text-align:left;vertical-align:top}td.num,th.num{text-align:right;white-space:nowrap}
.runs{display:grid;gap:1.5em}.runs>div{min-width:0}.chart svg{max-width:100%;height:auto}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;font-size:12px}
.v-pass{color:#1a7f37}.v-fail{color:#cf222e}.v-skip{color:#9a6700}.section-error{color:#cf222e}
nav{font-size:12px;columns:3}nav a{color:#0969da}
"""


def render_html(views: list[RunView]) -> str:
    """The page: one run, or several side by side (a comparison chart per task and target first)."""
    if not views:
        raise ValueError("render_html needs at least one run")
    pages = [_Page(v, i) for i, v in enumerate(views)]
    bodies = [p.render() for p in pages]
    title = "edge-opt · " + " vs ".join(v.results["run_id"] for v in views)
    head = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
    )
    parts = [head, f"<h1>{_e(title)}</h1>"]
    if len(views) > 1:
        parts.append(_compare(pages))
    nav = "".join(
        f'<a href="#{_e(m.group(1))}">{_e(m.group(1))}</a><br>'
        for m in re.finditer(r'<section id="([^"]+)"', "".join(bodies))
    )
    parts.append(f"<nav>{nav}</nav>")
    cols = f"grid-template-columns:repeat({len(views)},minmax(0,1fr))"
    parts.append(f'<div class="runs" style="{cols}">' + "".join(f"<div>{b}</div>" for b in bodies) + "</div>")
    parts.append("<p><small>Written by edge-opt; a self-contained page, no script, no link outside it.</small></p>")
    parts.append("</body></html>")
    return "".join(parts)


def _compare(pages: list[_Page]) -> str:
    """Runs side by side: every candidate of each run on one latency–accuracy chart per task and target."""
    charts = _Charts("cmp")
    out = []
    tasks = sorted({t for p in pages for t in p.tasks()})
    for task in tasks:
        targets = list(dict.fromkeys(t for p in pages for t in (p.results.get("targets") or {})))
        for target in targets:
            fig, ax = charts.figure(7.0, 3.4)
            drawn = False
            rows = []
            for i, p in enumerate(pages):
                recs = p.records(task, target)
                pts = [
                    r for r in recs if r.get("status") == "ok" and r.get("accuracy") is not None and r.get("latency_ms")
                ]
                front = pareto_frontier(recs)
                color = _PALETTE[i % len(_PALETTE)]
                name = p.results["run_id"]
                if pts:
                    drawn = True
                    ax.scatter(
                        [r["latency_ms"]["p50"] for r in pts],
                        [r["accuracy"] for r in pts],
                        s=14,
                        color=color,
                        alpha=0.5,
                    )
                    ax.plot(
                        [r["latency_ms"]["p50"] for r in front],
                        [r["accuracy"] for r in front],
                        "-o",
                        ms=4,
                        color=color,
                        label=f"{name} frontier",
                    )
                sel = p.selections().get(target)
                chosen = sel.chosen if sel is not None else None
                rows.append(
                    [
                        _e(name),
                        _e(((p.results.get("provenance") or {}).get("machine") or {}).get("cpu", "?")),
                        _e(_label(chosen)) if chosen else "none",
                        fmt_ms((chosen or {}).get("latency_ms", {}).get("p50")) if chosen else "–",
                    ]
                )
            sid = f"cmp-{_slug(task)}-{_slug(target)}"
            body = ""
            if drawn:
                _ms_axis(ax)
                ax.set_xlabel("median latency (log scale)")
                ax.set_ylabel("accuracy")
                ax.grid(alpha=0.3)
                ax.legend(fontsize=7)
                ax.set_title(f"{task} · {target}")
                body = charts.svg(fig, f"{target}: candidates of every run")
            body += _table(["run", "machine", "chosen", "p50"], rows, {3})
            out.append(_section("compare", sid, f"{task} · {target}: runs compared", body))
    return "<h2>Runs compared</h2>" + "".join(out)


def write_html(path: str | Path, views: list[RunView]) -> Path:
    from edge_opt.core.fileio import write_text_atomic

    return write_text_atomic(path, render_html(views))
