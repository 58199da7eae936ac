"""The statistic behind each rollout gate, with its confidence interval, from one merged window.

Each ``compute(window, confidence)`` returns a :class:`Stat` (value, interval, n, the statistic in
words, and, where the gate can be compared with a reference, prod's value and the interval of
candidate − reference) or a string saying why the window cannot judge it. The methods:
order-statistic intervals for ΔS percentiles read from the HdrHistograms (the excess ΔS over the
noise floor when the window has a floor), Price-Bonett for the p95 latency ratio, Wilson for
rates, Newcombe for the error rate against prod's, a paired Bonett-Price interval on the solve
discordance for the accuracy drop, mean and Σx² for coverage, and the paired delta method for
cost per solved.
:mod:`shadowlane.rollout.gates` turns them into verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.stats.distributions import norm_isf
from shadowlane.stats.proportions import two_proportion_test, wilson_interval
from shadowlane.stats.quantiles import (
    CombineMethod,
    mean_ci,
    quantile_ci,
    quantile_difference_ci,
    quantile_ratio_ci,
)
from shadowlane.stats.rate_sequence import upper_bound
from shadowlane.windows.histograms import DELTA_S_SCALE
from shadowlane.windows.percentiles import histogram_counts

Floats = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Stat:
    metric: str
    value: float
    low: float
    high: float
    n: int
    statistic: str
    reference: float | None = None
    worse: tuple[float, float] | None = None  # candidate − reference, when there is a reference


class Window:
    """One summary and its histograms, each decoded once per evaluation."""

    def __init__(self, summary: WindowSummary) -> None:
        self.s = summary
        self._hists: dict[str, tuple[Floats, Floats]] = {}
        # two-sided confidence → the total α of the confidence sequence the look holds it for
        self.sequence_alpha: dict[float, float] = {}

    def hist(self, name: str, delta_s: bool = False) -> tuple[Floats, Floats]:
        if name not in self._hists:
            values, counts = histogram_counts(getattr(self.s, name))
            self._hists[name] = ((values - 1) / DELTA_S_SCALE if delta_s else values, counts)
        return self._hists[name]


Compute = Callable[[Window, float], "Stat | str"]
# How the excess ΔS interval combines the candidate's and the floor's order-statistic intervals:
# ``conservative`` (default) takes the far ends of both (distribution-free, valid for any
# dependence between the arms); ``price_bonett`` adds their standard errors in quadrature (Price &
# Bonett 2002; conservative when an arm's interval is one tied value). Price-Bonett is ~√2
# narrower but rests on a normal approximation that fails where a percentile sits in a sparse
# region of ΔS (a p95 at the edge of the off-topic answers): on equal arms it excluded 0 at
# 3.5-5× its nominal rate (tests/unit/rollout/test_excess_interval.py), so it is a measured
# alternative (``simulate-gates --compare``), not the default.
ExcessInterval = Literal["price_bonett", "conservative"]
Pair = tuple[Floats, Floats]


def combine_method(x: Pair, y: Pair, q: float, conf: float) -> CombineMethod:
    """Price-Bonett, unless an arm's order-statistic interval is a single tied value (an atom)."""
    for values, counts in (x, y):
        ci = quantile_ci(values, q, counts=counts, confidence=conf)
        if ci.bounded and ci.ci_low == ci.ci_high:
            return "conservative"
    return "price_bonett"


def delta_s(q: float, combine: ExcessInterval = "conservative") -> Compute:
    """ΔS percentile gate: the excess over the noise floor (``combine``: how the two arms' order-
    statistic intervals combine, see :data:`ExcessInterval`), raw ΔS without a floor."""
    name = "median" if q == 0.5 else "p95"

    def compute(w: Window, conf: float) -> Stat | str:
        s = w.s
        if s.excess_count:
            x, y = w.hist("hist_delta_s_paired_e4", True), w.hist("hist_delta_s_floor_e4", True)
            method = combine_method(x, y, q, conf) if combine == "price_bonett" else "conservative"
            e = quantile_difference_ci(x[0], y[0], q, x_counts=x[1], y_counts=y[1], confidence=conf,
                                       method=method)  # fmt: skip
            sentence = (f"{name} of ΔS above the noise floor: {name}(ΔS) − {name}(floor) over the "
                        f"{s.excess_count} requests with both ({method} interval)")  # fmt: skip
            n, bounds = s.excess_count, (e.ci_low, e.ci_high)
            return Stat(f"delta_s_excess_{name}", e.estimate, *bounds, n, sentence, 0.0, bounds)
        if not s.delta_s_count:
            return "no ΔS in the window (embedder off, or no answers)"
        v, c = w.hist("hist_delta_s_e4", True)
        ci = quantile_ci(v, q, counts=c, confidence=conf)
        sentence = (
            f"{name} of raw ΔS to prod (no noise floor: nondeterminism counts as drift; order statistics)"
        )
        return Stat(f"delta_s_{name}", ci.estimate, ci.ci_low, ci.ci_high, s.delta_s_count, sentence)

    return compute


def latency(w: Window, conf: float) -> Stat | str:
    s = w.s
    if not (s.latency_prod.count and s.latency_shadow.count):
        return "no latency for one of the arms"
    x, y = w.hist("hist_latency_shadow_us"), w.hist("hist_latency_prod_us")
    method = combine_method(x, y, 0.95, conf)
    e = quantile_ratio_ci(x[0], y[0], 0.95, x_counts=x[1], y_counts=y[1], confidence=conf, method=method)
    sentence = f"p95 latency uplift: p95(candidate) / p95(prod) − 1 ({method} interval of the ratio)"
    n, low, high = min(s.latency_prod.count, s.latency_shadow.count), e.ci_low - 1, e.ci_high - 1
    return Stat("latency_p95_uplift", e.estimate - 1, low, high, n, sentence, 0.0, (low, high))


def rate_interval(w: Window, x: int, n: int, conf: float) -> tuple[float, float, str]:
    """Bounds of a rate: the exact always-valid Bernoulli mixture bounds
    (:mod:`shadowlane.stats.rate_sequence`) when the look is a confidence sequence at ``conf``, else
    Wilson's interval at ``conf``; and the method's name."""
    alpha = w.sequence_alpha.get(conf)
    if alpha is None:
        ci = wilson_interval(x, n, conf)
        return ci.ci_low, ci.ci_high, "Wilson interval"
    return 1.0 - upper_bound(n - x, n, alpha), upper_bound(x, n, alpha), "exact always-valid bound"


def rate(metric: str, num: str, den: str, what: str) -> Compute:
    def compute(w: Window, conf: float) -> Stat | str:
        x, n = getattr(w.s, num), getattr(w.s, den)
        if not n:
            return f"no {what} in the window"
        low, high, how = rate_interval(w, x, n, conf)
        return Stat(metric, x / n, low, high, n, f"{what}: {num} / {den} ({how})")

    return compute


def errors(w: Window, conf: float) -> Stat | str:
    s = w.s
    if not s.joined:
        return "no joined comparisons in the window"
    low, high, how = rate_interval(w, s.shadow_errors, s.joined, conf)
    sentence = f"candidate error rate: shadow_errors / joined ({how}); vs prod's rate: Newcombe"
    stat = Stat("shadow_error_rate", s.shadow_errors / s.joined, low, high, s.joined, sentence)
    if not s.joined + s.shadow_timeouts:
        return stat
    t = two_proportion_test(
        s.shadow_errors, s.joined, s.prod_errors, s.joined + s.shadow_timeouts, confidence=conf
    )
    return replace(stat, reference=t.p2, worse=(t.ci_low, t.ci_high))


def error_delta(w: Window, conf: float) -> Stat | str:
    """Candidate error rate − prod's over the same joined requests (prod's denominator includes
    the candidate's timeouts), Newcombe's interval of the difference."""
    s = w.s
    if not s.joined:
        return "no joined comparisons in the window"
    t = two_proportion_test(
        s.shadow_errors, s.joined, s.prod_errors, s.joined + s.shadow_timeouts, confidence=conf
    )
    sentence = "error rate above prod's: shadow_errors / joined − prod_errors / requests (Newcombe interval)"
    n, diff = s.joined, t.diff
    return Stat("error_rate_delta", diff, t.ci_low, t.ci_high, n, sentence, 0.0, (t.ci_low, t.ci_high))


def share_mean(prefix: str, missing: str, what: str) -> Compute:
    """The mean of a share in [0, 1] from the summary's ``<prefix>_count``, ``_sum``, ``_sq_sum``."""

    def compute(w: Window, conf: float) -> Stat | str:
        s = w.s
        n, total, sq = (getattr(s, f"{prefix}_{part}") for part in ("count", "sum", "sq_sum"))
        if not n:
            return missing
        # a record without Σx² gets the largest variance values in [0, 1] can have (Bhatia-Davis)
        sq = sq if sq > 0 or total == 0 else total
        m = mean_ci(n, total, sq, confidence=conf)
        sentence = f"{what}: Σ {prefix} / n (normal interval from Σx, Σx²)"
        return Stat(f"{prefix}_mean", m.mean, max(0.0, m.ci_low), min(1.0, m.ci_high), n, sentence)

    return compute


coverage = share_mean("coverage", "no coverage in the window (no citation target)", "mean coverage")
retrieval_coverage = share_mean(
    "retrieval_coverage",
    "no retrieval coverage in the window (no retrieval reported on gold-labelled requests)",
    "mean retrieval coverage, each request's worst over its λ paraphrases",
)


def retrieval_delta_s(w: Window, conf: float) -> Stat | str:
    """p95 over requests of the candidate's ΔS(question, retrieved), each request's the worst over
    it and its λ paraphrases (order-statistic interval); no reference (the seed's bound is
    absolute), prod's p95 is named in the sentence for context."""
    s = w.s
    if not s.retrieval_count:
        return "no retrieval ΔS in the window (no retrieval reported, no passage texts, or no embedder)"
    v, c = w.hist("hist_retrieval_delta_s_e4", True)
    ci = quantile_ci(v, 0.95, counts=c, confidence=conf)
    prod_p95 = s.prod_retrieval_delta_s_p95
    prod = f"; prod's p95 {prod_p95:.4g}" if prod_p95 is not None else ""
    sentence = (
        "p95 of ΔS(question, retrieved) over requests, each the worst over the request and its λ "
        f"paraphrases (order statistics){prod}"
    )
    return Stat("retrieval_delta_s_p95", ci.estimate, ci.ci_low, ci.ci_high, s.retrieval_count, sentence)


def accuracy(w: Window, conf: float) -> Stat | str:
    s, n = w.s, w.s.graded
    if not n:
        return "no graded comparisons in the window"
    lost, gained = s.solved_lost, s.solved_gained
    if lost - gained == s.prod_solved - s.shadow_solved:  # discordance recorded: paired, +1 per cell
        m = mean_ci(n + 2, lost - gained, lost + gained + 2, confidence=conf)
        low, high = m.ci_low, m.ci_high
        how = f"paired on {lost} lost / {gained} gained solves, Bonett-Price adjusted Wald"
    else:  # a summary without the discordance cells: unpaired, conservative
        t = two_proportion_test(s.prod_solved, n, s.shadow_solved, n, confidence=conf)
        low, high, how = t.ci_low, t.ci_high, "unpaired Newcombe: the summary lacks solve discordance"
    sentence = f"accuracy drop: (prod solved − candidate solved) / graded ({how})"
    return Stat(
        "accuracy_drop", (s.prod_solved - s.shadow_solved) / n, low, high, n, sentence, 0.0, (low, high)
    )


def cost(w: Window, conf: float) -> Stat | str:
    s = w.s
    if s.priced_graded:  # delta method on ln R, u_i = cs/a − ss/b − cp/c + sp/d (0/1 solves: ss² = ss)
        m = s.priced_graded
        a, b = s.graded_shadow_cost_usd / m, s.priced_shadow_solved / m
        c, d = s.graded_prod_cost_usd / m, s.priced_prod_solved / m
        if min(a, b, c, d) <= 0:
            return "cost per solved undefined: an arm solved nothing or cost nothing"
        ratio, moments = (a / b) / (c / d), s.graded_shadow_cost_sq > 0
        su2 = (s.graded_shadow_cost_sq / a**2 + s.priced_shadow_solved / b**2 + s.graded_prod_cost_sq / c**2
               + s.priced_prod_solved / d**2 + 2 * (
                   s.graded_shadow_cost_prod_solved / (a * d) + s.graded_prod_cost_shadow_solved / (b * c)
                   - s.graded_shadow_cost_shadow_solved / (a * b) - s.graded_cost_cross / (a * c)
                   - s.priced_both_solved / (b * d) - s.graded_prod_cost_prod_solved / (c * d)))  # fmt: skip
        what = "cost per solved uplift: (Σ cost / Σ solved) of the candidate over prod's − 1"
    elif s.priced and s.prod_cost_usd > 0 and s.shadow_cost_usd > 0:
        m = s.priced
        a, c = s.shadow_cost_usd / m, s.prod_cost_usd / m
        ratio, moments = a / c, s.shadow_cost_sq > 0
        su2 = s.shadow_cost_sq / a**2 + s.prod_cost_sq / c**2 - 2 * s.cost_cross / (a * c)
        what = "cost per request uplift (no graded rows): Σ candidate cost / Σ prod cost − 1"
    else:
        return "no priced comparisons in the window"
    se = math.sqrt(max(0.0, su2) / (m * (m - 1))) if m > 1 and moments else math.inf
    half = norm_isf((1.0 - conf) / 2.0) * se
    low, high = ratio * math.exp(-half) - 1, ratio * math.exp(half) - 1
    return Stat(
        "cost_uplift", ratio - 1, low, high, m, f"{what} (paired delta method, log scale)", 0.0, (low, high)
    )


LAMBDA_FLIPS = rate("lambda_flip_rate", "lambda_flips", "lambda_paired", "λ flips")
TOOL_SUCCESS = rate("tool_success_rate", "tool_valid", "tool_calls", "tool calls")
PIN_MISMATCHES = rate("pin_mismatch_rate", "pin_mismatches", "pin_checked", "candidate pin checks")
