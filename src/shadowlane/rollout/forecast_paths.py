"""One undecided gate's simulated futures for the way forward (:mod:`shadowlane.rollout.forecast`).

:func:`gate_paths` draws ``PATHS`` futures of a gate's estimate at the future looks of a
:class:`Horizon` and applies the gate's own rules to each: a mean-like statistic moves by its
posterior drift and Brownian increments, a rate by Jeffreys-posterior binomial counts checked
against its bound as a critical count (Wilson's, the inversion of the score test, or the exact
always-valid mixture bound of :mod:`shadowlane.stats.rate_sequence`). It returns, per path and
look, whether the gate PASSes and whether it FAILs there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from shadowlane.stats.distributions import norm_isf
from shadowlane.stats.proportions import newcombe_low, wilson_bounds
from shadowlane.stats.rate_sequence import rejects

if TYPE_CHECKING:
    from shadowlane.rollout.gates import GateResult

Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]
PATHS = 500
_RATES = frozenset({"shadow_error_rate", "lambda_flip_rate", "tool_success_rate"})
_EXACT = "exact always-valid"  # gate_stats' sentence for the Bernoulli mixture bound of a rate
# where the exact rate bound is tabulated: 16 points a decade, 10 to 20,000 trials (beyond: extrapolated)
_MIXTURE_GRID = np.log(np.logspace(1, math.log10(20_000), 54))


@dataclass(frozen=True, slots=True)
class Horizon:
    n: int  # requests now
    ns: Floats  # future looks (requests)
    gaps: Floats  # requests between consecutive looks
    z: Floats  # PASS-level multiplier at each look (inf: no α there)
    z_fail: Floats
    alpha: float  # the exact rate bound's α (time-uniform), and its FAIL level
    alpha_fail: float
    counts: Bools  # looks that may decide (≥ min_samples, some α)
    sticky: bool  # a confidence sequence: a gate that passed stays passed (evaluate's ``held``)


# ---------------------------------------------------------------------- one gate's paths
def gate_paths(
    g: GateResult, h: Horizon, fail_rule: str, rng: np.random.Generator
) -> tuple[Bools, Bools] | str:
    if g.value is None or g.ci_low is None or g.ci_high is None or g.n <= 0:
        return "no statistic"
    if g.metric in _RATES:
        return _rate_paths(g, h, fail_rule, rng)
    return _normal_paths(g, h, fail_rule, rng)


def _normal_paths(
    g: GateResult, h: Horizon, fail_rule: str, rng: np.random.Generator
) -> tuple[Bools, Bools] | str:
    assert g.value is not None
    assert g.ci_low is not None
    assert g.ci_high is not None
    up = g.direction == "max"
    z_now = norm_isf((1.0 - g.confidence) / 2.0)
    high, low = g.ci_high - g.value, g.value - g.ci_low
    se_bad, se_good = (high, low) if up else (low, high)
    se_bad, se_good = max(0.0, se_bad) / z_now, max(0.0, se_good) / z_now
    if not (math.isfinite(se_bad) and math.isfinite(se_good)):
        return "its interval is unbounded at this sample size: no variance to project from"
    se = 0.5 * (se_bad + se_good)
    scale = np.sqrt(h.n / h.ns)
    x = _mean_path(g.value, se, h, rng)
    sign = 1.0 if up else -1.0
    passed = sign * (x + sign * h.z * se_bad * scale - g.threshold) <= 0
    beyond = sign * (x - g.threshold) > 0
    if fail_rule == "worse_than_reference" and g.worse_low is not None and g.worse_high is not None:
        ref = g.reference or 0.0
        d_hat = g.value - ref
        se_d = max(0.0, (d_hat - g.worse_low) if up else (g.worse_high - d_hat)) / z_now
        if not math.isfinite(se_d):
            return "its FAIL interval is unbounded at this sample size"
        se_ref = math.sqrt(max(0.0, se_d * se_d - se * se))
        r = _mean_path(ref, se_ref, h, rng) if se_ref > 0 else ref
        fails = beyond & (sign * (x - r - sign * h.z_fail * se_d * scale) > 0)
    else:
        fails = beyond & (sign * (x - sign * h.z_fail * se_good * scale - g.threshold) > 0)
    return passed, fails


def _mean_path(value: float, se: float, h: Horizon, rng: np.random.Generator) -> Floats:
    """Draws of the estimate at each future look: posterior drift plus Brownian increments."""
    drift = value + se * rng.standard_normal((PATHS, 1))
    walk = np.cumsum(rng.standard_normal((PATHS, h.ns.size)) * np.sqrt(h.gaps), axis=1)
    out: Floats = (h.n * value + (h.ns - h.n) * drift + se * math.sqrt(h.n) * walk) / h.ns
    return out


def _rate_paths(g: GateResult, h: Horizon, fail_rule: str, rng: np.random.Generator) -> tuple[Bools, Bools]:
    assert g.value is not None
    up = g.direction == "max"
    # count the events against the gate: errors / flips (a max), failed tool calls (a min)
    tau = g.threshold if up else 1.0 - g.threshold
    bad0 = round((g.value if up else 1.0 - g.value) * g.n)
    events, trials = _count_path(bad0, g.n, h, rng)
    exact = _EXACT in g.statistic and h.alpha < 1.0
    passed = events <= _critical(trials, tau, h.z, h.alpha if exact else None)
    beyond = events > tau * trials
    if fail_rule == "worse_than_reference" and g.reference is not None and g.worse_low is not None and up:
        ref_events, ref_trials = _count_path(round(g.reference * g.n), g.n, h, rng)
        low1, _ = wilson_bounds(events / trials, trials, h.z_fail)
        _, high2 = wilson_bounds(ref_events / ref_trials, ref_trials, h.z_fail)
        low = np.where(
            np.isfinite(h.z_fail),
            newcombe_low(events / trials, low1, ref_events / ref_trials, high2),
            -np.inf,
        )
        fails = beyond & (low > 0)
    else:  # the bad rate's lower bound beyond the threshold: its complement's upper bound below 1 − τ
        good = trials - events
        fails = beyond & (good <= _critical(trials, 1.0 - tau, h.z_fail, h.alpha_fail if exact else None))
    return passed, fails


def _count_path(x: int, n: int, h: Horizon, rng: np.random.Generator) -> tuple[Floats, Floats]:
    """Cumulative events and trials at each future look: Jeffreys-posterior rate, binomial counts
    (normal once a step expects ≥ 25 events and non-events' variance: the far, geometric looks)."""
    share = n / h.n
    p = rng.beta(x + 0.5, n - x + 0.5, (PATHS, 1))
    m = np.round(share * h.gaps).astype(np.int64)
    bar = (x + 0.5) / (n + 1.0)
    big = m * bar * (1.0 - bar) >= 25.0
    steps = np.empty((PATHS, m.size), dtype=np.float64)
    steps[:, ~big] = rng.binomial(m[~big], p)
    mean = p * m[big]
    noise = rng.standard_normal((PATHS, int(big.sum())))
    steps[:, big] = np.maximum(0.0, np.round(mean + np.sqrt(mean * (1.0 - p)) * noise))
    return x + np.cumsum(steps, axis=1), n + np.cumsum(m).astype(np.float64)


def _critical(trials: Floats, tau: float, z: Floats, alpha: float | None) -> Floats:
    """The most events whose upper bound is ≤ τ after ``trials``: Wilson at ``z`` (score-test
    inversion) or, with ``alpha``, the exact mixture bound (−1: none)."""
    if tau <= 0.0:
        return np.full(trials.shape, -1.0)
    if tau >= 1.0:  # a bound of 100 %: every count is within it
        return trials.astype(np.float64)
    spread = math.sqrt(tau * (1.0 - tau))
    if alpha is None:
        with np.errstate(invalid="ignore"):
            out: Floats = np.floor(trials * tau - z * spread * np.sqrt(trials))
        return np.where(np.isfinite(out), out, -1.0)
    logs = np.log(np.maximum(trials, 1.0))
    first, last = np.searchsorted(_MIXTURE_GRID, [logs.min(), logs.max()])
    grid = _MIXTURE_GRID[max(0, min(first - 1, _MIXTURE_GRID.size - 2)) : last + 1]
    k2 = np.array([_mixture_k(round(math.exp(v)), tau, alpha) for v in grid]) ** 2
    # beyond the table k² grows linearly in ln n, as the mixture boundary does (√(ln n) asymptotics)
    slope = (k2[-1] - k2[-2]) / (grid[-1] - grid[-2])
    ks = np.sqrt(np.where(logs > grid[-1], k2[-1] + slope * (logs - grid[-1]), np.interp(logs, grid, k2)))
    crit: Floats = np.floor(trials * tau - ks * spread * np.sqrt(trials))
    return crit


@lru_cache(maxsize=8192)
def _mixture_k(n: int, tau: float, alpha: float) -> float:
    """(nτ − c)/√(nτ(1−τ)) for c the most events the mixture bound still clears τ with."""
    if not rejects(0, n, tau, alpha):
        return 1e9  # not even zero events clear τ yet
    low, high = 0, max(0, math.floor(n * tau))
    while low < high:
        mid = (low + high + 1) // 2
        if rejects(mid, n, tau, alpha):
            low = mid
        else:
            high = mid - 1
    return (n * tau - low) / math.sqrt(n * tau * (1.0 - tau))
