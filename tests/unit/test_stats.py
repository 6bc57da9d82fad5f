"""Intervals against known values, and the three-valued comparisons that decide claims."""

from __future__ import annotations

import math
import random

import pytest
import torch

from circuitdsl.verification.verdict import compare, kleene_and, kleene_not, kleene_or
from runtime.stats import (
    mean_difference,
    mean_interval,
    pearson,
    proportion_difference,
    selectivity,
    t_quantile,
    wilson,
)


@pytest.mark.parametrize(("df", "expected"), [(1, 12.706), (2, 4.303), (3, 3.182), (5, 2.571), (10, 2.228), (30, 2.042)])
def test_t_quantiles_match_the_table(df, expected):
    assert t_quantile(0.95, df) == pytest.approx(expected, abs=4e-3)


def test_wilson_matches_a_worked_example_and_stays_in_0_1():
    est = wilson(45, 50, 0.95)
    assert (est.low, est.high) == pytest.approx((0.7864, 0.9565), abs=1e-4)
    assert wilson(0, 20, 0.95).low == 0.0 and wilson(20, 20, 0.95).high == pytest.approx(1.0)
    assert wilson(20, 20, 0.95).low < 1.0  # a perfect score still has an interval


def test_mean_interval_covers_the_true_mean_about_as_often_as_claimed():
    rng = torch.Generator().manual_seed(0)
    covered = 0
    for _ in range(400):
        est = mean_interval(torch.randn(20, generator=rng) + 3.0, 0.9)
        covered += est.low <= 3.0 <= est.high
    assert 0.86 <= covered / 400 <= 0.94


def test_pearson_fisher_interval_and_a_constant_counts_as_no_correlation():
    x = torch.arange(50.0)
    est = pearson(x, 2 * x + torch.randn(50, generator=torch.Generator().manual_seed(1)), 0.95)
    assert est.value > 0.99 and est.low < est.value < est.high <= 1.0
    assert pearson(torch.ones(10), x[:10], 0.95).interval == (0.0, 0.0)


def test_selectivity_is_infinite_for_perfect_separation_and_zero_for_a_dead_unit():
    assert selectivity(torch.ones(5), torch.zeros(5), 0.95).value == math.inf
    assert selectivity(torch.zeros(5), torch.zeros(5), 0.95).value == 0.0
    rng = random.Random(0)
    a = torch.tensor([rng.gauss(1, 1) for _ in range(400)])
    b = torch.tensor([rng.gauss(0, 1) for _ in range(400)])
    est = selectivity(a, b, 0.95)
    assert est.low < 1.0 < est.high


def test_differences_of_independent_samples():
    est = proportion_difference(90, 100, 50, 100, 0.95)
    assert est.value == pytest.approx(0.4) and est.low < 0.4 < est.high and est.low > 0.25
    est = mean_difference(torch.full((10,), 2.0), torch.full((10,), 1.0), 0.95)
    assert est.interval == (1.0, 1.0)


@pytest.mark.parametrize(
    ("low", "high", "op", "bound", "expected"),
    [
        (0.7, 0.9, ">=", 0.5, True),
        (0.7, 0.9, ">=", 0.8, None),  # the bound inside the interval: undecided, never a coin flip
        (0.7, 0.9, ">=", 0.95, False),
        (0.7, 0.9, "<", 0.7, False),
        (0.5, 0.5, ">", 0.5, False),
        (0.5, 0.5, ">=", 0.5, True),
        (1.0, 1.0, "==", 1.0, True),
        (0.0, 1.0, "==", 1.0, None),
        (-1.0, -1.0, "!=", 1.0, True),
        (math.nan, 1.0, ">", 0.0, None),
        (-math.inf, math.inf, "<=", 3.0, None),
    ],
)
def test_interval_comparisons_are_three_valued(low, high, op, bound, expected):
    assert compare(low, high, op, bound) is expected


def test_kleene_logic():
    assert kleene_and(True, None) is None and kleene_and(False, None) is False
    assert kleene_or(True, None) is True and kleene_or(False, None) is None
    assert kleene_not(None) is None and kleene_not(True) is False
