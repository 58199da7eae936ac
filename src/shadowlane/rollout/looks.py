"""The significance level of each look of a rollout stage: peeking without inflating false verdicts.

A rollout judges every evaluation window, so no look may use the whole α. Two rules:

- ``confidence_sequence`` (the default, :func:`sequence_look`): each look's bounds are those of an
  always-valid one-sided normal-mixture confidence sequence (:mod:`shadowlane.stats.confidence_sequence`)
  tuned to be tightest at the stage's planned samples. It holds over every look at once, however
  many, and keeps deciding after the planned samples (no α runs out, so a stage never stalls on it).
- ``alpha_spending``: an O'Brien-Fleming-type Lan-DeMets function spends α over the planned
  samples (:mod:`shadowlane.stats.sequential`): :func:`look_alpha_for` gives one look the
  union-bound increment α(t_k) − α(t_{k−1}) (valid for any statistic and any dependence between
  looks), :func:`look_schedule` that or (``exact=True``) the exact group-sequential levels. After the
  planned samples it cannot reject any more.

:func:`look_for` picks by rule; :func:`fixed_look` is a single unplanned look with the whole α.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from shadowlane.stats.confidence_sequence import look_level
from shadowlane.stats.sequential import SpendingKind, SpendingPlan

DEFAULT_ALPHA = 0.05
SEQUENCE_PLANNED_PER_MIN_SAMPLES = 15  # default tuning point of a sequence: 15 × min_samples (3,000)
LookRule = Literal["confidence_sequence", "alpha_spending"]
LOOK_RULES: tuple[LookRule, ...] = ("confidence_sequence", "alpha_spending")


@dataclass(frozen=True, slots=True)
class LookAlpha:
    """The one-sided level ``alpha`` of one look, and where it comes from."""

    alpha: float
    fraction: float = 1.0  # information fraction t_k = samples / planned samples
    fraction_prev: float = 0.0
    spent: float = DEFAULT_ALPHA  # cumulative α(t_k)
    total_alpha: float = DEFAULT_ALPHA
    rule: str = "fixed"  # fixed | union_bound | group_sequential | confidence_sequence
    index: int = 1
    planned_n: int = 0  # the stage's planned samples (0: a fixed look); a sequence is tightest there
    n: int = 0  # samples at this look (a confidence sequence's level depends on it)

    @property
    def sequence(self) -> bool:
        """Whether this look's bounds are a confidence sequence's (valid at every look at once)."""
        return self.rule == "confidence_sequence"

    def level(self, parts: int = 1) -> float:
        """One-sided nominal level of a test that gets ``1/parts`` of this look's α (Bonferroni over
        ``parts`` gates): for a sequence, the level of the sequence at ``total_alpha / parts``."""
        if parts <= 1:
            return self.alpha
        if self.sequence:
            return look_level(max(1, self.n), max(1, self.planned_n), self.total_alpha / parts)
        return self.alpha / parts

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
    return LookAlpha(level, t_now, t_prev, plan.spent(n_now), alpha, "union_bound", index, planned_n)


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
        LookAlpha(b.nominal_alpha, b.fraction, t, b.spent, alpha, "group_sequential", i + 1, planned_n)
        for i, (b, t) in enumerate(zip(bounds, t_prev, strict=True))
    )


def sequence_look(n: int, planned_n: int, *, alpha: float = DEFAULT_ALPHA, index: int = 1) -> LookAlpha:
    """The look after ``n`` samples of a confidence sequence tuned at ``planned_n`` (its nominal
    one-sided level; valid at every n, also beyond ``planned_n``)."""
    level = look_level(max(1, n), max(1, planned_n), alpha)
    planned = max(1, planned_n)
    return LookAlpha(level, n / planned, 0.0, alpha, alpha, "confidence_sequence", index, planned, n)


def look_for(
    rule: LookRule, n: int, planned_n: int, *, n_prev: int = 0, alpha: float = DEFAULT_ALPHA, index: int = 1
) -> LookAlpha:
    """This look's level under ``rule`` (see the module docstring)."""
    if rule == "confidence_sequence":
        return sequence_look(n, planned_n, alpha=alpha, index=index)
    return look_alpha_for(max(n, n_prev), planned_n, n_prev=n_prev, alpha=alpha, index=index)


def stage_look(n: int, min_samples: int, *, alpha: float = DEFAULT_ALPHA) -> LookAlpha:
    """The default look after ``n`` samples of a stage: the confidence sequence tightest at
    ``SEQUENCE_PLANNED_PER_MIN_SAMPLES × min_samples``."""
    return sequence_look(n, SEQUENCE_PLANNED_PER_MIN_SAMPLES * min_samples, alpha=alpha)
