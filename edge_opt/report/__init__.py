"""Rendering a stored run: report.md, report.json, checks.md, model_card.md / .json and report.html.

The runner calls ``write_reports`` after the store has written the run; ``edge-opt report``
renders report.html again from finished runs.
"""

from __future__ import annotations

from pathlib import Path

from edge_opt.analysis.checks import checks_markdown
from edge_opt.core.fileio import write_json_atomic, write_text_atomic
from edge_opt.report.card import write_cards
from edge_opt.report.html import write_html
from edge_opt.report.markdown import render_json, render_markdown
from edge_opt.store import load_view


def write_reports(run_dir: Path, results: dict) -> None:
    """report.md, checks.md (when the run has trust checks), report.json, the model cards and
    report.html of a stored run."""
    view = load_view(run_dir, results)
    write_text_atomic(run_dir / "report.md", render_markdown(results, view.lineage))
    if results.get("checks"):
        write_text_atomic(run_dir / "checks.md", checks_markdown(results["checks"]))
    write_json_atomic(run_dir / "report.json", render_json(results))
    write_cards(run_dir, results)
    write_html(run_dir / "report.html", [view])
