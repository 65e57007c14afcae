"""The building blocks of report.html: inline SVG figures, log axes, escaping, tables and sections.

Figures are drawn with matplotlib (Agg, no pyplot; imported only when a figure is drawn) and
inlined as SVG without prolog, namespaces or metadata, with ids unique on the page, so the page
holds no URL of any kind.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from edge_opt.core.units import fmt_ms

#: The colours of the charts, in the order series take them.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
#: The float model and a deployed file, wherever the two are drawn side by side.
FLOAT_COLOR, ARTIFACT_COLOR = "#7f7f7f", "#1f77b4"


class Charts:
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
        return f'<div class="chart" role="img" aria-label="{esc(alt)}">{_clean_svg(buf.getvalue())}</div>'


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


def ms_axis(ax, axis: str = "x") -> None:
    """A log axis of latencies, labelled in ms (no minor labels)."""
    from matplotlib.ticker import FuncFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    target.set_major_formatter(FuncFormatter(lambda v, _: fmt_ms(v)))
    target.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def narrow_log(ax, fmt: Callable[[float], str]) -> None:
    """A log x axis whose data span less than a decade: three labelled ticks across the data (else one or none)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    lo, hi = ax.dataLim.intervalx
    if lo > 0 and math.isfinite(hi) and hi / lo < 10:
        ax.xaxis.set_major_locator(FixedLocator(np.geomspace(lo, hi, 3) if hi > lo else [lo]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))
        ax.xaxis.set_minor_locator(NullLocator())


def value_axis(ax, fmt: Callable[[float], str]) -> None:
    """The x axis labelled with ``fmt`` (bytes, MiB, ...)."""
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))


def esc(text: Any) -> str:
    """Text made safe for HTML, in an element or in a quoted attribute."""
    return html.escape(str(text), quote=True)


def slug(text: Any) -> str:
    """Text as a piece of an element id: letters, digits, ``_`` and ``-`` only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)).strip("-") or "x"


def table(head: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    """A table: ``head`` is escaped, the cells of ``rows`` are HTML already; columns in ``numeric`` align right."""
    numeric = numeric or set()
    th = "".join(f"<th{' class=num' if i in numeric else ''}>{esc(h)}</th>" for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(f"<td{' class=num' if i in numeric else ''}>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def section(kind: str, sid: str, title: str, body: str, attrs: str = "") -> str:
    """One ``<section data-section=KIND>`` with its id, title and body (``attrs`` are added as they are)."""
    return f'<section id="{esc(sid)}" data-section="{kind}"{attrs}><h3>{esc(title)}</h3>{body}</section>'
