"""Proportions: Wilson score interval for one rate, two-proportion z-test for the difference of two.

Used for accuracy against a gold set and for error rates, per arm. Conventions:

- ``two_proportion_test(x1, n1, x2, n2)`` describes ``diff = p1 - p2`` (first minus second, as
  ``statsmodels.proportions_ztest`` and ``scipy.stats.mannwhitneyu`` order their samples); pass the
  candidate first to read ``diff`` as candidate − baseline.
- The test statistic uses the **pooled** standard error (the SE under H0: p1 = p2),
  ``z = (p1 - p2) / sqrt(p̂(1 - p̂)(1/n1 + 1/n2))`` with ``p̂ = (x1 + x2) / (n1 + n2)``; the p-value is
  from the normal approximation (valid when every n·p and n·(1-p) is at least ~5).
- The confidence interval on the difference is **Newcombe's hybrid score interval** (Newcombe 1998,
  method 10: Wilson intervals per arm, combined in quadrature), which keeps near-nominal coverage
  for rates near 0 or 1 where the Wald interval fails; ``ci_method="wald"`` gives the unpooled Wald
  interval ``diff ± z·sqrt(p1(1-p1)/n1 + p2(1-p2)/n2)`` instead.
- The samples are assumed independent. Both arms answering the *same* requests (shadow traffic) are
  positively correlated in practice, which makes these intervals conservative, not anti-conservative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from shadowlane.stats.distributions import norm_cdf, norm_isf, norm_sf

Num = float | NDArray[np.float64]  # a value, or many at once (elementwise)

CiMethod = Literal["newcombe", "wald"]


@dataclass(frozen=True, slots=True)
class ProportionCI:
    """One rate with its two-sided confidence interval."""

    successes: int
    n: int
    estimate: float
    ci_low: float
    ci_high: float
    confidence: float


@dataclass(frozen=True, slots=True)
class TwoProportionTest:
    """Two-proportion z-test of p1 = p2 and a confidence interval for ``diff = p1 - p2``."""

    x1: int
    n1: int
    x2: int
    n2: int
    p1: float
    p2: float
    diff: float
    z: float
    p_value: float  # two-sided
    ci_low: float
    ci_high: float
    confidence: float
    ci_method: CiMethod

    @property
    def p_greater(self) -> float:
        """One-sided p-value for H1: p1 > p2."""
        return norm_sf(self.z)

    @property
    def p_less(self) -> float:
        """One-sided p-value for H1: p1 < p2."""
        return norm_cdf(self.z)


def _check_counts(successes: int, n: int) -> None:
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n], got {successes} of {n}")


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def wilson_bounds(p: Num, n: Num, z: Num) -> tuple[Num, Num]:
    """Wilson's bounds of a rate ``p`` observed in ``n`` trials at normal quantile ``z``, clipped to
    [0, 1]; floats or numpy arrays (elementwise: the way-forward simulation's many paths)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        z2 = z * z
        centre = (p + z2 / (2 * n)) / (1 + z2 / n)
        half = z / (1 + z2 / n) * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return np.maximum(0.0, centre - half), np.minimum(1.0, centre + half)


def newcombe_low(p1: Num, low1: Num, p2: Num, high2: Num) -> Num:
    """Lower bound of p1 − p2 from each rate's Wilson bounds (Newcombe's hybrid score)."""
    out: Num = p1 - p2 - np.sqrt((p1 - low1) ** 2 + (high2 - p2) ** 2)
    return out


def _wilson_bounds(successes: int, n: int, z: float) -> tuple[float, float]:
    low, high = wilson_bounds(successes / n, float(n), z)
    return (0.0 if successes == 0 else float(low)), (1.0 if successes == n else float(high))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> ProportionCI:
    """Wilson score interval for a binomial rate (no continuity correction)."""
    _check_counts(successes, n)
    _check_confidence(confidence)
    low, high = _wilson_bounds(successes, n, norm_isf((1 - confidence) / 2))
    return ProportionCI(successes, n, successes / n, low, high, confidence)


def two_proportion_test(
    x1: int, n1: int, x2: int, n2: int, *, confidence: float = 0.95, ci_method: CiMethod = "newcombe"
) -> TwoProportionTest:
    """Pooled-SE z-test of p1 = p2, with a Newcombe (or Wald) interval for p1 - p2."""
    _check_counts(x1, n1)
    _check_counts(x2, n2)
    _check_confidence(confidence)
    p1, p2 = x1 / n1, x2 / n2
    diff = p1 - p2
    pooled = (x1 + x2) / (n1 + n2)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se_pooled > 0:
        z = diff / se_pooled
        p_value = min(1.0, 2 * norm_sf(abs(z)))
    else:  # both arms all-success or all-failure: no evidence of a difference
        z, p_value = 0.0, 1.0
    z_crit = norm_isf((1 - confidence) / 2)
    if ci_method == "newcombe":
        l1, u1 = _wilson_bounds(x1, n1, z_crit)
        l2, u2 = _wilson_bounds(x2, n2, z_crit)
        low = float(newcombe_low(p1, l1, p2, u2))
        high = -float(newcombe_low(p2, l2, p1, u1))  # the upper bound of p1 − p2 is −(low of p2 − p1)
    elif ci_method == "wald":
        half = z_crit * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
        low, high = diff - half, diff + half
    else:
        raise ValueError(f"unknown ci_method {ci_method!r}")
    return TwoProportionTest(
        x1=x1,
        n1=n1,
        x2=x2,
        n2=n2,
        p1=p1,
        p2=p2,
        diff=diff,
        z=z,
        p_value=p_value,
        ci_low=max(-1.0, low),
        ci_high=min(1.0, high),
        confidence=confidence,
        ci_method=ci_method,
    )
