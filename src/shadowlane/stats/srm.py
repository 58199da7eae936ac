"""Sample ratio mismatch (SRM): are the observed assignment counts per arm consistent with the plan?

Pearson's chi-square goodness-of-fit test of observed counts against ``total · weight / Σweights``,
``chi2 = Σ (o - e)² / e`` with ``k - 1`` degrees of freedom (k = arms with a positive weight); the
statistic and p-value equal ``scipy.stats.chisquare(observed, expected)``.

``mismatch`` is raised at ``p < alpha`` with a default alpha of **0.001**, the customary SRM
threshold: the check runs on every experiment (and often at every look), the counts are large, and
a real mismatch (a broken splitter, a crashing arm, a filter applied to one arm only) shows up with
tiny p-values, so a strict alpha keeps false alarms rare without missing real breakage. For scale:
a planned 50/50 split observed as 5,000 vs 5,300 gives p ≈ 0.003 (not flagged at 0.001), while
5,000 vs 5,400 gives p ≈ 9e-5 (flagged).

An arm with weight 0 is expected to receive nothing: if it did, chi2 is infinite and ``mismatch``
is set; if it did not, it is left out of the test. The chi-square approximation wants every
expected count ≳ 5; with fewer, ``p_value`` is reported but ``mismatch`` is not raised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from shadowlane.stats.distributions import chi2_sf

DEFAULT_SRM_ALPHA = 0.001
MIN_EXPECTED = 5.0


@dataclass(frozen=True, slots=True)
class SrmResult:
    """Chi-square goodness of fit of assignment counts; ``mismatch`` when p < alpha."""

    observed: tuple[int, ...]
    expected: tuple[float, ...]
    chi2: float
    dof: int
    p_value: float
    alpha: float
    mismatch: bool
    enough_data: bool  # every tested arm expects at least MIN_EXPECTED assignments


def sample_ratio_mismatch(
    observed: Sequence[int], weights: Sequence[float] | None = None, *, alpha: float = DEFAULT_SRM_ALPHA
) -> SrmResult:
    """Test observed counts per arm against planned weights (equal weights when ``None``)."""
    counts = tuple(int(c) for c in observed)
    shares = tuple(float(w) for w in weights) if weights is not None else (1.0,) * len(counts)
    if len(counts) < 2 or len(shares) != len(counts):
        raise ValueError("need at least two arms and one weight per arm")
    if any(c < 0 for c in counts) or any(not (w >= 0 and math.isfinite(w)) for w in shares):
        raise ValueError("counts and weights must be non-negative and finite")
    if sum(shares) <= 0:
        raise ValueError("at least one weight must be positive")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    total, weight_sum = sum(counts), sum(shares)
    expected = tuple(total * w / weight_sum for w in shares)
    if any(w == 0 and c > 0 for c, w in zip(counts, shares, strict=True)):
        return SrmResult(counts, expected, math.inf, len(counts) - 1, 0.0, alpha, True, total > 0)
    tested = [(c, e) for c, e, w in zip(counts, expected, shares, strict=True) if w > 0]
    dof = len(tested) - 1
    if total == 0 or dof == 0:
        return SrmResult(counts, expected, 0.0, dof, 1.0, alpha, False, False)
    chi2 = sum((c - e) ** 2 / e for c, e in tested)
    p_value = chi2_sf(chi2, dof)
    enough = all(e >= MIN_EXPECTED for _, e in tested)
    return SrmResult(counts, expected, chi2, dof, p_value, alpha, enough and p_value < alpha, enough)
