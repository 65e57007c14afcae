"""The budget grammar: compact checks on a measurement record, and budgets files.

A budget is a compact check string, ``<metric> <op> <value>[unit]`` (``latency.p90 <= 5ms``).
Target profiles carry default budgets; ``load_budgets`` reads a YAML file that overrides them.

Accuracy figures are fractions in the records (0.91); a budget on them says its unit: ``1pt``
and ``1%`` are one percentage point (0.01), a bare number is a fraction (``0.01``). A bare
number of 1 or more (``accuracy.drop <= 1``) could mean either, and is refused.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_opt.core.config import read_yaml
from edge_opt.core.errors import ConfigError, quoted
from edge_opt.core.units import TIME_UNITS_MS

# Unit tables per kind: unit -> factor to the record's unit (bytes, ms, MiB, fraction).
# The first entry is the default when a check gives no unit.
_UNITS: dict[str, dict[str, float]] = {
    "size": {"B": 1, "KB": 1e3, "MB": 1e6, "KiB": 1024, "MiB": 1024**2},
    "time": TIME_UNITS_MS,
    # Records hold memory in MiB; "MB" is accepted as the same unit, as tools commonly mean it.
    "memory": {"MiB": 1, "MB": 1},
    "fraction": {"": 1, "pt": 0.01, "%": 0.01},  # pt and % are percentage points (accuracy.drop in points)
    "number": {"": 1, "%": 0.01},  # trust-check figures that are no share: correlations, counts, seconds
    "share": {"": 1, "pt": 0.01, "%": 0.01},  # trust-check shares: accuracies, rates and their differences
}

#: A trust-check summary key naming one of these is a share (a fraction of rows), so ``2pt`` reads
#: as 0.02: ``fairness.worst_slice_accuracy_drop``, ``fairness.demographic_parity_difference``,
#: ``robustness.blackbox_success_rate@0.1``, ``explain.shap_top5_overlap``.
_SHARE_WORDS = ("accuracy", "rate", "difference", "overlap")


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
    # The per-op profile of a chosen artifact (checks.ops, bench --ops): how many ops, and how
    # many ran off the intended delegate, provider or kernel class ("ops.fallback <= 0").
    "ops.count": (("ops_count",), "number"),
    "ops.fallback": (("ops_fallback",), "number"),
    # The EdgeTPU map's ops left on the CPU (also edgetpu.unsupported): checked on the chosen file.
    "ops.unsupported": (("checks", "edgetpu", "unsupported"), "number"),
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
        share = any(word in key.partition("@")[0] for word in _SHARE_WORDS)
        return ("checks", kind, key), "share" if share else "number"
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


#: A unit as the terminal shows it (``us`` is how one types µs).
_SHOWN_UNITS = {"us": "µs"}
_FRACTION_FORMS = "1pt (percentage points), 1% (the same) or 0.01 (a fraction)"


#: Metrics that compare a record with its float model: they cannot apply to a task that has none
#: (a deployed file measured as it is).
REFERENCE_METRICS = frozenset({"accuracy.drop", "fidelity.agreement", "fidelity.correlation"})
#: Metrics of a per-op profile: they apply to the records that have one (each target's chosen
#: artifact in a run, a bench --ops record); the other candidates are not judged on them.
PROFILE_METRICS = frozenset({"ops.count", "ops.fallback"})


@dataclass(frozen=True)
class CheckResult:
    passed: bool | None  # None: skipped, or the check cannot apply (``applies`` False)
    actual: float | None  # in the record's unit
    message: str
    applies: bool = True  # False: the record's task has no float model to compare with


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
            raise ConfigError(f"bad check {quoted(spec)}: must be a string; {_FORM}")
        m = _SPEC.match(spec)
        if not m:
            raise ConfigError(f"bad check {quoted(spec)}: {_FORM}")
        metric, op, num, unit = m["metric"], m["op"], float(m["num"]), m["unit"] or ""
        if _metric(metric) is None:
            allowed = ", ".join([*METRICS, *(f"{k}.<summary key>" for k in CHECK_KINDS)])
            raise ConfigError(f"bad check {quoted(spec)}: unknown metric '{metric}'; allowed: {allowed}")
        kind = _metric(metric)[1]
        units = _UNITS[kind]
        unit = unit or next(iter(units))
        if unit not in units:
            allowed = ", ".join(u or "(none)" for u in units)
            raise ConfigError(f"bad check {quoted(spec)}: unit '{unit}' not allowed for {metric}; allowed: {allowed}")
        if kind == "fraction" and not m["unit"] and abs(num) >= 1:
            raise ConfigError(
                f"bad check {quoted(spec)}: a bare {num:g} is ambiguous for {metric} (a fraction or points?); "
                f"write {_FRACTION_FORMS}"
            )
        value = num / 100 if unit in ("%", "pt") else num * units[unit]
        low = {"accuracy.drop": -1.0}.get(metric, -math.inf if kind in ("number", "share") else 0.0)
        if not math.isfinite(value) or value < low or (kind == "fraction" and value > 1):
            bound = f"between {low:g} and 1 (or {low * 100:g}pt and 100pt)" if kind == "fraction" else ">= 0"
            raise ConfigError(f"bad check {quoted(spec)}: value for {metric} must be {bound}")
        return cls(spec=spec.strip(), metric=metric, op=op, value=value, unit=unit)

    @property
    def trust(self) -> bool:
        """A trust-check figure (run on the chosen artifact), not a measurement of every candidate."""
        return _metric(self.metric)[0][0] == "checks"  # read from the summaries the checks attach

    def _show(self, x: float, other: float) -> str:
        """``x`` in the spec's unit, with enough digits to differ from ``other`` when it does."""
        scale = _UNITS[_metric(self.metric)[1]][self.unit]
        x = 0.0 if abs(x) < 1e-12 else x  # float noise of a difference (1e-17) reads as the zero it is
        for digits in (4, 6, 10):
            text, other_text = f"{x / scale:.{digits}g}", f"{other / scale:.{digits}g}"
            if text != other_text or math.isclose(x, other, rel_tol=1e-9, abs_tol=1e-12):
                break
        if float(text) == 0:
            text = text.lstrip("-")  # "-0%" reads as a loss that is not there
        sep = "" if self.unit in ("", "%", "pt") else " "
        return f"{text}{sep}{_SHOWN_UNITS.get(self.unit, self.unit)}"

    def evaluate(self, record: dict[str, Any], reference: bool = True) -> CheckResult:
        """The check on one record; ``reference=False`` when the record's task has no float model,
        so that a check against one (``REFERENCE_METRICS``) cannot apply rather than fails."""
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
        if actual is None and not reference and self.metric in REFERENCE_METRICS:
            return CheckResult(None, None, f"{self.spec}: N/A (no float model to compare with)", applies=False)
        if actual is None and self.metric in PROFILE_METRICS:
            return CheckResult(None, None, f"{self.spec}: N/A (no per-op profile of this record)", applies=False)
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
        budgets[target] = parse_checks(specs, path, f"{prefix}{target}")
    return budgets


def parse_checks(specs: Any, source: str | Path, where: str) -> list[Check]:
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


def check_profile_budgets(profile) -> list[Check]:
    """A target profile's ``budgets`` parsed, or a ConfigError naming the profile and the budget:
    every command that loads a profile checks its budgets before any work."""
    return parse_checks(list(profile.budgets), f"target profile '{profile.name}'", "budgets")


def profile_budgets(results: dict[str, Any]) -> dict[str, list[Check]]:
    """The budgets each target profile of a run carries."""
    return {
        name: parse_checks((profile or {}).get("budgets") or [], "results", f"targets.{name}.budgets")
        for name, profile in (results.get("targets") or {}).items()
    }
