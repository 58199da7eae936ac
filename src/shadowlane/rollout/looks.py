"""The significance level of each look of a rollout stage: alpha spending against peeking.

A rollout judges every evaluation window, so each look may only spend part of α. Levels come from
an O'Brien-Fleming-type Lan-DeMets spending function over the stage's planned samples
(:mod:`shadowlane.stats.sequential`): :func:`look_alpha_for` gives one look the union-bound increment
α(t_k) − α(t_{k−1}) (valid for any statistic and any dependence between looks), and
:func:`look_schedule` that or (``exact=True``) the exact one-sided group-sequential levels of a
whole schedule. :func:`fixed_look` is a single unplanned look with the whole α.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shadowlane.stats.sequential import SpendingKind, SpendingPlan

DEFAULT_ALPHA = 0.05


@dataclass(frozen=True, slots=True)
class LookAlpha:
    """The one-sided level ``alpha`` of one look, and where it comes from."""

    alpha: float
    fraction: float = 1.0  # information fraction t_k = samples / planned samples
    fraction_prev: float = 0.0
    spent: float = DEFAULT_ALPHA  # cumulative α(t_k)
    total_alpha: float = DEFAULT_ALPHA
    rule: str = "fixed"  # fixed | union_bound | group_sequential
    index: int = 1

    @property
    def confidence(self) -> float:
        """Two-sided level of the look's intervals (each end a one-sided bound at ``alpha``)."""
        return 1.0 - 2.0 * self.alpha


def fixed_look(alpha: float = DEFAULT_ALPHA) -> LookAlpha:
    """A single, unplanned look: the whole α."""
    return LookAlpha(alpha=alpha, spent=alpha, total_alpha=alpha)


def look_alpha_for(
    n_now: int, planned_n: int, *, n_prev: int = 0, alpha: float = DEFAULT_ALPHA,
    kind: SpendingKind = "obrien_fleming", index: int = 1,
) -> LookAlpha:  # fmt: skip
    """Union-bound level of the look at ``n_now`` samples after the previous one at ``n_prev``."""
    plan = SpendingPlan(alpha, planned_n, kind, sides=1)
    level = plan.look_alpha(n_prev, n_now)
    t_now, t_prev = plan.fraction(n_now), plan.fraction(n_prev)
    return LookAlpha(level, t_now, t_prev, plan.spent(n_now), alpha, "union_bound", index)


def look_schedule(
    looks_n: Sequence[int], planned_n: int, *, alpha: float = DEFAULT_ALPHA,
    kind: SpendingKind = "obrien_fleming", exact: bool = False,
) -> tuple[LookAlpha, ...]:  # fmt: skip
    """Levels of every look of a schedule: union bound, or exact group-sequential (one-sided)."""
    prev = [0, *looks_n[:-1]]
    if not exact:
        return tuple(
            look_alpha_for(n, planned_n, n_prev=p, alpha=alpha, kind=kind, index=i + 1)
            for i, (p, n) in enumerate(zip(prev, looks_n, strict=True))
        )
    bounds = SpendingPlan(alpha, planned_n, kind, sides=1).bounds(list(looks_n))
    t_prev = [0.0, *(b.fraction for b in bounds[:-1])]
    return tuple(
        LookAlpha(b.nominal_alpha, b.fraction, t, b.spent, alpha, "group_sequential", i + 1)
        for i, (b, t) in enumerate(zip(bounds, t_prev, strict=True))
    )
