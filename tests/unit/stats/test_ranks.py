"""Mann-Whitney U matches scipy.stats.mannwhitneyu (asymptotic, continuity) on raw and weighted samples."""

from __future__ import annotations

import time
from typing import get_args

import numpy as np
import pytest
from scipy import stats  # type: ignore[import-untyped]

from shadowlane.stats.ranks import Alternative, mann_whitney_u, mann_whitney_u_weighted

ALTERNATIVES: tuple[Alternative, ...] = get_args(Alternative)


def _scipy(x: np.ndarray, y: np.ndarray, alternative: str, continuity: bool = True) -> tuple[float, float]:
    r = stats.mannwhitneyu(x, y, alternative=alternative, method="asymptotic", use_continuity=continuity)
    return float(r.statistic), float(r.pvalue)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_matches_scipy_with_ties_and_unequal_sizes(alternative: Alternative) -> None:
    rng = np.random.default_rng(31)
    for trial in range(40):
        n1, n2 = int(rng.integers(5, 400)), int(rng.integers(5, 400))
        if trial % 2:  # heavy ties
            x, y = rng.integers(0, 12, n1).astype(float), rng.integers(1, 13, n2).astype(float)
        else:
            x, y = rng.lognormal(3.5, 0.5, n1), rng.lognormal(3.6, 0.6, n2)
        for continuity in (True, False):
            ours = mann_whitney_u(x, y, alternative=alternative, use_continuity=continuity)
            u, p = _scipy(x, y, alternative, continuity)
            assert ours.u == u
            assert ours.p_value == pytest.approx(p, rel=1e-9, abs=1e-300)
            assert (ours.n1, ours.n2, ours.alternative) == (n1, n2, alternative)


def test_weighted_input_equals_the_expanded_samples_and_scipy() -> None:
    rng = np.random.default_rng(32)
    xv, yv = rng.integers(100, 200, 60).astype(float), rng.integers(110, 210, 45).astype(float)  # repeats
    xc, yc = rng.integers(0, 40, 60), rng.integers(0, 40, 45)
    x, y = np.repeat(xv, xc), np.repeat(yv, yc)
    for alternative in ALTERNATIVES:
        weighted = mann_whitney_u_weighted(xv, xc, yv, yc, alternative=alternative)
        expanded = mann_whitney_u(x, y, alternative=alternative)
        u, p = _scipy(x, y, alternative)
        assert weighted.u == expanded.u == u
        assert weighted.p_value == pytest.approx(p, rel=1e-9)
        assert weighted.z == pytest.approx(expanded.z, rel=1e-12)
        assert (weighted.n1, weighted.n2) == (int(xc.sum()), int(yc.sum()))


def test_two_samples_of_50k_rank_fast_and_match_scipy() -> None:
    rng = np.random.default_rng(33)
    x, y = np.round(rng.lognormal(4.0, 0.7, 50_000), 1), np.round(rng.lognormal(4.01, 0.7, 50_000), 1)
    start = time.perf_counter()
    ours = mann_whitney_u(x, y)
    elapsed = time.perf_counter() - start
    u, p = _scipy(x, y, "two-sided")
    assert ours.u == u
    assert ours.p_value == pytest.approx(p, rel=1e-9)
    assert elapsed < 1.0


def test_a_clear_shift_is_significant_and_effect_is_the_pairwise_probability() -> None:
    rng = np.random.default_rng(34)
    x, y = rng.normal(1.0, 1.0, 300), rng.normal(0.0, 1.0, 200)
    r = mann_whitney_u(x, y, alternative="greater")
    assert r.p_value < 1e-10
    assert r.z > 0
    pairwise = np.mean((x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :]))
    assert r.effect == pytest.approx(pairwise, rel=1e-12)


def test_all_values_tied_means_no_evidence() -> None:
    r = mann_whitney_u([5.0] * 10, [5.0] * 7)
    assert (r.u, r.z, r.p_value) == (35.0, 0.0, 1.0)


def test_rejects_nan_empty_and_bad_counts() -> None:
    with pytest.raises(ValueError, match="NaN"):
        mann_whitney_u([1.0, float("nan")], [1.0])
    with pytest.raises(ValueError, match="at least one"):
        mann_whitney_u([], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least one"):
        mann_whitney_u_weighted([1.0], [0], [2.0], [3])
    with pytest.raises(ValueError, match="non-negative integers"):
        mann_whitney_u_weighted([1.0], [1.5], [2.0], [3])
    with pytest.raises(ValueError, match="one count per value"):
        mann_whitney_u_weighted([1.0, 2.0], [1], [2.0], [3])
    with pytest.raises(ValueError, match="alternative"):
        mann_whitney_u([1.0], [2.0], alternative="bigger")  # type: ignore[arg-type]
