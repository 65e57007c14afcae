"""Pareto front, hypervolume and the efficacy figures against hand-computed examples (pure functions)."""

import math

import pytest

from edge_opt.nas.pareto import best_so_far, hypervolume, mnas_reward, pareto_front, trials_to_target


def test_front_keeps_the_non_dominated_cheapest_first():
    # (accuracy, latency): 1 dominates 3 (more accurate, faster); 2 is dominated by 0 on equal accuracy.
    points = [(0.80, 1.0), (0.85, 2.0), (0.80, 1.5), (0.70, 3.0), (0.90, 4.0)]
    assert pareto_front(points) == [0, 1, 4]


def test_front_keeps_duplicates_and_a_single_point():
    assert pareto_front([(0.5, 1.0), (0.5, 1.0)]) == [0, 1]
    assert pareto_front([(0.5, 1.0)]) == [0]
    assert pareto_front([]) == []


def test_hypervolume_by_hand():
    # reference (accuracy 0.5, latency 4): rectangles 0.3*3 for (0.8, 1), then (0.9-0.8)*(4-2) for (0.9, 2).
    assert hypervolume([(0.8, 1.0), (0.9, 2.0)], (0.5, 4.0)) == pytest.approx(0.9 + 0.2)
    # a dominated point adds nothing; a point beyond the reference adds nothing
    assert hypervolume([(0.8, 1.0), (0.9, 2.0), (0.7, 3.0), (0.95, 5.0)], (0.5, 4.0)) == pytest.approx(1.1)
    assert hypervolume([], (0.5, 4.0)) == 0.0


def test_mnas_reward_and_curves():
    assert mnas_reward(0.8, 2.0, 2.0) == pytest.approx(0.8)
    assert mnas_reward(0.8, 4.0, 2.0, -0.07) == pytest.approx(0.8 * 2**-0.07)
    assert mnas_reward(0.8, 1.0, 2.0) > 0.8  # faster than T is rewarded
    assert best_so_far([None, 0.5, 0.4, 0.7, math.nan]) == [None, 0.5, 0.5, 0.7, 0.7]
    assert trials_to_target([0.5, 0.69, 0.7], 0.02) == 2
    assert trials_to_target([0.5, 0.69, 0.7], 0.0) == 3
    assert trials_to_target([None, None], 0.1) is None
