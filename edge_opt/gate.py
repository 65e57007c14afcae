"""The release gate: a run's budgets judged per target, VALID or INVALID, as text, JSON, JUnit or Markdown."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_opt.budgets.choose import Selection, checked_record, choose, record_label
from edge_opt.budgets.grammar import Check, profile_budgets
from edge_opt.core.errors import ConfigError


@dataclass(frozen=True)
class GateRow:
    target: str
    check: str  # the check spec; "(all)" for a row about the whole target
    record: str  # e.g. "tflite-int8 · litert · 1 thread"; "" when there is no record
    verdict: str  # PASS / FAIL / SKIP
    message: str
    record_id: str | None = None
    actual: float | None = None


@dataclass
class GateReport:
    rows: list[GateRow] = field(default_factory=list)
    allow_skipped: bool = False
    selections: dict[str, Selection] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        ok = {"PASS", "SKIP"} if self.allow_skipped else {"PASS"}
        return bool(self.rows) and all(r.verdict in ok for r in self.rows)

    @property
    def verdict(self) -> str:
        """One line: VALID or INVALID and why; when only skipped rows fail, the way out."""
        skipped = sum(r.verdict == "SKIP" for r in self.rows)
        if self.passed:
            return f"VALID: all budgets met ({skipped} skipped, allowed)" if skipped else "VALID: all budgets met"
        if skipped and all(r.verdict in ("PASS", "SKIP") for r in self.rows):
            return (
                f"INVALID: only skipped measurements fail ({skipped} check{'s' if skipped > 1 else ''} "
                "could not run here); pass --allow-skipped to let skipped measurements pass"
            )
        return "INVALID: a budget is not met"

    def to_dict(self) -> dict[str, Any]:
        counts = {v: sum(r.verdict == v for r in self.rows) for v in ("PASS", "FAIL", "SKIP")}
        return {
            "passed": self.passed,
            "verdict": self.verdict,
            "allow_skipped": self.allow_skipped,
            "counts": counts,
            "rows": [asdict(r) for r in self.rows],
            "selections": {t: s.to_dict() for t, s in self.selections.items()},
        }


def _rows(report: GateReport, target: str, record: dict[str, Any], checks: list[Check], note: str = "") -> None:
    label = record_label(record)
    for check in checks:
        res = check.evaluate(record)
        verdict = {True: "PASS", False: "FAIL", None: "SKIP"}[res.passed]
        report.rows.append(
            GateRow(target, check.spec, label, verdict, res.message + note, record.get("id"), res.actual)
        )


def _rows_for_choice(
    report: GateReport, target: str, chosen: dict[str, Any], checks: list[Check], results: dict[str, Any]
) -> None:
    """Measurement budgets on the chosen record; trust budgets on the record the checks ran on.

    The trust checks ran during the run, on the artifact chosen with the profile's budgets.
    With other budgets the gate may choose another file: its trust budgets are then still
    held to the checked record, and every such row says that the choice differs.
    """
    _rows(report, target, chosen, [c for c in checks if not c.trust])
    trust = [c for c in checks if c.trust]
    if not trust:
        return
    checked = checked_record(results, target, chosen.get("task")) or chosen
    same_file = (checked.get("artifact") or {}).get("sha256") == (chosen.get("artifact") or {}).get("sha256")
    note = (
        ""
        if checked is chosen or same_file
        else f" (trust checks ran on {record_label(checked)}; these budgets choose {record_label(chosen)}, "
        f"which they did not check)"
    )
    _rows(report, target, checked, trust, note)


def evaluate(
    results: dict[str, Any],
    budgets: dict[str, list[Check]] | None = None,
    allow_skipped: bool = False,
    every: bool = False,
    source: str | Path | None = None,
) -> GateReport:
    """Evaluate each target's checks (not on the float reference).

    By default a target passes when one of its candidates meets every check: the gate
    reports the chosen one (the fastest that fits, see ``choose``) and why the others
    lost. When none fits, or with ``every=True``, every record's checks are reported,
    and with ``every=True`` each must pass. ``budgets=None`` uses the profiles' own
    ``budgets``. A failed record fails every check; a skipped one gives SKIP, which
    fails the gate unless ``allow_skipped``. A budgeted target with no records, and an
    empty gate, are FAILs; budgets for a target the run does not have are a ConfigError
    (prefixed with ``source``, the budgets file).
    """
    targets = results.get("targets") or {}
    records = [r for r in results.get("measurements") or [] if r.get("target") is not None]
    if budgets is None:
        budgets = profile_budgets(results)
    report = GateReport(allow_skipped=allow_skipped)
    for name, checks in budgets.items():
        if not checks:
            continue
        if name not in targets:  # a typo or another run's budgets: the budgets are wrong, not the run
            where = f"{source}: " if source else ""
            raise ConfigError(
                f"{where}budgets name target '{name}', which is not in this run; "
                f"its targets: {', '.join(targets) or 'none'}"
            )
        mine = [r for r in records if r.get("target") == name]
        if not mine:
            report.rows.append(GateRow(name, "(all)", "", "FAIL", f"no measurements for target {name} in this run"))
            continue
        if not every:
            selection = report.selections[name] = choose(name, mine, checks)
            if selection.chosen is not None:
                _rows_for_choice(report, name, selection.chosen, checks, results)
                continue
        for record in mine:
            _rows(report, name, record, checks)
    if not report.rows:
        report.rows.append(GateRow("(none)", "(all)", "", "FAIL", "no budgets to check: no target has any checks"))
    return report


def to_junit(report: GateReport, run_id: str) -> str:
    """JUnit XML for CI: a test suite per target, a test case per check; failures carry the reason."""
    import xml.etree.ElementTree as ET

    counts = report.to_dict()["counts"]
    root = ET.Element(
        "testsuites",
        name=f"edge-opt gate {run_id}",
        tests=str(len(report.rows)),
        failures=str(counts["FAIL"]),
        skipped=str(counts["SKIP"]),
        errors="0",
    )
    for target in dict.fromkeys(r.target for r in report.rows):
        rows = [r for r in report.rows if r.target == target]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=target,
            tests=str(len(rows)),
            failures=str(sum(r.verdict == "FAIL" for r in rows)),
            skipped=str(sum(r.verdict == "SKIP" for r in rows)),
            errors="0",
        )
        for r in rows:
            name = r.check + (f" [{r.record}]" if r.record else "")
            case = ET.SubElement(suite, "testcase", classname=f"edge-opt.gate.{target}", name=name)
            if r.verdict == "FAIL":
                ET.SubElement(case, "failure", message=r.message, type="budget").text = r.message
            elif r.verdict == "SKIP":
                ET.SubElement(case, "skipped", message=r.message)
            ET.SubElement(case, "system-out").text = r.message
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def to_markdown(report: GateReport, run_id: str) -> str:
    """A CI job summary: the verdict, the counts, a row per check and the choice per target."""
    counts = report.to_dict()["counts"]
    verdict = "VALID: every budget met" if report.passed else "INVALID: a budget is not met"
    lines = [
        f"## edge-opt gate · {run_id}: {verdict}",
        "",
        f"{counts['PASS']} pass · {counts['FAIL']} fail · {counts['SKIP']} skipped"
        + (
            " (skipped allowed)"
            if report.allow_skipped
            else " (a skipped check fails the gate; --allow-skipped lets it pass)"
            if counts["SKIP"]
            else ""
        ),
        "",
        "| target | measurement | check | verdict | reason |",
        "|---|---|---|---|---|",
    ]
    mark = {"PASS": "✅ PASS", "FAIL": "❌ FAIL", "SKIP": "⚠️ SKIP"}
    for r in report.rows:
        cells = [r.target, r.record or "–", r.check, mark[r.verdict], r.message]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if report.selections:
        lines += ["", "Chosen per target:", ""]
        for target, sel in report.selections.items():
            shown = f"{record_label(sel.chosen)}{sel.tie_note()}" if sel.chosen else "none (no candidate fits)"
            lines.append(f"- **{target}**: {shown}; {len(sel.rejected)} other candidate(s) rejected")
    return "\n".join(lines) + "\n"
