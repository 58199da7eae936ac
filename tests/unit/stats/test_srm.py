"""Sample ratio mismatch: equals scipy.stats.chisquare, flags broken splits, leaves fair ones alone."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats  # type: ignore[import-untyped]

from shadowlane.stats.srm import DEFAULT_SRM_ALPHA, sample_ratio_mismatch


def test_matches_scipy_chisquare_for_random_counts_and_weights() -> None:
    rng = np.random.default_rng(41)
    for _ in range(200):
        arms = int(rng.integers(2, 6))
        weights = rng.uniform(0.1, 3.0, arms)
        counts = rng.multinomial(int(rng.integers(100, 50_000)), rng.dirichlet(weights * 50))
        r = sample_ratio_mismatch(counts.tolist(), weights.tolist())
        expected = counts.sum() * weights / weights.sum()
        ref = stats.chisquare(counts, expected)
        assert r.chi2 == pytest.approx(float(ref.statistic), rel=1e-10)
        assert r.p_value == pytest.approx(float(ref.pvalue), rel=1e-9, abs=1e-300)
        assert r.dof == arms - 1
        assert r.expected == pytest.approx(tuple(expected))


def test_broken_50_50_split_is_flagged_and_the_default_alpha_is_strict() -> None:
    assert DEFAULT_SRM_ALPHA == 0.001
    mild = sample_ratio_mismatch([5_000, 5_300])
    assert mild.p_value == pytest.approx(float(stats.chisquare([5_000, 5_300]).pvalue), rel=1e-10)
    assert mild.p_value == pytest.approx(0.00312, abs=1e-5)
    assert not mild.mismatch  # p ≈ 0.003 is not below the SRM alpha of 0.001 ...
    assert sample_ratio_mismatch([5_000, 5_300], alpha=0.01).mismatch  # ... but is below 0.01
    broken = sample_ratio_mismatch([5_000, 5_400])
    assert broken.mismatch
    assert broken.p_value < 1e-4
    fair = sample_ratio_mismatch([5_000, 5_020])
    assert not fair.mismatch
    assert fair.p_value > 0.5


def test_fair_random_splits_are_rarely_flagged() -> None:
    rng = np.random.default_rng(42)
    trials = 3_000
    flagged = sum(
        sample_ratio_mismatch([int(a), 10_300 - int(a)]).mismatch for a in rng.binomial(10_300, 0.5, trials)
    )
    # expected 3 at alpha = 0.001; 10 is more than 4 sd above that
    assert flagged <= 10


def test_planned_unequal_weights() -> None:
    assert not sample_ratio_mismatch([9_010, 990], [0.9, 0.1]).mismatch
    assert sample_ratio_mismatch([9_300, 700], [0.9, 0.1]).mismatch
    assert (
        sample_ratio_mismatch([9_300, 700], [9, 1]).p_value
        == sample_ratio_mismatch([9_300, 700], [0.9, 0.1]).p_value
    )


def test_zero_weight_arm() -> None:
    leaked = sample_ratio_mismatch([500, 480, 3], [1, 1, 0])
    assert leaked.mismatch
    assert math.isinf(leaked.chi2)
    assert leaked.p_value == 0.0
    quiet = sample_ratio_mismatch([500, 480, 0], [1, 1, 0])
    assert quiet.dof == 1
    assert quiet.p_value == pytest.approx(float(stats.chisquare([500, 480]).pvalue), rel=1e-10)


def test_too_few_assignments_are_not_flagged() -> None:
    r = sample_ratio_mismatch([0, 9])
    assert r.p_value < 0.01
    assert not r.enough_data
    assert not r.mismatch
    empty = sample_ratio_mismatch([0, 0])
    assert (empty.p_value, empty.mismatch, empty.enough_data) == (1.0, False, False)


@pytest.mark.parametrize(
    ("observed", "weights"),
    [([5], None), ([5, 5], [1.0]), ([5, -1], None), ([5, 5], [1.0, -1.0]), ([5, 5], [0.0, 0.0])],
)
def test_rejects_bad_input(observed: list[int], weights: list[float] | None) -> None:
    with pytest.raises(ValueError, match=r"arms|non-negative|positive"):
        sample_ratio_mismatch(observed, weights)
