"""Two-proportion z-test and Wilson / Newcombe intervals against the formulas, scipy and Newcombe (1998)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats  # type: ignore[import-untyped]

from shadowlane.stats.proportions import two_proportion_test, wilson_interval


def test_z_and_p_values_match_the_pooled_formula_computed_with_scipy() -> None:
    rng = np.random.default_rng(21)
    for _ in range(300):
        n1, n2 = int(rng.integers(20, 5_000)), int(rng.integers(20, 5_000))
        x1, x2 = int(rng.binomial(n1, 0.7)), int(rng.binomial(n2, 0.68))
        r = two_proportion_test(x1, n1, x2, n2)
        pooled = (x1 + x2) / (n1 + n2)
        z = (x1 / n1 - x2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        assert r.z == pytest.approx(z, rel=1e-12, abs=1e-12)
        assert r.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-10)
        assert r.p_greater == pytest.approx(stats.norm.sf(z), rel=1e-10)
        assert r.p_less == pytest.approx(stats.norm.cdf(z), rel=1e-10)
        assert r.diff == pytest.approx(x1 / n1 - x2 / n2)
        assert r.ci_low <= r.diff <= r.ci_high


def test_newcombe_interval_reproduces_the_published_examples() -> None:
    # Newcombe (1998), Stat Med 17:873, Table II, method 10
    a = two_proportion_test(56, 70, 48, 80)
    assert (round(a.ci_low, 4), round(a.ci_high, 4)) == (0.0524, 0.3339)
    b = two_proportion_test(9, 10, 3, 10)
    assert (round(b.ci_low, 4), round(b.ci_high, 4)) == (0.1705, 0.8090)


def test_wald_interval_is_the_unpooled_formula() -> None:
    r = two_proportion_test(420, 500, 380, 500, ci_method="wald", confidence=0.9)
    half = stats.norm.ppf(0.95) * math.sqrt(0.84 * 0.16 / 500 + 0.76 * 0.24 / 500)
    assert r.ci_low == pytest.approx(0.08 - half, rel=1e-12)
    assert r.ci_high == pytest.approx(0.08 + half, rel=1e-12)


def test_wilson_interval_matches_scipy() -> None:
    for k, n in [(0, 10), (1, 10), (81, 263), (999, 1_000), (50, 50), (3, 2_000)]:
        for confidence in (0.9, 0.95, 0.99):
            ours = wilson_interval(k, n, confidence)
            ref = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
            assert ours.ci_low == pytest.approx(ref.low, abs=1e-12)
            assert ours.ci_high == pytest.approx(ref.high, abs=1e-12)
            assert ours.estimate == k / n


def test_identical_degenerate_arms_show_no_difference() -> None:
    r = two_proportion_test(100, 100, 40, 40)
    assert (r.z, r.p_value, r.diff) == (0.0, 1.0, 0.0)
    assert -1.0 <= r.ci_low < 0.0 < r.ci_high <= 1.0


def test_newcombe_interval_covers_the_true_difference_about_95_percent() -> None:
    rng = np.random.default_rng(22)
    trials, n1, n2, p1, p2 = 2_000, 300, 250, 0.93, 0.97
    x1, x2 = rng.binomial(n1, p1, trials), rng.binomial(n2, p2, trials)
    results = [two_proportion_test(int(a), n1, int(b), n2) for a, b in zip(x1, x2, strict=True)]
    covered = sum(r.ci_low <= p1 - p2 <= r.ci_high for r in results)
    sd = math.sqrt(0.95 * 0.05 / trials)
    assert abs(covered / trials - 0.95) < 3.5 * sd


def test_five_point_accuracy_drop_is_detected_at_2000_requests_per_arm() -> None:
    rng = np.random.default_rng(23)
    trials, n = 400, 2_000
    cand, base = rng.binomial(n, 0.75, trials), rng.binomial(n, 0.80, trials)
    power = np.mean(
        [two_proportion_test(int(c), n, int(b), n).p_less < 0.05 for c, b in zip(cand, base, strict=True)]
    )
    assert power >= 0.95


@pytest.mark.parametrize(("x1", "n1", "x2", "n2"), [(1, 0, 1, 1), (3, 2, 1, 1), (-1, 5, 1, 1)])
def test_rejects_impossible_counts(x1: int, n1: int, x2: int, n2: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        two_proportion_test(x1, n1, x2, n2)


def test_rejects_bad_confidence_and_method() -> None:
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, confidence=1.0)
    with pytest.raises(ValueError, match="ci_method"):
        two_proportion_test(1, 2, 1, 2, ci_method="exact")  # type: ignore[arg-type]
