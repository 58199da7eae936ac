"""Alpha spending: naive peeking inflates A/A false alarms, both spending rules keep them at or below α."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats  # type: ignore[import-untyped]

from shadowlane.stats.proportions import two_proportion_test
from shadowlane.stats.sequential import SpendingKind, SpendingPlan, group_sequential_bounds, look_alpha, spend

ALPHA = 0.05
FIVE_LOOKS = (0.2, 0.4, 0.6, 0.8, 1.0)
KINDS: tuple[SpendingKind, ...] = ("obrien_fleming", "pocock")


def _brownian_z(
    rng: np.random.Generator, experiments: int, fractions: tuple[float, ...]
) -> NDArray[np.float64]:
    """Z_k = B(t_k)/√t_k under H0: the joint law of z-tests on cumulative data (experiments × looks)."""
    t = np.asarray(fractions)
    steps = rng.normal(size=(experiments, t.size)) * np.sqrt(np.diff(t, prepend=0.0))
    z: NDArray[np.float64] = np.cumsum(steps, axis=1) / np.sqrt(t)
    return z


def test_spending_functions() -> None:
    z = stats.norm.isf(ALPHA / 2)
    for t in (0.01, 0.2, 0.5, 0.9):
        assert spend(ALPHA, t) == pytest.approx(2 * stats.norm.sf(z / math.sqrt(t)), rel=1e-12)
        assert spend(ALPHA, t, "pocock") == pytest.approx(ALPHA * math.log(1 + (math.e - 1) * t), rel=1e-12)
    for kind in KINDS:
        grid = [spend(ALPHA, t, kind) for t in np.linspace(0.0, 1.0, 101)]
        assert grid[0] == 0.0
        assert grid[-1] == ALPHA
        assert all(b >= a for a, b in itertools.pairwise(grid))
        assert spend(ALPHA, 1.7, kind) == ALPHA
    with pytest.raises(ValueError, match="spending function"):
        spend(ALPHA, 0.5, "haybittle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha"):
        spend(1.0, 0.5)


def test_look_alphas_add_up_to_alpha() -> None:
    fractions = [0.0, *FIVE_LOOKS]
    per_look = [look_alpha(ALPHA, a, b) for a, b in itertools.pairwise(fractions)]
    assert sum(per_look) == pytest.approx(ALPHA, rel=1e-12)
    assert per_look == sorted(per_look)  # O'Brien-Fleming: stingy early, generous late
    assert look_alpha(ALPHA, 1.0, 1.0) == 0.0
    with pytest.raises(ValueError, match="decrease"):
        look_alpha(ALPHA, 0.5, 0.4)


def test_one_sided_obrien_fleming_bounds_match_published_values() -> None:
    # gsDesign, sfLDOF, one-sided alpha = 0.025, five equally spaced looks
    looks = group_sequential_bounds(0.025, FIVE_LOOKS, sides=1)
    assert [lk.z for lk in looks] == pytest.approx([4.8769, 3.3569, 2.6803, 2.2898, 2.0310], abs=2e-4)
    assert [lk.spent for lk in looks][-1] == 0.025


def test_naive_peeking_inflates_false_alarms_and_spending_does_not() -> None:
    rng = np.random.default_rng(61)
    experiments = 100_000
    z = np.abs(_brownian_z(rng, experiments, FIVE_LOOKS))
    p = 2 * stats.norm.sf(z)
    sd = math.sqrt(ALPHA * (1 - ALPHA) / experiments)
    naive = np.mean((p <= ALPHA).any(axis=1))
    assert naive > 0.12  # ≈ 0.142 for five looks
    fractions = [0.0, *FIVE_LOOKS]
    union = np.array([look_alpha(ALPHA, a, b) for a, b in itertools.pairwise(fractions)])
    union_rate = np.mean((p <= union).any(axis=1))
    assert union_rate <= ALPHA + 3 * sd
    for kind in KINDS:
        looks = group_sequential_bounds(ALPHA, FIVE_LOOKS, kind=kind)
        crossed = z >= np.array([lk.z for lk in looks])
        assert np.mean(crossed.any(axis=1)) == pytest.approx(ALPHA, abs=4 * sd)
        first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
        spent = np.array([lk.spent for lk in looks])
        for k in range(5):  # every look spends what the function allows, no more
            by_look_k = np.mean((first >= 0) & (first <= k))
            assert by_look_k == pytest.approx(spent[k], abs=4 * math.sqrt(max(spent[k], 1e-4) / experiments))
    exact_final = group_sequential_bounds(ALPHA, FIVE_LOOKS)[-1].nominal_alpha
    assert exact_final > 1.5 * union[-1]  # exact boundaries waste less alpha than the union bound


def test_one_sided_exact_bounds_hold_alpha_with_many_uneven_looks() -> None:
    rng = np.random.default_rng(62)
    fractions = tuple(float(t) for t in np.cumsum(rng.uniform(0.5, 1.5, 20)) / 20.0)  # ends near 1
    looks = group_sequential_bounds(0.025, fractions, sides=1)
    z = _brownian_z(rng, 100_000, fractions)
    rate = np.mean((z >= np.array([lk.z for lk in looks])).any(axis=1))
    target = looks[-1].spent
    assert rate == pytest.approx(target, abs=4 * math.sqrt(target / 100_000))
    union = look_alpha(0.025, fractions[-2], fractions[-1])
    assert looks[-1].nominal_alpha > 3 * union


def test_aa_two_proportion_tests_at_every_window() -> None:
    rng = np.random.default_rng(63)
    experiments, per_window, rate = 3_000, 400, 0.1
    a = np.cumsum(rng.binomial(per_window, rate, (experiments, 5)), axis=1)
    b = np.cumsum(rng.binomial(per_window, rate, (experiments, 5)), axis=1)
    plan = SpendingPlan(alpha=ALPHA, planned_n=5 * per_window)
    ns = [per_window * (k + 1) for k in range(5)]
    thresholds_union = [plan.look_alpha(prev, now) for prev, now in zip([0, *ns], ns, strict=False)]
    thresholds_exact = [lk.nominal_alpha for lk in plan.bounds(ns)]
    naive = union = exact = 0
    for i in range(experiments):
        p = [two_proportion_test(int(a[i, k]), ns[k], int(b[i, k]), ns[k]).p_value for k in range(5)]
        naive += any(pk <= ALPHA for pk in p)
        union += any(pk <= th for pk, th in zip(p, thresholds_union, strict=True))
        exact += any(pk <= th for pk, th in zip(p, thresholds_exact, strict=True))
    sd = math.sqrt(ALPHA * (1 - ALPHA) / experiments)
    assert naive / experiments > ALPHA + 5 * sd
    assert union / experiments <= ALPHA + 3 * sd
    assert exact / experiments <= ALPHA + 3 * sd


def test_plan_caps_information_and_repeated_looks_cannot_reject() -> None:
    plan = SpendingPlan(alpha=ALPHA, planned_n=1_000, kind="pocock")
    assert plan.fraction(250) == 0.25
    assert plan.fraction(5_000) == 1.0
    assert plan.spent(1_000) == ALPHA
    assert plan.look_alpha(1_000, 1_500) == 0.0  # past the plan: nothing left to spend
    looks = plan.bounds([200, 200, 600, 1_000, 1_400])
    assert looks[1].z == math.inf
    assert looks[1].nominal_alpha == 0.0
    assert looks[4].z == math.inf
    assert looks[3].spent == ALPHA
    direct = group_sequential_bounds(ALPHA, [0.2, 0.6, 1.0], kind="pocock")
    assert looks[3].z == pytest.approx(direct[2].z, abs=1e-6)
    with pytest.raises(ValueError, match="planned_n"):
        SpendingPlan(alpha=ALPHA, planned_n=0)
    with pytest.raises(ValueError, match="non-decreasing"):
        group_sequential_bounds(ALPHA, [0.5, 0.4])
    with pytest.raises(ValueError, match="sides"):
        group_sequential_bounds(ALPHA, [0.5], sides=3)  # type: ignore[arg-type]
