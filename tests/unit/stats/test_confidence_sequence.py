"""The normal-mixture confidence sequence against scipy (the mixture integral, the root, the normal
tail) and against simulated Brownian paths (time-uniform crossing ≤ α, and not vacuous)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize, stats  # type: ignore[import-untyped]

from shadowlane.rollout.looks import look_for, sequence_look
from shadowlane.stats.confidence_sequence import (
    boundary,
    log_mixture,
    look_level,
    tuned_rho,
    z_multiplier,
)


def _mixture_by_quadrature(s: float, v: float, rho: float) -> float:
    """∫_0^∞ exp(λs − λ²v/2) · 2·N(λ; 0, 1/ρ) dλ, by scipy.integrate.quad."""
    density = stats.halfnorm(scale=1 / math.sqrt(rho)).pdf
    value, _ = integrate.quad(lambda lam: math.exp(lam * s - lam * lam * v / 2) * density(lam), 0, np.inf)
    return float(value)


@pytest.mark.parametrize(("s", "v", "rho"), [(0.0, 100.0, 15.0), (30.0, 400.0, 60.0), (-5.0, 50.0, 5.0),
                                             (120.0, 3_000.0, 450.0)])  # fmt: skip
def test_the_mixture_is_the_half_normal_integral(s: float, v: float, rho: float) -> None:
    assert log_mixture(s, v, rho) == pytest.approx(math.log(_mixture_by_quadrature(s, v, rho)), rel=1e-6)


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.2])
@pytest.mark.parametrize("v", [10.0, 1_000.0, 250_000.0])
def test_the_boundary_is_where_the_mixture_reaches_one_over_alpha(alpha: float, v: float) -> None:
    rho = 0.15 * v
    b = boundary(v, rho, alpha)
    root = optimize.brentq(lambda s: log_mixture(s, v, rho) + math.log(alpha), 0.0, 50.0 * math.sqrt(v))
    assert b == pytest.approx(root, rel=1e-8)
    # Howard et al.'s closed form approximates it within a few percent
    approx = math.sqrt(2 * (v + rho) * math.log(math.sqrt((v + rho) / rho) / (2 * alpha) + 1))
    assert b == pytest.approx(approx, rel=0.03)


def test_the_tuned_sequence_is_tightest_at_its_planned_samples() -> None:
    rho = tuned_rho(3_000, 0.05)
    z = z_multiplier(3_000, rho, 0.05)
    assert z < z_multiplier(3_000, rho * 0.8, 0.05)
    assert z < z_multiplier(3_000, rho * 1.25, 0.05)
    assert 2.7 < z < 2.85  # a fixed-n one-sided test needs 1.645: the price of looking at every n
    assert z_multiplier(10_000, rho, 0.05) < 2.9  # and it keeps deciding past the planned samples


def test_a_look_level_is_the_normal_tail_of_the_multiplier() -> None:
    z = z_multiplier(1_234, tuned_rho(3_000, 0.05), 0.05)
    assert look_level(1_234, 3_000, 0.05) == pytest.approx(stats.norm.sf(z), rel=1e-9)
    look = sequence_look(1_234, 3_000)
    assert look.alpha == pytest.approx(stats.norm.sf(z), rel=1e-9)
    assert look.rule == "confidence_sequence"
    assert look.planned_n == 3_000
    assert look_for("confidence_sequence", 1_234, 3_000) == look
    assert look_for("alpha_spending", 1_234, 3_000).rule == "union_bound"
    assert look_level(0, 3_000, 0.05) == 0.0


def test_brownian_paths_cross_the_boundary_at_most_alpha_of_the_time() -> None:
    """Gaussian random walks looked at after every observation up to 20,000: the share that ever
    crosses b(n) is ≤ α (Ville) and not far below it (the sequence is not vacuously wide)."""
    alpha, steps, paths = 0.05, 20_000, 4_000
    rho = tuned_rho(3_000, alpha)
    n = np.arange(1, steps + 1, dtype=np.float64)
    b = np.array([boundary(float(v), rho, alpha) for v in n])
    rng = np.random.default_rng(22)
    crossed = np.zeros(paths, dtype=bool)
    sums = np.zeros(paths)
    for start in range(0, steps, 1_000):
        block = np.cumsum(rng.standard_normal((paths, 1_000)), axis=1) + sums[:, None]
        crossed |= (block >= b[start : start + 1_000]).any(axis=1)
        sums = block[:, -1]
    share = crossed.mean()
    se = math.sqrt(alpha * (1 - alpha) / paths)
    assert share <= alpha + 3 * se
    assert share > alpha / 3


@pytest.mark.parametrize(("v", "rho", "alpha"), [(0.0, 1.0, 0.05), (1.0, 0.0, 0.05), (1.0, 1.0, 1.0)])
def test_bad_arguments_are_refused(v: float, rho: float, alpha: float) -> None:
    with pytest.raises(ValueError, match=r"alpha|rho"):
        boundary(v, rho, alpha)
