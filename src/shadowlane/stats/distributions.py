"""The distribution functions the rollout statistics need, without scipy at runtime.

- Standard normal ``norm_cdf`` / ``norm_sf`` through ``math.erfc``, so both tails keep full relative
  precision (no ``1 - cdf`` cancellation); ``norm_pdf``.
- Standard normal ``norm_ppf`` / ``norm_isf``: Acklam's rational approximation (relative error
  ≤ 1.15e-9) refined by one Halley step against ``erfc``, which brings it to ~1e-15. The upper tail
  is computed as the mirror of the lower one, so tiny tail probabilities (alpha-spending increments
  of 1e-12) keep their precision.
- ``chi2_sf``: the regularized upper incomplete gamma Q(k/2, x/2) — power series for
  x < a + 1, modified-Lentz continued fraction otherwise (Numerical Recipes §6.2), prefactor via
  ``math.lgamma``. Relative accuracy ~1e-13 for the degrees of freedom an SRM check meets.
- ``binom_cdf_all``: P(B ≤ k) for every k = 0..n of a binomial, from a log-pmf built by cumulative
  sums (numpy, O(n)); used to pick order statistics for quantile intervals.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

_SQRT2 = math.sqrt(2.0)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_MAX_ITER = 100_000
_EPS = 1e-16
_TINY = 1e-300

# Acklam's coefficients: central region (a, b), tails (c, d); break point P_LOW.
_A = (
    -3.969683028665376e01,
    2.209460984245205e02,
    -2.759285104469687e02,
    1.383577518672690e02,
    -3.066479806614716e01,
    2.506628277459239e00,
)
_B = (
    -5.447609879822406e01,
    1.615858368580409e02,
    -1.556989798598866e02,
    6.680131188771972e01,
    -1.328068155288572e01,
)
_C = (
    -7.784894002430293e-03,
    -3.223964580411365e-01,
    -2.400758277161838e00,
    -2.549732539343734e00,
    4.374664141464968e00,
    2.938163982698783e00,
)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
_P_LOW = 0.02425


def norm_pdf(x: float) -> float:
    """Standard normal density."""
    return math.exp(-0.5 * x * x) / _SQRT_2PI


def norm_cdf(x: float) -> float:
    """P(Z ≤ x) for a standard normal Z."""
    return 0.5 * math.erfc(-x / _SQRT2)


def norm_sf(x: float) -> float:
    """P(Z > x) for a standard normal Z, accurate far into the upper tail."""
    return 0.5 * math.erfc(x / _SQRT2)


def _lower_ppf(p: float) -> float:
    """Quantile for 0 < p ≤ 0.5 (Acklam, then one Halley step)."""
    if p < _P_LOW:
        q = math.sqrt(-2.0 * math.log(p))
        c, d = _C, _D
        num = ((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]
        x = num / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0)
    else:
        q = p - 0.5
        r = q * q
        a, b = _A, _B
        num = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
        x = num / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0)
    error = norm_cdf(x) - p
    density = norm_pdf(x)
    if error == 0.0 or density == 0.0:
        return x
    u = error / density
    return x - u / (1.0 + 0.5 * x * u)


def norm_ppf(p: float) -> float:
    """The x with P(Z ≤ x) = p; ±inf at p = 0 / 1."""
    if not 0.0 <= p <= 1.0:  # also rejects NaN
        raise ValueError(f"probability must be in [0, 1], got {p!r}")
    if p == 0.0:
        return -math.inf
    if p == 1.0:
        return math.inf
    if p > 0.5:
        return -_lower_ppf(1.0 - p)  # 1 - p is exact for p ≥ 0.5
    return _lower_ppf(p)


def norm_isf(q: float) -> float:
    """The x with P(Z > x) = q, precise for tiny q (e.g. critical values of small alphas)."""
    return -norm_ppf(q)


def _log_gamma_prefactor(a: float, x: float) -> float:
    return a * math.log(x) - x - math.lgamma(a)


def _gamma_p_series(a: float, x: float) -> float:
    """Regularized lower incomplete gamma P(a, x) by its power series (use for x < a + 1)."""
    ap = a
    term = total = 1.0 / a
    for _ in range(_MAX_ITER):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * math.exp(_log_gamma_prefactor(a, x))


def _gamma_q_continued_fraction(a: float, x: float) -> float:
    """Regularized upper incomplete gamma Q(a, x) by modified Lentz (use for x ≥ a + 1)."""
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_ITER):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = d if abs(d) >= _TINY else _TINY
        c = b + an / c
        c = c if abs(c) >= _TINY else _TINY
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return math.exp(_log_gamma_prefactor(a, x)) * h


def gamma_q(a: float, x: float) -> float:
    """Regularized upper incomplete gamma Q(a, x) = Γ(a, x) / Γ(a), a > 0, x ≥ 0."""
    if not a > 0.0:
        raise ValueError(f"shape must be positive, got {a!r}")
    if not x >= 0.0:
        raise ValueError(f"x must be non-negative, got {x!r}")
    if x == 0.0:
        return 1.0
    if math.isinf(x):
        return 0.0
    if x < a + 1.0:
        return max(0.0, 1.0 - _gamma_p_series(a, x))
    return min(1.0, _gamma_q_continued_fraction(a, x))


def chi2_sf(x: float, dof: float) -> float:
    """P(X > x) for a chi-square X with ``dof`` > 0 degrees of freedom."""
    if not dof > 0.0:
        raise ValueError(f"degrees of freedom must be positive, got {dof!r}")
    if math.isnan(x):
        raise ValueError("x is NaN")
    if x <= 0.0:
        return 1.0
    return gamma_q(0.5 * dof, 0.5 * x)


def binom_cdf_all(n: int, p: float) -> NDArray[np.float64]:
    """``cdf[k] = P(B ≤ k)`` for k = 0..n, B ~ Binomial(n, p); O(n) time and memory."""
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    if p == 0.0:
        return np.ones(n + 1, dtype=np.float64)
    if p == 1.0:
        cdf = np.zeros(n + 1, dtype=np.float64)
        cdf[n] = 1.0
        return cdf
    k = np.arange(1, n + 1, dtype=np.float64)
    log_odds = math.log(p) - math.log1p(-p)
    log_pmf0 = n * math.log1p(-p)
    steps = np.log(n - k + 1.0) - np.log(k) + log_odds
    log_pmf = np.empty(n + 1, dtype=np.float64)
    log_pmf[0] = log_pmf0
    np.cumsum(steps, out=log_pmf[1:])
    log_pmf[1:] += log_pmf0
    cdf = np.cumsum(np.exp(log_pmf))
    np.minimum(cdf, 1.0, out=cdf)
    return cdf
