"""Multi-objective figures of a search, computed by edge-opt (keras-tuner only sums objectives).

Pure functions on plain numbers: accuracy is maximised, cost (latency, size) minimised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated (accuracy, cost) points, cheapest first.

    A point is dominated when another is at least as accurate and at most as costly, and
    better in one of the two. Duplicates are all kept (neither dominates the other).
    """
    front = []
    for i, (acc, cost) in enumerate(points):
        dominated = any(a >= acc and c <= cost and (a > acc or c < cost) for j, (a, c) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][1], -points[i][0]))


def hypervolume(points: Sequence[tuple[float, float]], reference: tuple[float, float]) -> float:
    """The area dominated by the points and bounded by ``reference`` = (accuracy floor, cost ceiling).

    Points no better than the reference in both objectives add nothing.
    """
    ref_acc, ref_cost = reference
    inside = [(a, c) for a, c in points if a > ref_acc and c < ref_cost]
    area, best_acc = 0.0, ref_acc
    for acc, cost in sorted(inside, key=lambda p: (p[1], -p[0])):  # cheapest first
        if acc > best_acc:
            area += (acc - best_acc) * (ref_cost - cost)
            best_acc = acc
    return area


def mnas_reward(accuracy: float, latency_ms: float, target_ms: float, weight: float = -0.07) -> float:
    """MnasNet's soft reward ACC * (LAT / T) ** w: a model twice as slow as T scores 2**w (~0.95) of its accuracy."""
    return accuracy * (latency_ms / target_ms) ** weight


def best_so_far(scores: Sequence[float | None]) -> list[float | None]:
    """The best score after each trial (None until a trial scored)."""
    out: list[float | None] = []
    best: float | None = None
    for s in scores:
        if s is not None and not math.isnan(s) and (best is None or s > best):
            best = s
        out.append(best)
    return out


def trials_to_target(scores: Sequence[float | None], distance: float) -> int | None:
    """The first trial (1-based) whose best-so-far is within ``distance`` (relative) of the final best."""
    curve = best_so_far(scores)
    final = curve[-1] if curve else None
    if final is None:
        return None
    for n, best in enumerate(curve, start=1):
        if best is not None and best >= final - abs(final) * distance:
            return n
    return None
