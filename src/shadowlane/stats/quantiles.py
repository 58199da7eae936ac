"""Quantiles and means with confidence intervals, from raw values or weighted (value, count) pairs.

Gates see per-window summaries: counts, sums and HdrHistograms (latency per arm, ΔS × 1e4). Every
function here therefore accepts ``values`` with optional ``counts`` (a histogram's recorded values
and their counts); raw arrays are the special case of counts all 1.

**Point estimate.** The q-quantile is the order statistic ``x_(k)`` with HdrHistogram's nearest rank,
``k = max(1, ⌊100q·n/100 + ½⌋)`` (:func:`percentile_rank`): always an observed value, identical for
raw and weighted input, and the value a window summary reads from its histogram, so a summary, a
gate and a report name the same order statistic.

**Quantile CI** (distribution-free, binomial order statistics). The number of observations below
the true quantile ξ_q is Binomial(n, q), so ``[x_(l), x_(u)]`` covers ξ_q with probability at least
``P(l ≤ B ≤ u - 1)`` for *any* distribution, continuous or with ties (histogram buckets) — equality
for continuous ones. ``l`` and ``u`` are the tightest ranks whose tails are each ≤ (1 - confidence)/2,
from the exact binomial for n ≤ 10⁶ and the normal approximation (continuity corrected) beyond.
When no such rank exists (e.g. p99 from fewer than 367 values) that side is unbounded (±inf): the
caller must treat the estimate as inconclusive. ``coverage`` reports the guaranteed level achieved.

**Ratio / difference of two independent quantiles** (e.g. candidate p95 / baseline p95, uplift =
ratio − 1), two methods:

- ``"price_bonett"`` (default): Price & Bonett (2002). Each arm's order-statistic interval, with its
  achieved coverage c, gives a standard error ``SE(ln ξ̂) = (ln x_(u) − ln x_(l)) / (2·z_{(1+c)/2})``;
  the log-ratio interval is ``ln(ξ̂x/ξ̂y) ± z·sqrt(SEx² + SEy²)``. Asymptotically nominal coverage
  (checked by simulation in the tests at n ≈ 500, p95, lognormal data); not a finite-sample
  guarantee. If heavy ties make x_(l) = x_(u) in an arm, that arm's SE is 0 and the interval
  reflects only the other arm; use ``"conservative"`` for coarse data.
- ``"conservative"``: each arm's order-statistic interval at level √confidence; with independent
  arms both cover at once with probability ≥ confidence, hence so does
  ``[lx/hy, hx/ly]``. Guaranteed ≥ confidence for any n and any distributions; wider.

Ratios need positive values. Independence of arms is assumed; shadow traffic sends the *same*
requests to both arms, and the positive correlation this induces makes both intervals conservative.

**Means** from ``(n, Σx, Σx²)``: ``mean ± z·s/√n`` (normal approximation, wants n ≳ 30; the sample
variance is clamped at 0 against rounding). Ratio of two independent means by the delta method on
the log scale, ``SE(ln r) = sqrt((SEx/x̄)² + (SEy/ȳ)²)`` (positive means); difference by Welch's
normal interval ``sqrt(SEx² + SEy²)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from shadowlane.stats.distributions import binom_cdf_all, norm_cdf, norm_isf, norm_ppf

EXACT_BINOMIAL_MAX_N = 1_000_000
CombineMethod = Literal["price_bonett", "conservative"]


@dataclass(frozen=True, slots=True)
class RankInterval:
    """1-based order-statistic ranks; ``lower == 0`` / ``upper == n + 1`` mean unbounded."""

    lower: int
    upper: int
    coverage: float  # guaranteed P(x_(lower) ≤ ξ_q ≤ x_(upper))


@dataclass(frozen=True, slots=True)
class QuantileCI:
    """A quantile with its distribution-free confidence interval."""

    q: float
    n: int
    estimate: float
    ci_low: float  # -inf when the data cannot bound it
    ci_high: float  # +inf when the data cannot bound it
    coverage: float
    confidence: float

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.ci_low) and math.isfinite(self.ci_high)


@dataclass(frozen=True, slots=True)
class EffectCI:
    """A ratio (x over y; uplift = ratio − 1) or difference (x − y) with its interval."""

    estimate: float
    ci_low: float
    ci_high: float
    confidence: float
    method: str


@dataclass(frozen=True, slots=True)
class MeanCI:
    """A mean with its standard error and normal-approximation interval."""

    n: int
    mean: float
    se: float
    ci_low: float
    ci_high: float
    confidence: float


@dataclass(frozen=True, slots=True)
class _Sorted:
    values: NDArray[np.float64]  # ascending, distinct or not
    cumulative: NDArray[np.float64]  # cumulative counts
    n: int

    def order_statistic(self, rank: int) -> float:
        """x_(rank), 1-based; -inf below 1, +inf above n."""
        if rank < 1:
            return -math.inf
        if rank > self.n:
            return math.inf
        return float(self.values[int(np.searchsorted(self.cumulative, rank, side="left"))])


def _sorted(values: ArrayLike, counts: ArrayLike | None) -> _Sorted:
    vals = np.asarray(values, dtype=np.float64).ravel()
    if np.isnan(vals).any():
        raise ValueError("values contain NaN")
    if counts is None:
        cnt = np.ones(vals.size, dtype=np.float64)
    else:
        cnt = np.asarray(counts, dtype=np.float64).ravel()
        if cnt.shape != vals.shape or (cnt < 0).any() or (cnt != np.floor(cnt)).any():
            raise ValueError("counts must be non-negative integers, one per value")
    keep = cnt > 0
    vals, cnt = vals[keep], cnt[keep]
    order = np.argsort(vals, kind="stable")
    cumulative = np.cumsum(cnt[order])
    n = int(cumulative[-1]) if cumulative.size else 0
    if n == 0:
        raise ValueError("need at least one observation")
    return _Sorted(vals[order], cumulative, n)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def _check(q: float, confidence: float) -> None:
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q!r}")
    _check_confidence(confidence)


def percentile_rank(n: int, percentile: float) -> int:
    """The 1-based rank of the ``percentile`` (0–100) of ``n`` sorted values: HdrHistogram's rule
    (``get_value_at_percentile``), the one every percentile here is read with."""
    return min(n, max(1, int(min(percentile, 100.0) * n / 100 + 0.5)))


def quantile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0 ≤ q ≤ 1) of raw values with :func:`percentile_rank`: the point estimate
    :func:`quantile_ci` gives and the value a window's histogram reads (to its resolution). None
    for no values. Reports and the demo read every percentile with it."""
    if not values:
        return None
    return float(sorted(values)[_estimate_rank(len(values), q) - 1])


def _estimate_rank(n: int, q: float) -> int:
    return percentile_rank(n, round(q * 100, 9))  # round: 0.07·100 is 7.000000000000001


def order_statistic_ranks(n: int, q: float, confidence: float = 0.95) -> RankInterval:
    """Ranks (l, u) with P(B ≤ l−1) ≤ α/2 and P(B ≥ u) ≤ α/2 for B ~ Binomial(n, q)."""
    _check(q, confidence)
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    tail = (1.0 - confidence) / 2.0
    if n <= EXACT_BINOMIAL_MAX_N:
        cdf = binom_cdf_all(n, q)
        lower = int(np.searchsorted(cdf, tail, side="right"))  # #k with cdf[k] ≤ tail
        upper = int(np.searchsorted(cdf[:n], 1.0 - tail, side="left")) + 1
        below = float(cdf[lower - 1]) if lower >= 1 else 0.0
        within = float(cdf[upper - 1]) if upper <= n else 1.0
        return RankInterval(lower, upper, within - below)
    mean, sd = n * q, math.sqrt(n * q * (1.0 - q))
    z = norm_isf(tail)
    lower = max(0, math.floor(mean - z * sd + 0.5))
    upper = min(n + 1, math.ceil(mean + z * sd + 0.5))
    below = norm_cdf((lower - 0.5 - mean) / sd) if lower >= 1 else 0.0
    within = norm_cdf((upper - 0.5 - mean) / sd) if upper <= n else 1.0
    return RankInterval(lower, upper, within - below)


def _quantile_ci(data: _Sorted, q: float, confidence: float) -> QuantileCI:
    ranks = order_statistic_ranks(data.n, q, confidence)
    return QuantileCI(
        q=q,
        n=data.n,
        estimate=data.order_statistic(_estimate_rank(data.n, q)),
        ci_low=data.order_statistic(ranks.lower),
        ci_high=data.order_statistic(ranks.upper),
        coverage=ranks.coverage,
        confidence=confidence,
    )


def quantile_ci(
    values: ArrayLike, q: float, *, counts: ArrayLike | None = None, confidence: float = 0.95
) -> QuantileCI:
    """The q-quantile (inverted cdf) and its order-statistic interval, guaranteed ≥ ``coverage``."""
    _check(q, confidence)
    return _quantile_ci(_sorted(values, counts), q, confidence)


def _price_bonett_se(ci: QuantileCI, log: bool) -> float:
    if not ci.bounded:
        return math.inf
    z_c = norm_ppf((1.0 + ci.coverage) / 2.0)
    if log:
        return (math.log(ci.ci_high) - math.log(ci.ci_low)) / (2.0 * z_c)
    return (ci.ci_high - ci.ci_low) / (2.0 * z_c)


def _combine(
    x: _Sorted, y: _Sorted, q: float, confidence: float, method: CombineMethod, ratio: bool
) -> EffectCI:
    _check(q, confidence)
    if method == "conservative":
        level = math.sqrt(confidence)
        cx, cy = _quantile_ci(x, q, level), _quantile_ci(y, q, level)
    elif method == "price_bonett":
        cx, cy = _quantile_ci(x, q, confidence), _quantile_ci(y, q, confidence)
    else:
        raise ValueError(f"unknown method {method!r}")
    if ratio and min(x.values[0], y.values[0]) <= 0.0:
        raise ValueError("a ratio of quantiles needs positive values")
    estimate = cx.estimate / cy.estimate if ratio else cx.estimate - cy.estimate
    if method == "conservative":
        if ratio:
            low = cx.ci_low / cy.ci_high if math.isfinite(cy.ci_high) and cx.ci_low > 0 else 0.0
            high = cx.ci_high / cy.ci_low if cy.ci_low > 0 else math.inf
        else:
            low, high = cx.ci_low - cy.ci_high, cx.ci_high - cy.ci_low
        return EffectCI(estimate, low, high, confidence, method)
    half = norm_isf((1.0 - confidence) / 2.0) * math.hypot(
        _price_bonett_se(cx, ratio), _price_bonett_se(cy, ratio)
    )
    if ratio:
        centre = math.log(estimate)
        return EffectCI(estimate, math.exp(centre - half), math.exp(centre + half), confidence, method)
    return EffectCI(estimate, estimate - half, estimate + half, confidence, method)


def quantile_ratio_ci(
    x: ArrayLike,
    y: ArrayLike,
    q: float,
    *,
    x_counts: ArrayLike | None = None,
    y_counts: ArrayLike | None = None,
    confidence: float = 0.95,
    method: CombineMethod = "price_bonett",
) -> EffectCI:
    """CI for ξ_q(x) / ξ_q(y) of two independent positive samples (uplift = ratio − 1)."""
    return _combine(_sorted(x, x_counts), _sorted(y, y_counts), q, confidence, method, ratio=True)


def quantile_difference_ci(
    x: ArrayLike,
    y: ArrayLike,
    q: float,
    *,
    x_counts: ArrayLike | None = None,
    y_counts: ArrayLike | None = None,
    confidence: float = 0.95,
    method: CombineMethod = "price_bonett",
) -> EffectCI:
    """CI for ξ_q(x) − ξ_q(y) of two independent samples."""
    return _combine(_sorted(x, x_counts), _sorted(y, y_counts), q, confidence, method, ratio=False)


def mean_ci(n: int, total: float, total_sq: float, *, confidence: float = 0.95) -> MeanCI:
    """Mean of ``n`` values from their sum and sum of squares; unbounded below two values."""
    _check_confidence(confidence)
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    mean = total / n
    if n < 2:
        return MeanCI(n, mean, math.inf, -math.inf, math.inf, confidence)
    variance = max(0.0, (total_sq - total * total / n) / (n - 1))
    se = math.sqrt(variance / n)
    half = norm_isf((1.0 - confidence) / 2.0) * se
    return MeanCI(n, mean, se, mean - half, mean + half, confidence)


def mean_ratio_ci(x: MeanCI, y: MeanCI, *, confidence: float = 0.95) -> EffectCI:
    """Delta-method CI (log scale) for mean(x) / mean(y) of independent samples with positive means."""
    _check_confidence(confidence)
    if x.mean <= 0 or y.mean <= 0:
        raise ValueError("the log-scale delta method needs positive means")
    ratio = x.mean / y.mean
    half = norm_isf((1.0 - confidence) / 2.0) * math.hypot(x.se / x.mean, y.se / y.mean)
    low, high = ratio * math.exp(-half), ratio * math.exp(half)
    return EffectCI(ratio, low, high, confidence, "delta_log")


def mean_difference_ci(x: MeanCI, y: MeanCI, *, confidence: float = 0.95) -> EffectCI:
    """Welch-type normal CI for mean(x) − mean(y) of independent samples."""
    _check_confidence(confidence)
    diff = x.mean - y.mean
    half = norm_isf((1.0 - confidence) / 2.0) * math.hypot(x.se, y.se)
    return EffectCI(diff, diff - half, diff + half, confidence, "welch_normal")
