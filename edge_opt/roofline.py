"""The roofline of every measured artifact: MACs of the model file, achieved GOP/s, share of the peak."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RooflineRow:
    record_id: str
    label: str
    macs: int
    p50_ms: float
    achieved_gops: float
    peak_gops: float | None
    share: float | None
    peak_source: str


def roofline_rows(results: dict[str, Any], task: str, target: str) -> list[RooflineRow]:
    return []
