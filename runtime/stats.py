"""Estimates with confidence intervals, for deciding claims on finite samples.

Every function returns an :class:`Estimate`: the point value and a two-sided
interval at the given confidence. Which interval fits which measurement:

    a share (accuracy, rate)           wilson              Wilson score interval
    a mean (loss, margin, p, mean)     mean_interval       Student t
    a paired change (same samples)     mean_interval of the differences
    two independent shares             proportion_difference  Newcombe's hybrid score
    two independent means              mean_difference     Welch t
    a correlation                      pearson             Fisher z
    a standardised difference          selectivity         Hedges & Olkin's large-sample SE

Pure math on floats and 1-d tensors; no knowledge of models or tasks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from torch import Tensor


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    n: int

    @property
    def interval(self) -> tuple[float, float]:
        return (self.low, self.high)


def z_quantile(confidence: float) -> float:
    """The two-sided normal quantile: 1.96 at 0.95."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf((1 + confidence) / 2)


def t_quantile(confidence: float, df: float) -> float:
    """Two-sided Student t quantile by the Cornish-Fisher expansion (A&S 26.7.5).

    Accurate to about 1e-3 from 3 degrees of freedom up; below that the
    expansion undershoots, so the few-sample cases fall back to a table.
    """
    z = z_quantile(confidence)
    if df >= 3:
        g1 = (z**3 + z) / 4
        g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
        g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
        g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
        return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4
    # df 1 and 2 have closed forms for the two-sided quantile.
    p = (1 + confidence) / 2
    if df < 1.5:
        return math.tan(math.pi * (p - 0.5))
    a = 4 * p * (1 - p)
    return 2 * (p - 0.5) * math.sqrt(2 / a)


def wilson(successes: float, n: int, confidence: float) -> Estimate:
    """A share with the Wilson score interval: never empty, never outside [0, 1]."""
    if n <= 0:
        return Estimate(math.nan, 0.0, 1.0, 0)
    z = z_quantile(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At 0 or n successes the end is exact; rounding would leave it a hair off.
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return Estimate(p, low, high, n)


def mean_interval(values: Tensor, confidence: float) -> Estimate:
    """A mean with the t interval; one value gives an unbounded interval."""
    x = values.double().flatten()
    n = x.numel()
    if n == 0:
        return Estimate(math.nan, -math.inf, math.inf, 0)
    mean = float(x.mean())
    if n == 1:
        return Estimate(mean, -math.inf, math.inf, 1)
    half = t_quantile(confidence, n - 1) * float(x.std(unbiased=True)) / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n)


def proportion_difference(k1: float, n1: int, k2: float, n2: int, confidence: float) -> Estimate:
    """p1 - p2 for independent samples, Newcombe's hybrid score interval (his method 10)."""
    a, b = wilson(k1, n1, confidence), wilson(k2, n2, confidence)
    if n1 == 0 or n2 == 0:
        return Estimate(math.nan, -1.0, 1.0, min(n1, n2))
    d = a.value - b.value
    low = d - math.sqrt((a.value - a.low) ** 2 + (b.high - b.value) ** 2)
    high = d + math.sqrt((a.high - a.value) ** 2 + (b.value - b.low) ** 2)
    return Estimate(d, max(-1.0, low), min(1.0, high), min(n1, n2))


def mean_difference(a: Tensor, b: Tensor, confidence: float) -> Estimate:
    """mean(a) - mean(b) for independent samples, Welch's t interval."""
    a, b = a.double().flatten(), b.double().flatten()
    na, nb = a.numel(), b.numel()
    if na < 2 or nb < 2:
        value = float(a.mean() - b.mean()) if na and nb else math.nan
        return Estimate(value, -math.inf, math.inf, min(na, nb))
    va, vb = float(a.var(unbiased=True)) / na, float(b.var(unbiased=True)) / nb
    d = float(a.mean() - b.mean())
    se = math.sqrt(va + vb)
    if se == 0:
        return Estimate(d, d, d, min(na, nb))
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    half = t_quantile(confidence, df) * se
    return Estimate(d, d - half, d + half, min(na, nb))


def pearson(x: Tensor, y: Tensor, confidence: float) -> Estimate:
    """Pearson's r with the Fisher z interval.

    A constant x or y has no correlation to speak of; it counts as r = 0
    with a degenerate interval, so that a dead unit never "correlates".
    """
    x, y = x.double().flatten(), y.double().flatten()
    n = x.numel()
    if n != y.numel():
        raise ValueError(f"pearson needs equal lengths, got {n} and {y.numel()}")
    if n < 2:
        return Estimate(math.nan, -1.0, 1.0, n)
    dx, dy = x - x.mean(), y - y.mean()
    sx, sy = float(dx.pow(2).sum().sqrt()), float(dy.pow(2).sum().sqrt())
    if sx == 0 or sy == 0:
        return Estimate(0.0, 0.0, 0.0, n)
    r = max(-1.0, min(1.0, float((dx * dy).sum()) / (sx * sy)))
    if n <= 3:
        return Estimate(r, -1.0, 1.0, n)
    if abs(r) == 1.0:
        return Estimate(r, r, r, n)
    z, half = math.atanh(r), z_quantile(confidence) / math.sqrt(n - 3)
    return Estimate(r, math.tanh(z - half), math.tanh(z + half), n)


def selectivity(a: Tensor, b: Tensor, confidence: float) -> Estimate:
    """(mean_a - mean_b) / pooled std, with the large-sample SE of Cohen's d.

    With no spread at all, equal means give 0 and different means an infinite
    selectivity: the unit separates the two conditions perfectly.
    """
    a, b = a.double().flatten(), b.double().flatten()
    na, nb = a.numel(), b.numel()
    if na < 1 or nb < 1:
        return Estimate(math.nan, -math.inf, math.inf, min(na, nb))
    diff = float(a.mean() - b.mean())
    ss = float((a - a.mean()).pow(2).sum() + (b - b.mean()).pow(2).sum())
    dof = na + nb - 2
    if ss == 0 or dof <= 0:
        if dof <= 0:
            return Estimate(math.nan if diff == 0 else math.copysign(math.inf, diff), -math.inf, math.inf, min(na, nb))
        d = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        return Estimate(d, d, d, min(na, nb))
    d = diff / math.sqrt(ss / dof)
    se = math.sqrt((na + nb) / (na * nb) + d * d / (2 * (na + nb)))
    half = z_quantile(confidence) * se
    return Estimate(d, d - half, d + half, min(na, nb))


def binary(values: Tensor) -> bool:
    """Whether every value is 0 or 1, so that a share's interval applies."""
    return bool(((values == 0) | (values == 1)).all())


def share_or_mean(values: Tensor, confidence: float) -> Estimate:
    """The mean of ``values``: Wilson when they are 0/1 indicators, t otherwise."""
    if values.numel() and binary(values):
        return wilson(float(values.sum()), values.numel(), confidence)
    return mean_interval(values, confidence)


def independent_difference(a: Tensor, b: Tensor, confidence: float) -> Estimate:
    """mean(a) - mean(b) for independent samples, by the interval fit for their kind."""
    if a.numel() and b.numel() and binary(a) and binary(b):
        return proportion_difference(float(a.sum()), a.numel(), float(b.sum()), b.numel(), confidence)
    return mean_difference(a, b, confidence)
