"""The release gate: budgets on size, latency, memory and accuracy, checked against a run.

A budget is a compact check string, ``<metric> <op> <value>[unit]`` (``latency.p90 <= 5ms``).
Target profiles carry default budgets; ``load_budgets`` reads a YAML file that overrides them.

Accuracy figures are fractions in the records (0.91); a budget on them says its unit: ``1pt``
and ``1%`` are one percentage point (0.01), a bare number is a fraction (``0.01``). A bare
number of 1 or more (``accuracy.drop <= 1``) could mean either, and is refused.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_opt.core.config import read_yaml
from edge_opt.core.errors import ConfigError

# Unit tables per kind: unit -> factor to the record's unit (bytes, ms, MiB, fraction).
# The first entry is the default when a check gives no unit.
_UNITS: dict[str, dict[str, float]] = {
    "size": {"B": 1, "KB": 1e3, "MB": 1e6, "KiB": 1024, "MiB": 1024**2},
    "time": {"ms": 1, "us": 1e-3, "µs": 1e-3, "s": 1e3},
    # Records hold memory in MiB; "MB" is accepted as the same unit, as tools commonly mean it.
    "memory": {"MiB": 1, "MB": 1},
    "fraction": {"": 1, "pt": 0.01, "%": 0.01},  # pt and % are percentage points (accuracy.drop in points)
    "number": {"": 1, "%": 0.01},  # trust-check figures: rates, differences, correlations
}
_LATENCY = ("p50", "p90", "p95", "p99", "mean", "max")
# metric -> (path in the record, kind)
METRICS: dict[str, tuple[tuple[str, ...], str]] = {
    "size.raw": (("size_bytes", "raw"), "size"),
    "size.gzip": (("size_bytes", "gzip"), "size"),
    **{f"latency.{s}": (("latency_ms", s), "time") for s in _LATENCY},
    "load_ms": (("load_ms",), "time"),
    "cold_start_ms": (("cold_start_ms",), "time"),
    "memory.peak_rss": (("memory_mb", "peak_rss"), "memory"),
    "memory.peak_uss": (("memory_mb", "peak_uss"), "memory"),
    "accuracy": (("accuracy",), "fraction"),
    "accuracy.drop": (("accuracy_drop",), "fraction"),
    # Fidelity to the float model on held-out rows: top-1 agreement (a run's records and
    # optimize's summary), and the correlation of raw outputs (optimize, for any model).
    "fidelity.agreement": (("agreement",), "fraction"),
    "fidelity.correlation": (("fidelity", "correlation"), "number"),
}
# Trust checks put a flat summary per kind on each record of the checked artifact, e.g.
# "fairness.demographic_parity_difference" or "robustness.robust_accuracy_drop@0.1".
CHECK_KINDS = ("fairness", "robustness", "explain", "edgetpu")


def _metric(name: str) -> tuple[tuple[str, ...], str] | None:
    """(path in the record, kind) of a metric name, or None when unknown."""
    if name in METRICS:
        return METRICS[name]
    kind, _, key = name.partition(".")
    if kind in CHECK_KINDS and key:
        return ("checks", kind, key), "number"
    return None


# Applied to sign(actual - threshold), so that unit-conversion noise (1.1% = 0.011000000000000001)
# counts as equal: inclusive at the boundary for <= and >=, exclusive for < and >.
_OPS = {"<=": (-1, 0), "<": (-1,), ">=": (1, 0), ">": (1,)}
_NEGATED = {"<=": ">", "<": ">=", ">=": "<", ">": "<="}
_SPEC = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][\w.@]*)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<num>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(?P<unit>%|[A-Za-zµ]+)?\s*$"
)
_FORM = "expected '<metric> <op> <value>[unit]' with op one of <=, <, >=, > (e.g. 'latency.p90 <= 5ms')"
_FRACTION_FORMS = "1pt (percentage points), 1% (the same) or 0.01 (a fraction)"


@dataclass(frozen=True)
class CheckResult:
    passed: bool | None  # None: skipped
    actual: float | None  # in the record's unit
    message: str


@dataclass(frozen=True)
class Check:
    spec: str
    metric: str
    op: str
    value: float  # threshold in the record's unit (bytes, ms, MiB, fraction)
    unit: str  # the unit the spec was written in, used for display

    @classmethod
    def parse(cls, spec: Any) -> Check:
        if not isinstance(spec, str):
            raise ConfigError(f"bad check {spec!r}: must be a string; {_FORM}")
        m = _SPEC.match(spec)
        if not m:
            raise ConfigError(f"bad check {spec!r}: {_FORM}")
        metric, op, num, unit = m["metric"], m["op"], float(m["num"]), m["unit"] or ""
        if _metric(metric) is None:
            allowed = ", ".join([*METRICS, *(f"{k}.<summary key>" for k in CHECK_KINDS)])
            raise ConfigError(f"bad check {spec!r}: unknown metric '{metric}'; allowed: {allowed}")
        kind = _metric(metric)[1]
        units = _UNITS[kind]
        unit = unit or next(iter(units))
        if unit not in units:
            allowed = ", ".join(u or "(none)" for u in units)
            raise ConfigError(f"bad check {spec!r}: unit '{unit}' not allowed for {metric}; allowed: {allowed}")
        if kind == "fraction" and not m["unit"] and abs(num) >= 1:
            raise ConfigError(
                f"bad check {spec!r}: a bare {num:g} is ambiguous for {metric} (a fraction or points?); "
                f"write {_FRACTION_FORMS}"
            )
        value = num / 100 if unit in ("%", "pt") else num * units[unit]
        low = {"accuracy.drop": -1.0}.get(metric, -math.inf if kind == "number" else 0.0)
        if not math.isfinite(value) or value < low or (kind == "fraction" and value > 1):
            bound = f"between {low:g} and 1 (or {low * 100:g}pt and 100pt)" if kind == "fraction" else ">= 0"
            raise ConfigError(f"bad check {spec!r}: value for {metric} must be {bound}")
        return cls(spec=spec.strip(), metric=metric, op=op, value=value, unit=unit)

    @property
    def trust(self) -> bool:
        """A trust-check figure (run on the chosen artifact), not a measurement of every candidate."""
        return self.metric.partition(".")[0] in CHECK_KINDS

    def _show(self, x: float, other: float) -> str:
        """``x`` in the spec's unit, with enough digits to differ from ``other`` when it does."""
        scale = _UNITS[_metric(self.metric)[1]][self.unit]
        for digits in (4, 6, 10):
            text, other_text = f"{x / scale:.{digits}g}", f"{other / scale:.{digits}g}"
            if text != other_text or math.isclose(x, other, rel_tol=1e-9, abs_tol=1e-12):
                break
        sep = "" if self.unit in ("", "%", "pt") else " "
        return f"{text}{sep}{self.unit}"

    def evaluate(self, record: dict[str, Any]) -> CheckResult:
        status = record.get("status")
        reason = record.get("error") or "no reason given"
        if status == "skipped":
            return CheckResult(None, None, f"{self.spec}: SKIP (skipped: {reason})")
        if status != "ok":
            why = f"measurement failed: {reason}" if status == "failed" else f"unknown status {status!r}"
            return CheckResult(False, None, f"{self.spec}: FAIL ({why})")
        actual: Any = record
        for key in _metric(self.metric)[0]:
            actual = actual.get(key) if isinstance(actual, dict) else None
        if actual is None:
            return CheckResult(False, None, f"{self.spec}: FAIL ({self.metric} not measured for this record)")
        if isinstance(actual, bool) or not isinstance(actual, int | float) or math.isnan(actual):
            return CheckResult(False, None, f"{self.spec}: FAIL ({self.metric} is not a number: {actual!r})")
        actual = float(actual)
        close = math.isclose(actual, self.value, rel_tol=1e-9, abs_tol=1e-12)
        passed = (0 if close else (1 if actual > self.value else -1)) in _OPS[self.op]
        op, verdict = (self.op, "pass") if passed else (_NEGATED[self.op], "FAIL")
        shown = f"{self._show(actual, self.value)} {op} {self._show(self.value, actual)}"
        return CheckResult(passed, actual, f"{self.metric} = {shown}: {verdict}")


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
class Selection:
    """The candidate of a target chosen among those that meet every budget, and why the others lost.

    ``tied`` lists the candidates whose latency could not be told from the fastest one (their
    median confidence intervals overlap): among them the smaller file won, then the more
    accurate one. ``decided_by`` says which of latency, size or accuracy made the choice.
    """

    target: str
    chosen: dict[str, Any] | None
    rejected: list[tuple[dict[str, Any], str]]
    tied: list[dict[str, Any]] = field(default_factory=list)
    decided_by: str | None = None  # latency | size | accuracy | order

    def to_dict(self) -> dict[str, Any]:
        chosen = self.chosen
        return {
            "chosen": None
            if chosen is None
            else {
                "id": chosen.get("id"),
                "label": record_label(chosen),
                "p50_ms": (chosen.get("latency_ms") or {}).get("p50"),
                "median_ci_ms": (chosen.get("latency_ms") or {}).get("median_ci"),
            },
            "decided_by": self.decided_by,
            "tied": [{"id": r.get("id"), "label": record_label(r)} for r in self.tied],
            "rejected": [{"id": r.get("id"), "label": record_label(r), "reason": why} for r, why in self.rejected],
        }

    def tie_note(self) -> str:
        """`` (a tie on latency with N others: the smaller file won)``, or "" when latency decided."""
        if not self.tied:
            return ""
        n = len(self.tied)
        why = {"size": "the smaller file won", "accuracy": "the more accurate won"}.get(
            self.decided_by, "the lowest median won"
        )
        return f" (a tie on latency with {n} other{'s' if n > 1 else ''}: {why})"


def _ci(rec: dict[str, Any]) -> tuple[float, float]:
    lat = rec["latency_ms"]
    lo, hi = lat.get("median_ci") or (lat["p50"], lat["p50"])
    return float(lo), float(hi)


def _ms(x: float) -> str:
    from edge_opt.core.units import fmt_ms

    return fmt_ms(x)


#: A latency difference smaller than this share of the faster median is a tie even when the
#: confidence intervals do not overlap: with thousands of samples a within-run interval
#: shrinks to nanoseconds, while a fresh process (another memory layout, another core)
#: moves a median by more than that.
MIN_SPEEDUP = 0.02


def choose(
    target: str, records: list[dict[str, Any]], checks: list[Check], min_speedup: float = MIN_SPEEDUP
) -> Selection:
    """Among a target's measured candidates that pass every check, the fastest, unless noise decides.

    A candidate beats another on latency only when their median confidence intervals (the
    95% order-statistic intervals of each record's samples) do not overlap and its median is
    at least ``min_speedup`` (2%) lower. The candidates that cannot be told apart from the
    fastest form a tie, which the smaller file (raw bytes) wins, then the more accurate,
    then the lower median.

    Trust-check budgets are left out here: those checks run on the chosen artifact, and the
    gate then holds it to them.
    """
    checks = [c for c in checks if not c.trust]
    fits, rejected = [], []
    for rec in records:
        if rec.get("status") != "ok" or not rec.get("latency_ms"):
            rejected.append((rec, f"not measured: {rec.get('status')}: {rec.get('error') or 'no latency'}"))
            continue
        failed = [res.message for res in (c.evaluate(rec) for c in checks) if not res.passed]
        if failed:
            rejected.append((rec, "; ".join(failed)))
        else:
            fits.append(rec)
    if not fits:
        return Selection(target, None, rejected)
    fits.sort(key=lambda r: r["latency_ms"]["p50"])
    fastest = fits[0]
    lo, hi = _ci(fastest)
    best = fastest["latency_ms"]["p50"]

    def ties(r: dict[str, Any]) -> bool:  # its interval overlaps the fastest's, or the gap is negligible
        return _ci(r)[0] <= hi or r["latency_ms"]["p50"] < best * (1 + min_speedup)

    tied = [r for r in fits if ties(r)]
    slower = [r for r in fits if r not in tied]

    def size(r: dict[str, Any]) -> float:
        return (r.get("size_bytes") or {}).get("raw") or math.inf

    def accuracy(r: dict[str, Any]) -> float:
        return r.get("accuracy") if r.get("accuracy") is not None else -math.inf

    tied.sort(key=lambda r: (size(r), -accuracy(r), r["latency_ms"]["p50"]))
    chosen = tied[0]
    others = tied[1:]
    if others and all(size(r) > size(chosen) for r in others):
        decided_by = "size"
    elif others and all(size(r) > size(chosen) or accuracy(r) < accuracy(chosen) for r in others):
        decided_by = "accuracy"
    else:  # alone, or tied on size and accuracy too: the lower median
        decided_by = "latency"
    c_lo, c_hi = _ci(chosen)
    for rec in others:
        r_lo, r_hi = _ci(rec)
        why = (
            f"ties on latency: p50 {_ms(rec['latency_ms']['p50'])} (CI {_ms(r_lo)}–{_ms(r_hi)}) vs the chosen "
            f"{_ms(chosen['latency_ms']['p50'])} (CI {_ms(c_lo)}–{_ms(c_hi)}), within noise of the fastest "
            f"(intervals overlap, or medians under {min_speedup:.0%} apart)"
        )
        if size(rec) > size(chosen):
            why += f"; larger file ({size(rec):.0f} vs {size(chosen):.0f} bytes)"
        elif accuracy(rec) < accuracy(chosen):
            why += f"; same size, less accurate ({accuracy(rec):.4f} vs {accuracy(chosen):.4f})"
        else:
            why += "; same size and accuracy, higher median"
        rejected.append((rec, why))
    for rec in slower:
        r_lo, r_hi = _ci(rec)
        p50 = rec["latency_ms"]["p50"]
        rejected.append(
            (
                rec,
                f"meets the budgets but slower: p50 {_ms(p50)} vs {_ms(best)}"
                f" (median CIs {_ms(r_lo)}–{_ms(r_hi)} and {_ms(lo)}–{_ms(hi)} do not overlap)",
            )
        )
    return Selection(target, chosen, rejected, tied=others, decided_by=decided_by)


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


def load_budgets(path: str | Path) -> dict[str, list[Check]]:
    """Read ``{target: [check, ...]}`` from YAML, optionally wrapped in a top-level ``budgets:`` key."""
    data = read_yaml(path)
    prefix = ""
    if "budgets" in data:
        if len(data) != 1 or not isinstance(data["budgets"], dict):
            raise ConfigError(f"{path}: field 'budgets': expected the only top-level key, mapping targets to checks")
        data, prefix = data["budgets"], "budgets."
    budgets = {}
    for target, specs in data.items():
        if not isinstance(target, str):
            raise ConfigError(f"{path}: field '{prefix}{target}': target names must be strings")
        budgets[target] = _checks(specs, path, f"{prefix}{target}")
    return budgets


def _checks(specs: Any, source: str | Path, where: str) -> list[Check]:
    if not isinstance(specs, list):
        got = type(specs).__name__
        raise ConfigError(f"{source}: field '{where}': expected a list of checks like 'latency.p90 <= 5ms', got {got}")
    checks = []
    for i, spec in enumerate(specs):
        try:
            checks.append(Check.parse(spec))
        except ConfigError as exc:
            raise ConfigError(f"{source}: field '{where}.{i}': {exc}") from None
    return checks


def record_label(record: dict[str, Any]) -> str:
    from edge_opt.measure.records import runtime_label

    art, rt = record.get("artifact") or {}, record.get("runtime") or {}
    runtime = runtime_label(rt)
    threads = rt.get("threads")
    parts = [art.get("label") or art.get("pass") or record.get("id") or "?", runtime]
    if threads is not None:
        parts.append(f"{threads} thread" + ("" if threads == 1 else "s"))
    return " · ".join(parts)


def profile_budgets(results: dict[str, Any]) -> dict[str, list[Check]]:
    """The budgets each target profile of a run carries."""
    return {
        name: _checks((profile or {}).get("budgets") or [], "results", f"targets.{name}.budgets")
        for name, profile in (results.get("targets") or {}).items()
    }


def _rows(report: GateReport, target: str, record: dict[str, Any], checks: list[Check], note: str = "") -> None:
    label = record_label(record)
    for check in checks:
        res = check.evaluate(record)
        verdict = {True: "PASS", False: "FAIL", None: "SKIP"}[res.passed]
        report.rows.append(
            GateRow(target, check.spec, label, verdict, res.message + note, record.get("id"), res.actual)
        )


def checked_record(results: dict[str, Any], target: str, task: str | None) -> dict[str, Any] | None:
    """The record of ``target`` whose file the run's trust checks ran on (``checks.*.artifacts.*.picked``)."""
    by_id = {r.get("id"): r for r in results.get("measurements") or []}
    for check_task, checks in (results.get("checks") or {}).items():
        if task is not None and check_task != task:
            continue
        for entry in (checks or {}).get("artifacts", {}).values():
            rec_id = (entry.get("picked") or {}).get(target)
            if rec_id in by_id:
                return by_id[rec_id]
    return None


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
