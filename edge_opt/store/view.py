"""A stored run as a report reads it: its results, lineage and the history beside it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_opt.core.errors import EdgeOptError
from edge_opt.core.lineage import lineage_lines, load_manifests
from edge_opt.store.history import TrendPoint, read_history
from edge_opt.store.run import check_samples, load_run


@dataclass(frozen=True)
class RunView:
    """What the page shows of one run: its results, lineage and the history beside it."""

    run_dir: Path
    results: dict[str, Any]
    lineage: list[str] | None
    history: tuple[TrendPoint, ...]
    history_note: str


def load_view(run_dir: str | Path, results: dict[str, Any] | None = None) -> RunView:
    """A run folder (finished, or being staged by ``store.write_run``) as a RunView."""
    run_dir = Path(run_dir)
    if results is None:
        results = load_run(run_dir)
    check_samples(run_dir, results)
    lineage = None
    if (run_dir / "artifacts").is_dir():
        try:
            lineage = lineage_lines(load_manifests(run_dir))
        except EdgeOptError:
            lineage = None
    history, note = read_history(run_dir.parent / "history.sqlite", results)
    return RunView(run_dir, results, lineage, history, note)
