"""Always-valid one-sided bounds: the normal-mixture confidence sequence a rollout may look at any time.

A rollout judges its gates after every window, for as long as a stage runs. Alpha spending
(:mod:`shadowlane.stats.sequential`) makes that safe only up to a planned sample size, after which
no α is left and a stage can only stall. A *confidence sequence* instead holds at every sample size
at once: P(∃ n: the bound is crossed) ≤ α, however often and however long one looks.

**The boundary** (Robbins 1970; Howard, Ramdas, McAuliffe & Sekhon 2021, "Time-uniform,
nonparametric, nonasymptotic confidence sequences", §3.2). For a sum ``S_v`` of centred increments
with variance process ``v`` (a Brownian motion in its own time), mixing the exponential martingale
``exp(λS − λ²v/2)`` over a half-normal λ ≥ 0 with precision ``ρ`` gives the test martingale

    M(s, v) = 2·√(ρ/(v+ρ)) · exp(s²/(2(v+ρ))) · Φ(s/√(v+ρ)),

and by Ville's inequality ``P(∃ v: S_v ≥ b(v)) ≤ α`` for ``b(v)`` the root of ``M(b, v) = 1/α``. A
statistic that is asymptotically a mean of ``v = n`` standardised observations therefore has the
one-sided bound ``estimate ± z(n)·se`` with ``z(n) = b(n)/√n``: the *asymptotic* confidence sequence
of Waudby-Smith, Arnold, Wu, Howard & Ramdas (2024, "Time-uniform central limit theory and
asymptotic confidence sequences"), valid over all n as the variance estimate settles.

**Tuning.** ``ρ`` sets where the sequence is tightest: :func:`tuned_rho` picks the ρ that minimises
``z`` at a chosen sample size (the stage's planned samples). The sequence stays valid before and
after it, only a little wider: one-sided α = 0.05 tuned at 3,000 gives z = 2.90 at 1,000, 2.77-2.78
from 2,000 to 4,000 and 2.85 at 10,000 (a fixed-n test needs 1.645; O'Brien-Fleming spending over
10,000 planned samples, looked at every 400, needs 3.88 at 2,400, 2.96 at 4,800, 2.62 at 9,600,
and cannot reject after 10,000).

:func:`look_level` turns ``z(n)`` into the one-sided nominal level the gates' fixed-sample intervals
take (``α_n = Φ̄(z(n))``), so every gate statistic keeps its one implementation.
"""

from __future__ import annotations

import math
from functools import lru_cache

from shadowlane.stats.distributions import norm_cdf, norm_sf

_R_LOW, _R_HIGH = 1e-3, 50.0  # search range of ρ / v at the tuning point


def _check(alpha: float, v: float, rho: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not (v > 0 and rho > 0) or math.isinf(v) or math.isinf(rho):
        raise ValueError(f"need v > 0 and rho > 0 (finite), got v={v!r}, rho={rho!r}")


def _log_norm_cdf(x: float) -> float:
    if x > -30.0:
        return math.log(max(norm_cdf(x), 1e-300))
    return -0.5 * x * x - math.log(-x) - 0.5 * math.log(2.0 * math.pi)  # Mills ratio, far left tail


def log_mixture(s: float, v: float, rho: float) -> float:
    """ln M(s, v): the half-normal mixture of ``exp(λs − λ²v/2)`` over λ ≥ 0 with precision ρ."""
    w = v + rho
    return math.log(2.0) + 0.5 * math.log(rho / w) + s * s / (2.0 * w) + _log_norm_cdf(s / math.sqrt(w))


def boundary(v: float, rho: float, alpha: float) -> float:
    """The one-sided normal-mixture boundary ``b(v)``: the ``s`` where ``M(s, v) = 1/α``."""
    _check(alpha, v, rho)
    target = -math.log(alpha)
    w = v + rho
    # M is increasing in s; the approximation of Howard et al. (eq. 3.6) brackets the root
    guess = math.sqrt(2.0 * w * math.log(math.sqrt(w / rho) / (2.0 * alpha) + 1.0))
    low, high = 0.0, max(guess, 1.0)
    while log_mixture(high, v, rho) < target:
        high *= 2.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if log_mixture(mid, v, rho) < target:
            low = mid
        else:
            high = mid
        if high - low <= 1e-10 * max(1.0, high):
            break
    return high


def z_multiplier(n: float, rho: float, alpha: float) -> float:
    """``z(n) = b(n)/√n``: the bound is ``estimate ± z(n)·se`` after n observations."""
    return boundary(n, rho, alpha) / math.sqrt(n)


@lru_cache(maxsize=256)
def tuned_rho(horizon: int, alpha: float) -> float:
    """The ρ that makes the sequence tightest at ``horizon`` observations (golden-section search
    over ρ/horizon; z is unimodal in it)."""
    if horizon < 1:
        raise ValueError(f"horizon must be ≥ 1, got {horizon}")
    phi = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = math.log(_R_LOW), math.log(_R_HIGH)

    def z(log_r: float) -> float:
        return z_multiplier(horizon, horizon * math.exp(log_r), alpha)

    c, d = b - phi * (b - a), a + phi * (b - a)
    zc, zd = z(c), z(d)
    while b - a > 1e-4:
        if zc < zd:
            b, d, zd = d, c, zc
            c = b - phi * (b - a)
            zc = z(c)
        else:
            a, c, zc = c, d, zd
            d = a + phi * (b - a)
            zd = z(d)
    return horizon * math.exp(0.5 * (a + b))


def look_level(n: int, horizon: int, alpha: float) -> float:
    """One-sided nominal level ``Φ̄(z(n))`` of the look after ``n`` observations, the sequence tuned
    at ``horizon``: a fixed-sample bound at this level is the confidence sequence's bound."""
    if n < 1:
        return 0.0
    return norm_sf(z_multiplier(n, tuned_rho(horizon, alpha), alpha))
