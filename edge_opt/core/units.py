"""Numbers that read: one way to show a latency, a size and a memory figure, everywhere.

The terminal table, report.md, report.html, the lineage and the gate's Markdown all format
through these functions, so one figure reads the same wherever it appears. Sizes use the
decimal units the gate's budgets use (1 KB = 1000 B, 1 MB = 10^6 B); memory is in MiB, the
unit the records hold.
"""

from __future__ import annotations

import math
import re

from edge_opt.core.errors import ConfigError

MISSING = "–"

#: Time units as the budgets and options write them, to milliseconds (the records' unit); ms first.
TIME_UNITS_MS = {"ms": 1.0, "us": 1e-3, "µs": 1e-3, "s": 1e3}


def _sig(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits and no exponent: 1.25, 12.5, 125, 1250."""
    if value == 0:
        return "0"
    value = float(f"{value:.{digits}g}")  # round first: 0.99996 has the digits of 1.00
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def _scaled(value: float | None, units: tuple[tuple[str, float], ...]) -> str:
    """``value`` in the largest of ``units`` ((name, size), ascending) it reaches, with 3 significant digits."""
    if value is None or isinstance(value, bool) or not math.isfinite(float(value)):
        return MISSING
    value = float(value)
    i = max([k for k, (_, size) in enumerate(units) if abs(value) >= size] or [0])
    shown = _sig(value / units[i][1])
    if abs(float(shown)) >= 1000 and i + 1 < len(units):  # 999.96 µs reads 1.00 ms, not 1000 µs
        i += 1
        shown = _sig(value / units[i][1])
    return f"{shown} {units[i][0]}"


_TIME_MS = (("µs", 1e-3), ("ms", 1.0), ("s", 1e3))
_BYTES = (("B", 1.0), ("KB", 1e3), ("MB", 1e6), ("GB", 1e9))
_MIB = (("MiB", 1.0), ("GiB", 1024.0))


def fmt_ms(ms: float | None) -> str:
    """A latency given in milliseconds: ``850 ns`` is ``0.850 µs``; µs below 1 ms, ms below 1 s, then s."""
    return _scaled(ms, _TIME_MS)


def fmt_bytes(n: float | None) -> str:
    """A size in bytes: ``512 B``, ``15.7 KB``, ``1.20 MB`` (decimal units, as the gate's budgets)."""
    if n is not None and not isinstance(n, bool) and math.isfinite(float(n)) and abs(n) < 1000:
        return f"{int(round(n))} B"
    return _scaled(n, _BYTES)


def fmt_mib(mib: float | None) -> str:
    """A memory figure in MiB (the records' unit): ``50.2 MiB``, ``1.50 GiB``."""
    return _scaled(mib, _MIB)


def fmt_fraction(x: float | None, digits: int = 4) -> str:
    return MISSING if x is None else f"{x:.{digits}f}"


def fmt_points(drop: float | None) -> str:
    """An accuracy drop (float minus artifact, a fraction) as the artifact's change in points."""
    return MISSING if drop is None else f"{-drop * 100 + 0.0:+.2f} pt"


_POINTS = re.compile(r"^\s*(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>pt|%)\s*$")


def parse_points(text: object, what: str = "max_drop") -> float:
    """An accuracy drop written with its unit (``0.5pt`` or ``0.5%``: percentage points) as the
    fraction the records hold (0.005). A bare number is refused: 0.5 could mean half a point or
    half the accuracy."""
    m = _POINTS.match(text) if isinstance(text, str) else None
    if m is None:
        raise ConfigError(
            f"bad {what} {text!r}: write it in percentage points with its unit, e.g. 0.5pt (or 0.5%, the same)"
        )
    value = float(m["num"])
    if value > 100:
        raise ConfigError(f"bad {what} {text!r}: a drop is between 0pt and 100pt")
    return value / 100
