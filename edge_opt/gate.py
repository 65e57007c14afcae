"""The release gate: a run's budgets judged per target, VALID or INVALID, as text, JSON, JUnit or Markdown."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_opt.budgets.choose import (
    Selection,
    checked_record,
    choose,
    choose_each,
    has_reference,
    record_label,
    task_targets,
)
from edge_opt.budgets.grammar import Check, profile_budgets
from edge_opt.core.errors import ConfigError


@dataclass(frozen=True)
class GateRow:
    target: str
    check: str  # the check spec; "(all)" for a row about the whole target
    record: str  # e.g. "tflite-int8 · litert · 1 thread"; "" when there is no record
    verdict: str  # PASS / FAIL / SKIP / N/A (a budget that cannot apply: no float model to compare with)
    message: str
    record_id: str | None = None
    actual: float | None = None
    task: str | None = None  # the suite's task (model) the record belongs to

    @property
    def where(self) -> str:
        """``task · target`` (or the target alone for a row about no task)."""
        return f"{self.task} · {self.target}" if self.task else self.target


VERDICTS = ("PASS", "FAIL", "SKIP", "N/A")


@dataclass
class GateReport:
    rows: list[GateRow] = field(default_factory=list)
    allow_skipped: bool = False
    selections: dict[tuple[str | None, str], Selection] = field(default_factory=dict)  # (task, target) ->
    strict: bool = False

    @property
    def passed(self) -> bool:
        ok = {"PASS", "N/A", "SKIP"} if self.allow_skipped else {"PASS", "N/A"}
        return bool(self.rows) and all(r.verdict in ok for r in self.rows)

    @property
    def verdict(self) -> str:
        """One line: VALID or INVALID and why; when only skipped rows fail, the way out."""
        skipped = sum(r.verdict == "SKIP" for r in self.rows)
        if self.passed:
            return f"VALID: all budgets met ({skipped} skipped, allowed)" if skipped else "VALID: all budgets met"
        if skipped and all(r.verdict in ("PASS", "SKIP", "N/A") for r in self.rows):
            return (
                f"INVALID: only skipped measurements fail ({skipped} check{'s' if skipped > 1 else ''} "
                "could not run here); pass --allow-skipped to let skipped measurements pass"
            )
        return "INVALID: a budget is not met"

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "verdict": self.verdict,
            "allow_skipped": self.allow_skipped,
            "strict": self.strict,
            "counts": self.counts(),
            "rows": [asdict(r) for r in self.rows],
            "selections": [s.to_dict() for s in self.selections.values()],
        }

    def counts(self) -> dict[str, int]:
        return {v: sum(r.verdict == v for r in self.rows) for v in VERDICTS}


def _rows(
    report: GateReport, target: str, record: dict[str, Any], checks: list[Check], note: str = "", reference=True
) -> None:
    label, task = record_label(record), record.get("task")
    for check in checks:
        res = check.evaluate(record, reference)
        verdict = {True: "PASS", False: "FAIL", None: "SKIP"}[res.passed] if res.applies else "N/A"
        message = res.message + note
        if verdict == "N/A" and report.strict:
            verdict, message = "FAIL", message + " (--strict: a budget that cannot apply fails)"
        report.rows.append(GateRow(target, check.spec, label, verdict, message, record.get("id"), res.actual, task))


def _rows_for_choice(
    report: GateReport, target: str, chosen: dict[str, Any], checks: list[Check], results: dict[str, Any]
) -> None:
    """Measurement budgets on the chosen record; trust budgets on the record the checks ran on.

    The trust checks ran during the run, on the artifact chosen with the profile's budgets.
    With other budgets the gate may choose another file: its trust budgets are then still
    held to the checked record, and every such row says that the choice differs.
    """
    reference = has_reference(results.get("measurements") or [], chosen.get("task"))
    _rows(report, target, chosen, [c for c in checks if not c.trust], reference=reference)
    trust = [c for c in checks if c.trust]
    if not trust:
        return
    # every candidate checked (checks: candidates: all): the chosen record carries its own checks
    checked = chosen if chosen.get("checks") else (checked_record(results, target, chosen.get("task")) or chosen)
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
    strict: bool = False,
) -> GateReport:
    """Evaluate each target's checks on every task (model) of the run (not on the float references).

    By default a task's target passes when one of its candidates meets every check: the
    gate reports the chosen one (the fastest that fits, see ``choose``) and why the others
    lost. When none fits, or with ``every=True``, every record's checks are reported,
    and with ``every=True`` each must pass. ``budgets=None`` uses the profiles' own
    ``budgets``. A failed record fails every check; a skipped one gives SKIP, which
    fails the gate unless ``allow_skipped``. A check against the float model on a task that
    has none (a deployed file) is N/A, which passes unless ``strict``. A budgeted target with
    no records, and an empty gate, are FAILs; budgets for a target the run does not have are
    a ConfigError (prefixed with ``source``, the budgets file).
    """
    targets = results.get("targets") or {}
    records = [r for r in results.get("measurements") or [] if r.get("target") is not None]
    budgets = profile_budgets(results) if budgets is None else budgets
    report = GateReport(allow_skipped=allow_skipped, strict=strict)
    pairs = task_targets(results)
    for name, checks in budgets.items():
        if not checks:
            continue
        if name not in targets:  # a typo or another run's budgets: the budgets are wrong, not the run
            where = f"{source}: " if source else ""
            raise ConfigError(
                f"{where}budgets name target '{name}', which is not in this run; "
                f"its targets: {', '.join(targets) or 'none'}"
            )
        if not any(target == name for _, target in pairs):
            report.rows.append(GateRow(name, "(all)", "", "FAIL", f"no measurements for target {name} in this run"))
        for task in (task for task, target in pairs if target == name):
            _judge(
                report,
                task,
                name,
                [r for r in records if r.get("task") == task and r.get("target") == name],
                checks,
                results,
                every,
            )
    if not report.rows:
        report.rows.append(GateRow("(none)", "(all)", "", "FAIL", "no budgets to check: no target has any checks"))
    return report


def _judge(
    report: GateReport,
    task: str | None,
    target: str,
    mine: list[dict[str, Any]],
    checks: list[Check],
    results: dict[str, Any],
    every: bool,
) -> None:
    """One task's target: its choice and the chosen record's rows, or (none fits, or ``every``) every record's."""
    reference = has_reference(results.get("measurements") or [], task)
    if not every:
        selection = choose(target, mine, checks, task=task, reference=reference, strict=report.strict)
        report.selections[task, target] = selection
        if selection.chosen is not None:
            _rows_for_choice(report, target, selection.chosen, checks, results)
            return
    for record in mine:
        _rows(report, target, record, checks, reference=reference)


@dataclass(frozen=True)
class ShipVerdict:
    """What to ship for one task's target: the chosen record and whether its profile's budgets hold.

    ``verdict`` is PASS (every budget met, or one that cannot apply), FAIL (no candidate fits,
    or a trust budget fails on the checked file), SKIP (a budget could not be measured here)
    or "no budgets" (the profile has none: the fastest candidate is shown). ``reasons`` are the
    failed and skipped checks, each "check: why".
    """

    task: str | None
    target: str
    chosen: dict[str, Any] | None
    verdict: str
    reasons: tuple[str, ...] = ()
    checks: int = 0  # how many budget rows judged this task's target

    @property
    def where(self) -> str:
        return f"{self.task} · {self.target}" if self.task else self.target

    @property
    def text(self) -> str:
        """``PASS (3 budgets)``, ``FAIL: why; why``, ``SKIP: why`` or ``no budgets``."""
        if self.verdict == "PASS":
            return f"PASS ({self.checks} budget{'s' if self.checks != 1 else ''})"
        if self.verdict in ("FAIL", "SKIP"):
            shown = "; ".join(self.reasons[:2])
            more = len(self.reasons) - 2
            return f"{self.verdict}: {shown}" + (f" (and {more} more: edge-opt gate RUN)" if more > 0 else "")
        return self.verdict

    def to_dict(self) -> dict[str, Any]:
        rec = self.chosen or {}
        art, rt = rec.get("artifact") or {}, rec.get("runtime") or {}
        return {
            "task": self.task,
            "target": self.target,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "checks": self.checks,
            "artifact": art.get("label"),
            "artifact_id": art.get("id"),
            "path": art.get("path"),
            "runtime": rt.get("name"),
            "threads": rt.get("threads"),
            "p50_ms": (rec.get("latency_ms") or {}).get("p50"),
        }


def ship_verdicts(results: dict[str, Any], report: GateReport | None = None) -> list[ShipVerdict]:
    """Per (task, target): the artifact to ship and the verdict of the profile's own budgets
    (``report``: the gate of those budgets, evaluated here when not given)."""
    budgets = profile_budgets(results)
    report = evaluate(results, budgets) if report is None and any(budgets.values()) else report
    out = []
    for (task, target), sel in choose_each(results, budgets).items():
        if not budgets.get(target):
            out.append(ShipVerdict(task, target, sel.chosen, "no budgets"))
            continue
        rows = [r for r in report.rows if r.task == task and r.target == target] if report else []
        verdict = next((v for v in ("FAIL", "SKIP") if any(r.verdict == v for r in rows)), "PASS")
        if sel.chosen is None:
            if verdict == "FAIL":
                reasons = ["no candidate meets every budget", *dict.fromkeys(why for _, why in sel.rejected)]
            else:  # every candidate was skipped: say why each could not run here
                reasons = [
                    "nothing could be measured here",
                    *dict.fromkeys(str(r.get("error")) for r, _ in sel.rejected),
                ]
            verdict = "FAIL" if verdict == "PASS" else verdict
        else:
            reasons = [f"{r.check}: {r.message}" for r in rows if r.verdict in ("FAIL", "SKIP")]
        out.append(ShipVerdict(task, target, sel.chosen, verdict, tuple(reasons), len(rows)))
    return out


def to_junit(report: GateReport, run_id: str) -> str:
    """JUnit XML for CI: a test suite per task and target, a test case per check; failures carry the reason.
    A check that cannot apply (N/A) is a skipped case that says why."""
    import xml.etree.ElementTree as ET

    counts = report.counts()
    root = ET.Element(
        "testsuites",
        name=f"edge-opt gate {run_id}",
        tests=str(len(report.rows)),
        failures=str(counts["FAIL"]),
        skipped=str(counts["SKIP"] + counts["N/A"]),
        errors="0",
    )
    for where in dict.fromkeys(r.where for r in report.rows):
        rows = [r for r in report.rows if r.where == where]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=where,
            tests=str(len(rows)),
            failures=str(sum(r.verdict == "FAIL" for r in rows)),
            skipped=str(sum(r.verdict in ("SKIP", "N/A") for r in rows)),
            errors="0",
        )
        classname = ".".join(["edge-opt.gate", *([rows[0].task] if rows[0].task else []), rows[0].target])
        for r in rows:
            name = r.check + (f" [{r.record}]" if r.record else "")
            case = ET.SubElement(suite, "testcase", classname=classname, name=name)
            if r.verdict == "FAIL":
                ET.SubElement(case, "failure", message=r.message, type="budget").text = r.message
            elif r.verdict in ("SKIP", "N/A"):
                ET.SubElement(case, "skipped", message=r.message)
            ET.SubElement(case, "system-out").text = r.message
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def to_markdown(report: GateReport, run_id: str) -> str:
    """A CI job summary: the verdict, the counts, a row per check and the choice per task and target."""
    counts = report.counts()
    verdict = "VALID: every budget met" if report.passed else "INVALID: a budget is not met"
    lines = [
        f"## edge-opt gate · {run_id}: {verdict}",
        "",
        f"{counts['PASS']} pass · {counts['FAIL']} fail · {counts['SKIP']} skipped"
        + (f" · {counts['N/A']} cannot apply (no float model)" if counts["N/A"] else "")
        + (
            " (skipped allowed)"
            if report.allow_skipped
            else " (a skipped check fails the gate; --allow-skipped lets it pass)"
            if counts["SKIP"]
            else ""
        ),
        "",
        "| task | target | measurement | check | verdict | reason |",
        "|---|---|---|---|---|---|",
    ]
    mark = {"PASS": "✅ PASS", "FAIL": "❌ FAIL", "SKIP": "⚠️ SKIP", "N/A": "➖ N/A"}
    for r in report.rows:
        cells = [r.task or "–", r.target, r.record or "–", r.check, mark[r.verdict], r.message]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if report.selections:
        lines += ["", "Chosen per task and target:", ""]
        for (task, target), sel in report.selections.items():
            shown = f"{record_label(sel.chosen)}{sel.tie_note()}" if sel.chosen else "none (no candidate fits)"
            where = f"{task} · {target}" if task else target
            lines.append(f"- **{where}**: {shown}; {len(sel.rejected)} other candidate(s) rejected")
    return "\n".join(lines) + "\n"
