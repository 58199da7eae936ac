"""The exact always-valid rate bound: its mixture against scipy's incomplete beta, its time-uniform
coverage on simulated Bernoulli streams, and where it beats the Wilson bound of the same look."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special  # type: ignore[import-untyped]

from shadowlane.stats.confidence_sequence import look_level
from shadowlane.stats.proportions import wilson_interval
from shadowlane.stats.rate_sequence import log_mixture, lower_bound, rejects, upper_bound


def _reference(x: int, n: int, p: float) -> float:
    """ln of B(x+1, n−x+1)·I_p(x+1, n−x+1) / (p^(x+1) (1−p)^(n−x)), by scipy."""
    log_integral = special.betaln(x + 1, n - x + 1) + math.log(special.betainc(x + 1, n - x + 1, p))
    return float(log_integral - (x + 1) * math.log(p) - (n - x) * math.log1p(-p))


@pytest.mark.parametrize(("x", "n", "p"), [(8, 4_000, 0.005), (0, 100, 0.01), (50, 1_000, 0.2),
                                           (500, 5_000, 0.1), (3, 10, 0.9), (300, 3_000, 0.05),
                                           (40, 400_000, 0.0002)])  # fmt: skip
def test_the_mixture_is_the_incomplete_beta_integral(x: int, n: int, p: float) -> None:
    assert log_mixture(x, n, p) == pytest.approx(_reference(x, n, p), rel=1e-9, abs=1e-9)


def test_the_upper_bound_is_the_least_rejected_rate() -> None:
    u = upper_bound(8, 4_000, 0.05)
    assert rejects(8, 4_000, u, 0.05)
    assert not rejects(8, 4_000, u * 0.999, 0.05)
    assert 8 / 4_000 < u < 0.005
    assert upper_bound(0, 0, 0.05) == 1.0
    assert lower_bound(0, 0, 0.05) == 0.0
    assert lower_bound(3_990, 4_000, 0.05) == pytest.approx(1 - upper_bound(10, 4_000, 0.05))


def test_rare_events_get_a_tighter_bound_than_wilson_at_the_sequences_level() -> None:
    """8 errors in 4,000: the exact bound proves ≤ 0.5 %; Wilson at the normal-mixture sequence's
    level of that look does not."""
    level = look_level(4_000, 3_000, 0.05)
    wilson_high = wilson_interval(8, 4_000, 1 - 2 * level).ci_high
    assert upper_bound(8, 4_000, 0.05) < 0.005 < wilson_high


@pytest.mark.parametrize("p", [0.002, 0.05])
def test_the_bound_holds_at_every_look_at_once(p: float) -> None:
    """Bernoulli(p) streams looked at after every 50 trials up to 6,000: the share in which "rate ≥
    p" is ever rejected (the upper bound falls below the true p) stays ≤ α."""
    alpha, paths, looks = 0.05, 600, 120
    rng = np.random.default_rng(7)
    events = np.cumsum(rng.random((paths, looks * 50)) < p, axis=1)[:, 49::50]
    missed = 0
    for row in events:
        missed += any(rejects(int(x), 50 * (k + 1), p, alpha) for k, x in enumerate(row))
    share = missed / paths
    assert alpha / 5 < share <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / paths)  # valid, not vacuous


@pytest.mark.parametrize(("x", "n", "p"), [(5, 4, 0.1), (1, 10, 0.0), (1, 10, 1.0)])
def test_bad_counts_or_rates_are_refused(x: int, n: int, p: float) -> None:
    with pytest.raises(ValueError, match=r"need 0|p must be"):
        log_mixture(x, n, p)


def test_a_bad_alpha_is_refused() -> None:
    with pytest.raises(ValueError, match="alpha"):
        upper_bound(1, 10, 1.0)
