"""Quantile, quantile-ratio and mean intervals: numpy point estimates, coverage checked by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram
from scipy import stats  # type: ignore[import-untyped]

from shadowlane.stats.quantiles import (
    MeanCI,
    mean_ci,
    mean_difference_ci,
    mean_ratio_ci,
    order_statistic_ranks,
    percentile_rank,
    quantile_ci,
    quantile_difference_ci,
    quantile_ratio_ci,
)

TRIALS = 500
TOLERANCE = 3.0 * math.sqrt(0.95 * 0.05 / TRIALS)  # three binomial sd of a 95 % coverage estimate


def test_point_estimate_is_hdrhistograms_percentile_for_raw_and_weighted_input() -> None:
    """The estimate is the order statistic HdrHistogram's ``get_value_at_percentile`` reads, so a
    gate's estimate and a window summary's percentile are the same value."""
    rng = np.random.default_rng(51)
    for n in (1, 2, 7, 100, 311, 1_001):
        ints = rng.integers(1, 2_000, n)
        hist = HdrHistogram(1, 10_000, 5)  # 5 significant digits: every value 1..2000 exact
        for v in ints:
            hist.record_value(int(v))
        distinct, counts = np.unique(ints.astype(float), return_counts=True)
        for q in (0.0, 0.01, 0.25, 0.5, 0.95, 0.99, 1.0):
            raw = quantile_ci(ints.astype(float), q)
            assert quantile_ci(distinct, q, counts=counts) == raw
            if q > 0:  # hdrh reads p0 as the lowest bucket's start, not a recorded value
                assert raw.estimate == hist.get_value_at_percentile(q * 100), (n, q)
    values = np.arange(1.0, 312.0)  # 311 · 0.95 = 295.45: nearest rank 295 (⌈n·q⌉ would be 296)
    assert quantile_ci(values, 0.95).estimate == 295.0
    assert percentile_rank(311, 95.0) == 295


def test_point_estimate_reads_q_as_written_despite_float_rounding() -> None:
    values = np.arange(1.0, 101.0)
    # 0.07 · 100 is 7.000000000000001 in floating point; the 7 % quantile of 1..100 is 7
    assert quantile_ci(values, 0.07).estimate == 7.0
    assert quantile_ci(values, 0.075).estimate == 8.0  # rank 7.5 rounds half up


def test_ranks_have_binomial_tails_at_most_alpha_half() -> None:
    for n in (20, 100, 367, 2_000, 50_000):
        for q in (0.5, 0.95, 0.99):
            r = order_statistic_ranks(n, q)
            below = stats.binom.cdf(r.lower - 1, n, q) if r.lower >= 1 else 0.0
            above = stats.binom.sf(r.upper - 1, n, q) if r.upper <= n else 0.0
            assert below <= 0.025 + 1e-9
            assert above <= 0.025 + 1e-9
            assert r.coverage == pytest.approx(1.0 - below - above, abs=1e-8)
            assert r.coverage >= 0.95 - 1e-9
            if r.lower >= 1:  # tightest: one rank further in breaks the tail bound
                assert stats.binom.cdf(r.lower, n, q) > 0.025
            assert (r.upper <= n) == (q**n <= 0.025)  # p99 needs 367+ values for an upper bound


def test_large_n_uses_the_normal_approximation_consistently() -> None:
    n, q = 3_000_000, 0.95
    r = order_statistic_ranks(n, q)
    exact_lower = int(stats.binom.ppf(0.025, n, q))  # smallest k with cdf(k) ≥ 0.025
    assert abs(r.lower - exact_lower) <= 2
    assert abs(r.upper - (int(stats.binom.isf(0.025, n, q)) + 1)) <= 2
    assert r.coverage == pytest.approx(0.95, abs=1e-3)


def test_small_samples_leave_the_tail_quantile_unbounded() -> None:
    ci = quantile_ci(np.arange(1.0, 51.0), 0.99)
    assert ci.ci_high == math.inf
    assert math.isfinite(ci.ci_low)
    assert not ci.bounded
    ratio = quantile_ratio_ci(np.arange(1.0, 51.0), np.arange(1.0, 51.0), 0.99)
    assert (ratio.ci_low, ratio.ci_high) == (0.0, math.inf)
    conservative = quantile_ratio_ci(np.arange(1.0, 51.0), np.arange(1.0, 51.0), 0.99, method="conservative")
    assert (conservative.ci_low, conservative.ci_high) == (0.0, math.inf)


def test_quantile_ci_coverage_on_continuous_data() -> None:
    rng = np.random.default_rng(52)
    true_p95 = math.exp(1.0 * stats.norm.ppf(0.95))
    hits = 0
    for _ in range(TRIALS):
        ci = quantile_ci(rng.lognormal(0.0, 1.0, 400), 0.95)
        hits += ci.ci_low <= true_p95 <= ci.ci_high
    assert hits / TRIALS >= 0.95 - TOLERANCE
    assert hits / TRIALS <= 0.99


def test_quantile_ci_coverage_on_histogram_like_ties() -> None:
    rng = np.random.default_rng(53)
    true_median = 10.0  # the median of round(N(10, 3)) is 10 exactly (discrete; ties everywhere)
    hits = 0
    for _ in range(TRIALS):
        values, counts = np.unique(np.round(rng.normal(10.0, 3.0, 300)), return_counts=True)
        ci = quantile_ci(values, 0.5, counts=counts)
        hits += ci.ci_low <= true_median <= ci.ci_high
    assert hits / TRIALS >= 0.95 - TOLERANCE


@pytest.mark.parametrize("method", ["price_bonett", "conservative"])
def test_p95_ratio_interval_coverage(method: str) -> None:
    rng = np.random.default_rng(54)
    hits = 0
    for _ in range(TRIALS):
        candidate, baseline = 1.2 * rng.lognormal(3.5, 0.8, 500), rng.lognormal(3.5, 0.8, 400)
        ci = quantile_ratio_ci(candidate, baseline, 0.95, method=method)  # type: ignore[arg-type]
        hits += ci.ci_low <= 1.2 <= ci.ci_high
    coverage = hits / TRIALS
    assert coverage >= 0.95 - TOLERANCE
    if method == "price_bonett":
        assert coverage <= 0.95 + TOLERANCE


def test_p95_uplift_of_20_percent_is_detected_at_2000_requests() -> None:
    rng = np.random.default_rng(55)
    detected = 0
    for _ in range(100):
        candidate, baseline = 1.2 * rng.lognormal(3.5, 0.6, 2_000), rng.lognormal(3.5, 0.6, 2_000)
        values, counts = np.unique(np.round(candidate), return_counts=True)  # ms buckets, as a histogram
        detected += quantile_ratio_ci(values, baseline, 0.95, x_counts=counts).ci_low > 1.0
    assert detected >= 95


def test_median_difference_interval_coverage() -> None:
    rng = np.random.default_rng(56)
    hits = 0
    for _ in range(TRIALS):
        ci = quantile_difference_ci(rng.normal(2.0, 1.0, 300), rng.normal(0.0, 2.0, 250), 0.5)
        hits += ci.ci_low <= 2.0 <= ci.ci_high
    assert abs(hits / TRIALS - 0.95) <= TOLERANCE


def test_ratio_needs_positive_values_and_methods_are_validated() -> None:
    with pytest.raises(ValueError, match="positive"):
        quantile_ratio_ci([0.0, 1.0, 2.0], [1.0, 2.0], 0.5)
    with pytest.raises(ValueError, match="method"):
        quantile_ratio_ci([1.0, 2.0], [1.0, 2.0], 0.5, method="bootstrap")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="q must be"):
        quantile_ci([1.0], 1.5)
    with pytest.raises(ValueError, match="counts"):
        quantile_ci([1.0, 2.0], 0.5, counts=[1, -1])
    with pytest.raises(ValueError, match="at least one"):
        quantile_ci([1.0, 2.0], 0.5, counts=[0, 0])


def test_mean_ci_from_sums_matches_scipy() -> None:
    rng = np.random.default_rng(57)
    values = rng.exponential(40.0, 1_000)
    ci = mean_ci(values.size, float(values.sum()), float((values**2).sum()))
    low, high = stats.norm.interval(0.95, loc=values.mean(), scale=stats.sem(values))
    assert ci.mean == pytest.approx(values.mean(), rel=1e-12)
    assert ci.se == pytest.approx(stats.sem(values), rel=1e-9)
    assert ci.ci_low == pytest.approx(low, rel=1e-9)
    assert ci.ci_high == pytest.approx(high, rel=1e-9)
    single = mean_ci(1, 3.0, 9.0)
    assert (single.ci_low, single.ci_high) == (-math.inf, math.inf)


def _mean(values: np.ndarray) -> MeanCI:
    return mean_ci(values.size, float(values.sum()), float((values**2).sum()))


def test_mean_ratio_and_difference_coverage() -> None:
    rng = np.random.default_rng(58)
    ratio_hits = diff_hits = 0
    for _ in range(TRIALS):
        x, y = rng.exponential(1.3, 400), rng.exponential(1.0, 300)
        ratio = mean_ratio_ci(_mean(x), _mean(y))
        diff = mean_difference_ci(_mean(x), _mean(y))
        ratio_hits += ratio.ci_low <= 1.3 <= ratio.ci_high
        diff_hits += diff.ci_low <= 0.3 <= diff.ci_high
    assert abs(ratio_hits / TRIALS - 0.95) <= TOLERANCE
    assert abs(diff_hits / TRIALS - 0.95) <= TOLERANCE
    with pytest.raises(ValueError, match="positive means"):
        mean_ratio_ci(mean_ci(2, -1.0, 1.0), _mean(np.ones(3)))
