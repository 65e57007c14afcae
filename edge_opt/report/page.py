"""What every section of report.html reads of one run: its view, its results, its ids and its selections.

A :class:`Page` is the context of one run on the page: the section functions (``performance``,
``trust``, ``search``, ``html``) take it first. It holds one chart counter, so the SVG ids stay
unique on the page, and it computes what several sections share (the selections) only once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge_opt.report.charts import Charts, slug
from edge_opt.report.markdown import selections
from edge_opt.store import RunView


class Page:
    """One run on the page: ``prefix`` (``r0``, ``r1``, ...) starts every id of its sections."""

    def __init__(self, view: RunView, index: int) -> None:
        self.view = view
        self.results = view.results
        self.prefix = f"r{index}"
        self.charts = Charts(self.prefix)
        self._memo: dict[str, Any] = {}

    def sid(self, *parts: str) -> str:
        """The id of a section of this run: the prefix and the parts, slugged."""
        return "-".join([self.prefix, *(slug(p) for p in parts)])

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, once per page: what several sections read of the run."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def selections(self) -> dict[tuple[str | None, str], Any]:
        """(task, target) -> its Selection (the profiles' budgets)."""
        return self.memo("selections", lambda: selections(self.results))

    def tasks(self) -> list[str]:
        """The tasks with a measurement, sorted."""
        return sorted({r.get("task") for r in self.results["measurements"] if r.get("task")})

    def records(self, task: str, target: str) -> list[dict[str, Any]]:
        """The measurements of one task on one target, in the run's order."""
        return [r for r in self.results["measurements"] if r.get("task") == task and r.get("target") == target]

    def checked(self, task: str) -> list[dict[str, Any]]:
        """The trust checks' entries of a task, one per checked artifact."""
        checks = (self.results.get("checks") or {}).get(task) or {}
        return [e for e in (checks.get("artifacts") or {}).values() if isinstance(e, dict)]
