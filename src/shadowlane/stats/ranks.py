"""Mann-Whitney U test for two independent samples, from raw arrays or weighted (value, count) pairs.

Used for latency per arm in the report. The test is the one of
``scipy.stats.mannwhitneyu(x, y, alternative=..., method="asymptotic", use_continuity=True)``:
U of the first sample ``U1 = R1 - n1(n1+1)/2`` (R1 = rank sum of ``x`` with average ranks for
ties), normal approximation with mean ``n1·n2/2``, tie-corrected variance
``n1·n2/12 · ((n+1) - Σ(t³-t)/(n(n-1)))`` and a 0.5 continuity correction; two-sided p-values use
``max(U1, U2)`` and double the tail. U and p match scipy to floating-point precision.

Ranking is vectorised: ``np.unique`` over the pooled values, then per distinct value the count from
each sample, its average rank and its tie size. Weighted input works the same way without
expanding the histogram, so there is no expansion limit; memory is O(distinct values).

Deviation from scipy: when every value is tied (zero variance) scipy returns NaN; here ``z = 0`` and
``p = 1`` (no evidence of a shift). NaN inputs are rejected rather than propagated.

Assumptions: the two samples are independent draws; the normal approximation is good for
n1, n2 ≳ 20; callers should treat smaller samples as inconclusive. ``effect = U1 / (n1·n2)`` is
the common-language effect size P(X > Y) + ½·P(X = Y).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from shadowlane.stats.distributions import norm_sf

Alternative = Literal["two-sided", "greater", "less"]


@dataclass(frozen=True, slots=True)
class MannWhitneyResult:
    """Mann-Whitney U test of ``x`` against ``y``."""

    u: float  # U of the first sample (scipy's ``statistic``)
    n1: int
    n2: int
    z: float  # (U1 - n1·n2/2) / σ, signed, without continuity correction
    p_value: float
    alternative: Alternative

    @property
    def effect(self) -> float:
        """P(X > Y) + ½·P(X = Y), estimated as U1 / (n1·n2); 0.5 means no shift."""
        return self.u / (self.n1 * self.n2)


def _values(values: ArrayLike, name: str) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    return arr


def _counts(counts: ArrayLike, size: int, name: str) -> NDArray[np.float64]:
    arr = np.asarray(counts, dtype=np.float64).ravel()
    if arr.shape != (size,):
        raise ValueError(f"{name} must have one count per value ({size}), got shape {arr.shape}")
    if (arr < 0).any() or (arr != np.floor(arr)).any():
        raise ValueError(f"{name} must be non-negative integers")
    return arr


def _test(
    x: NDArray[np.float64],
    x_counts: NDArray[np.float64] | None,
    y: NDArray[np.float64],
    y_counts: NDArray[np.float64] | None,
    alternative: Alternative,
    use_continuity: bool,
) -> MannWhitneyResult:
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"unknown alternative {alternative!r}")
    distinct, inverse = np.unique(np.concatenate([x, y]), return_inverse=True)
    size = distinct.size
    in_x = np.bincount(inverse[: x.size], weights=x_counts, minlength=size).astype(np.float64)
    in_y = np.bincount(inverse[x.size :], weights=y_counts, minlength=size).astype(np.float64)
    n1, n2 = float(in_x.sum()), float(in_y.sum())
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one observation")
    ties = in_x + in_y
    average_rank = np.cumsum(ties) - ties + (ties + 1.0) / 2.0
    u1 = float(in_x @ average_rank) - n1 * (n1 + 1.0) / 2.0
    u2 = n1 * n2 - u1
    n = n1 + n2
    mu = n1 * n2 / 2.0
    tie_term = float(np.sum(ties**3 - ties))
    variance = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0))) if n > 1 else 0.0
    sigma = math.sqrt(max(variance, 0.0))
    if sigma == 0.0:
        return MannWhitneyResult(u1, int(n1), int(n2), 0.0, 1.0, alternative)
    if alternative == "greater":
        u, factor = u1, 1.0
    elif alternative == "less":
        u, factor = u2, 1.0
    else:
        u, factor = max(u1, u2), 2.0
    numerator = u - mu - (0.5 if use_continuity else 0.0)
    p_value = min(1.0, max(0.0, factor * norm_sf(numerator / sigma)))
    return MannWhitneyResult(u1, int(n1), int(n2), (u1 - mu) / sigma, p_value, alternative)


def mann_whitney_u(
    x: ArrayLike, y: ArrayLike, *, alternative: Alternative = "two-sided", use_continuity: bool = True
) -> MannWhitneyResult:
    """Mann-Whitney U test on raw samples; ``greater`` means H1: x tends to exceed y."""
    return _test(_values(x, "x"), None, _values(y, "y"), None, alternative, use_continuity)


def mann_whitney_u_weighted(
    x_values: ArrayLike,
    x_counts: ArrayLike,
    y_values: ArrayLike,
    y_counts: ArrayLike,
    *,
    alternative: Alternative = "two-sided",
    use_continuity: bool = True,
) -> MannWhitneyResult:
    """The same test on samples given as (value, count) pairs, e.g. read from histograms.

    Equal to ``mann_whitney_u(np.repeat(x_values, x_counts), np.repeat(y_values, y_counts))``
    without the expansion; values may repeat within a sample.
    """
    xv, yv = _values(x_values, "x_values"), _values(y_values, "y_values")
    xc, yc = _counts(x_counts, xv.size, "x_counts"), _counts(y_counts, yv.size, "y_counts")
    return _test(xv, xc, yv, yc, alternative, use_continuity)
