"""Normal, chi-square and binomial functions agree with scipy.stats to near machine precision."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats  # type: ignore[import-untyped]

from shadowlane.stats.distributions import (
    binom_cdf_all,
    chi2_sf,
    gamma_q,
    norm_cdf,
    norm_isf,
    norm_pdf,
    norm_ppf,
    norm_sf,
)


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def test_normal_cdf_sf_pdf_match_scipy_including_far_tails() -> None:
    rng = np.random.default_rng(11)
    xs = np.concatenate([rng.normal(0.0, 3.0, 2_000), [-37.0, -20.0, -8.0, 0.0, 8.0, 20.0, 37.0]])
    for x in xs:
        assert _rel(norm_cdf(float(x)), float(stats.norm.cdf(x))) < 1e-12
        assert _rel(norm_sf(float(x)), float(stats.norm.sf(x))) < 1e-12
        assert _rel(norm_pdf(float(x)), float(stats.norm.pdf(x))) < 1e-12


def test_normal_ppf_isf_match_scipy_to_1e_12() -> None:
    rng = np.random.default_rng(12)
    ps = np.concatenate(
        [rng.random(3_000), 10.0 ** -np.arange(1.0, 300.0, 3.0), 1.0 - 10.0 ** -np.arange(1.0, 16.0)]
    )
    for p in ps:
        assert _rel(norm_ppf(float(p)), float(stats.norm.ppf(p))) < 1e-12
        assert _rel(norm_isf(float(p)), float(stats.norm.isf(p))) < 1e-12
    assert norm_ppf(0.0) == -math.inf
    assert norm_ppf(1.0) == math.inf
    assert norm_ppf(0.5) == 0.0
    assert norm_isf(0.025) == pytest.approx(1.959963984540054, abs=1e-14)


def test_normal_ppf_and_isf_invert_cdf_and_sf() -> None:
    for x in np.linspace(-30.0, 30.0, 601):
        if x <= 0:
            assert norm_ppf(norm_cdf(float(x))) == pytest.approx(x, rel=1e-12, abs=1e-12)
        else:
            assert norm_isf(norm_sf(float(x))) == pytest.approx(x, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("p", [-0.1, 1.5, math.nan])
def test_normal_ppf_rejects_non_probabilities(p: float) -> None:
    with pytest.raises(ValueError, match="probability"):
        norm_ppf(p)


def test_chi2_sf_matches_scipy_over_many_x_and_dof() -> None:
    rng = np.random.default_rng(13)
    checked = 0
    for _ in range(4_000):
        dof = float(rng.integers(1, 300)) if rng.random() < 0.8 else float(rng.uniform(0.1, 50.0))
        x = float(rng.gamma(dof / 2.0, 2.0) * rng.uniform(0.05, 4.0))
        expected = float(stats.chi2.sf(x, dof))
        if expected > 1e-300:
            assert _rel(chi2_sf(x, dof), expected) < 1e-10, (x, dof)
            checked += 1
    assert checked > 3_500
    for dof in (1, 2, 3, 10):  # deep tails and near zero
        for x in (1e-8, 0.5, 50.0, 300.0, 1_000.0):
            assert _rel(chi2_sf(x, dof), float(stats.chi2.sf(x, dof))) < 1e-10


def test_chi2_and_gamma_edges() -> None:
    assert chi2_sf(0.0, 3) == 1.0
    assert chi2_sf(-1.0, 3) == 1.0
    assert chi2_sf(math.inf, 3) == 0.0
    assert gamma_q(2.5, 0.0) == 1.0
    assert gamma_q(1.0, 3.0) == pytest.approx(math.exp(-3.0), rel=1e-14)
    with pytest.raises(ValueError, match="degrees of freedom"):
        chi2_sf(1.0, 0)
    with pytest.raises(ValueError, match="NaN"):
        chi2_sf(math.nan, 1)
    with pytest.raises(ValueError, match="shape"):
        gamma_q(0.0, 1.0)


@pytest.mark.parametrize(
    ("n", "p"), [(0, 0.3), (1, 0.5), (10, 0.3), (500, 0.95), (2_000, 0.99), (200_000, 0.5)]
)
def test_binomial_cdf_matches_scipy(n: int, p: float) -> None:
    cdf = binom_cdf_all(n, p)
    assert cdf.shape == (n + 1,)
    assert np.max(np.abs(cdf - stats.binom.cdf(np.arange(n + 1), n, p))) < 1e-8
    assert cdf[-1] == pytest.approx(1.0, abs=1e-9)


def test_binomial_cdf_degenerate_rates() -> None:
    assert binom_cdf_all(4, 0.0).tolist() == [1.0] * 5
    assert binom_cdf_all(4, 1.0).tolist() == [0.0, 0.0, 0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="p must be"):
        binom_cdf_all(4, 1.5)
    with pytest.raises(ValueError, match="n must be"):
        binom_cdf_all(-1, 0.5)
