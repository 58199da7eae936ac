"""The way forward of an INCONCLUSIVE decision: which gates block, how many more requests until a
verdict, where it is heading, and how long that takes at the observed request rate.

**Model** (a predictive Monte Carlo of each undecided gate's future at the current effect and
variance). ``N`` requests so far; a gate's own samples (λ-sampled, graded, …) grow in proportion.
Future looks come every ``Δ`` requests, spaced like the stage's looks so far (``N − n_prev`` when
the look knows its predecessor, else ``N / index``: a first look's window is all of ``N``), up to
1,000,000 requests in total (alpha spending: up to its planned samples, where α runs out; the grid
thins geometrically after 40 looks). Each of ``PATHS`` paths draws:

- *mean-like statistics* (ΔS percentiles, the latency ratio, the accuracy drop, coverage, cost): the
  standard error is read off the current interval, ``se = half-width / z_now`` per side (intervals
  may be asymmetric), ``σ₁ = se·√N`` per request. The drift comes from the flat-prior posterior
  ``μ ~ N(estimate, se²)`` and the running sum moves by Brownian increments,
  ``S(N') = N·x̂ + (N'−N)·μ + σ₁·W(N'−N)``, so ``x(N') = S(N')/N'`` is the estimate a future look
  sees, with bound ``x(N') ± z(N')·se·√(N/N')``; a reference (prod's rate) moves alike with the
  variance the FAIL interval has beyond the estimate's;
- *rates* (errors, λ flips, tool-call failures): counts, not a normal approximation (0.2 % errors
  are one event in 500 requests). The rate comes from its Jeffreys posterior ``Beta(x+½, n−x+½)``,
  future events are binomial (normal once a step expects many), and the gate's own bound is a
  critical count: Wilson's (score-test inversion at ``z(N')``) or the exact always-valid Bernoulli
  mixture bound (:mod:`shadowlane.stats.rate_sequence`, tabulated to 20,000 trials and extrapolated
  as ``k² ∝ ln n`` beyond) when the statistic names it; prod's errors, the FAIL test's reference,
  are drawn alike (Newcombe's interval).

At each future look a path is judged by the gate's rules (:mod:`shadowlane.rollout.gates`): PASS
when the unfavourable bound at ``z(N')`` is within the threshold; FAIL when the estimate is beyond
it and the FAIL test's bound clears (candidate − reference vs 0 under ``worse_than_reference``,
else the bound vs the threshold, at the FAIL level, Bonferroni's too). ``z(N')`` is the look rule's:
the confidence sequence's, alpha spending's union-bound increments at the look spacing, or a fixed
look's constant. The gates are sampled jointly (independently); a path decides at its first look
where any gate FAILs or every undecided gate has passed (under a sequence a passed gate stays
passed, as ``evaluate``'s ``held`` keeps it; otherwise all at the same look); below
``min_samples`` no look counts. Reported: the median and the 5th–95th percentile of the further
requests over paths (``None``: beyond the cap, "not within the cap"), the verdict most paths reach
with their share, and the same in seconds at ``count / window duration``.

**Calibration and limits.** ``tests/unit/rollout/test_way_forward_calibration.py`` holds the range
to simulated runs (first look at 400 requests, 50 seeded runs each): the realised further requests
fell in the stated range in 96 % of A/A runs, 100 % of better-candidate runs, 92 % of accuracy −5
point runs. The flat prior is honest about what one
window knows, hence wide: early ranges often reach 10⁴–10⁵ further requests, and with many
uncertain gates the heading leans to FAIL (each gate's chance of lying past its threshold adds up),
while a candidate equal to prod FAILs in ≤ α of runs. Read the median and the heading's share, not
only the range. About 5–10 ms per INCONCLUSIVE (500 paths × ≤ 40 looks per gate); ``evaluate(...,
forecast=False)`` skips it (simulations). One gate's paths: :mod:`shadowlane.rollout.forecast_paths`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.rollout.forecast_paths import Horizon, gate_paths
from shadowlane.rollout.looks import LookAlpha
from shadowlane.stats.confidence_sequence import tuned_rho, z_multiplier
from shadowlane.stats.distributions import norm_isf
from shadowlane.stats.quantiles import quantile
from shadowlane.stats.sequential import SpendingPlan

if TYPE_CHECKING:
    from shadowlane.rollout.gates import Decision, GateResult

Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]
Heading = Literal["PASS", "FAIL"]
CAP = 1_000_000  # requests (in total) a forecast looks ahead to; alpha spending: its planned samples
MAX_LOOKS = 40  # future looks evaluated; beyond, the grid thins geometrically
LOW, HIGH = 0.05, 0.95
Counts = tuple[int | None, int | None, int | None]  # further requests: median, 5th, 95th percentile
NONE: Counts = (None, None, None)
NO_ALPHA = "no α left: alpha spending exhausted at planned samples"


@dataclass(frozen=True, slots=True)
class Forward:
    """How far a gate (or the whole decision) is from a verdict, in further requests and seconds."""

    heading: Heading | None  # the verdict most paths reach within the cap (None: most reach none)
    chance: float | None  # share of paths reaching ``heading`` within the cap
    median: int | None  # further requests: median, 5th and 95th percentile (None: beyond the cap)
    low: int | None
    high: int | None
    seconds_median: float | None  # the same at the observed request rate (None: rate unknown)
    seconds_low: float | None
    seconds_high: float | None
    rate_per_s: float | None
    cap: int  # further requests simulated
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def attach(decision: Decision, summary: WindowSummary | None) -> Decision:
    """``decision`` with its way forward when INCONCLUSIVE (per gate, overall, the blocking gates)."""
    if decision.verdict != "INCONCLUSIVE":
        return decision
    rate = _rate(summary)
    if summary is None or summary.count == 0:
        text = f"no data yet: a verdict needs at least {decision.min_samples:,} requests (min_samples)"
        fwd = _forward(None, None, (None, decision.min_samples, None), rate, 0, text)
        return replace(decision, forward=fwd, reason=f"{decision.reason}; {text}")
    n, below = decision.n, decision.n < decision.min_samples
    open_ = [g for g in decision.gates if g.verdict == "INCONCLUSIVE" and g.value is not None]
    holds = tuple(a.kind for a in decision.aborts if a.fired and a.severity == "soft")
    blocking = tuple(g.name for g in open_ if not below or not _passes_now(g)) + holds
    parts = max(1, len(decision.gates)) if decision.multiplicity == "bonferroni" else 1  # as evaluate
    horizon = _horizon(decision.look, n, decision.min_samples, parts)
    gates, overall = decision.gates, _forward(None, None, NONE, rate, 0, "")
    if isinstance(horizon, str):
        overall = replace(overall, reason=horizon)
    elif not open_:
        why = "no gate is open: nothing to forecast"
        if holds:  # soft rules act on the point estimate: no horizon to a verdict while it stays beyond
            why = f"held by soft abort rules ({', '.join(holds)}) while their estimates stay beyond; {why}"
        overall = replace(overall, cap=int(horizon.ns[-1]) - n, reason=why)
    else:
        gates, overall = _simulate(decision, open_, horizon, rate)
    way = describe(overall, blocking)
    undecided = decision.reason.startswith("undecided")
    reason = f"undecided: {way}" if undecided else f"{decision.reason}; {way}"
    return replace(decision, gates=gates, forward=overall, blocking=blocking, reason=reason)


def _simulate(
    decision: Decision, open_: Sequence[GateResult], h: Horizon, rate: float | None
) -> tuple[tuple[GateResult, ...], Forward]:
    """Every open gate's paths, jointly: each gate's way forward and the decision's."""
    cap = int(h.ns[-1]) - h.n
    rng = np.random.default_rng([zlib.crc32(",".join(g.name for g in open_).encode()), h.n])
    paths = {g.name: gate_paths(g, h, decision.fail_rule, rng) for g in open_}
    sims: list[tuple[Bools, Bools]] = []
    broken: list[str] = []
    reasons: list[str] = []
    forwards: dict[str, Forward] = {}
    for name, p in paths.items():
        if isinstance(p, str):
            broken.append(name)
            forwards[name] = _forward(None, None, NONE, rate, cap, f"cannot project: {p}")
            reasons.append(p)
            continue
        passed, fail = p[0] & h.counts, p[1] & h.counts
        forwards[name] = _summarise(passed, fail, h, rate, cap)
        # under a sequence a gate that passed stays passed (evaluate's ``held``) unless it FAILs
        sims.append((np.logical_or.accumulate(passed, axis=1) if h.sticky else passed, fail))
    gates = tuple(replace(g, forward=forwards[g.name]) if g.name in forwards else g for g in decision.gates)
    if broken:
        why = f"cannot project {', '.join(broken)}: {reasons[0]}"
        first = int(h.ns[h.counts.argmax()]) - h.n if h.counts.any() else None  # at least to min_samples
        if first is not None and first > int(h.ns[0]) - h.n:
            why = f"at least {_count(first)} more requests (min_samples); {why}"
        return gates, _forward(None, None, (None, first, None), rate, cap, why)
    fail = np.logical_or.reduce([f for _, f in sims])
    passed = np.logical_and.reduce([p for p, _ in sims])
    return gates, _summarise(passed, fail, h, rate, cap)


# ---------------------------------------------------------------------- the future looks
def _step(look: LookAlpha, n: int) -> int:
    prev = round(look.fraction_prev * look.planned_n) if look.planned_n else 0
    if 0 < prev < n:
        return n - prev
    return max(1, round(n / max(1, look.index)))  # the windows so far: a first look's is all of n


def _horizon(look: LookAlpha, n: int, min_samples: int, parts: int) -> Horizon | str:
    step, spending = _step(look, n), look.rule in ("union_bound", "group_sequential")
    if spending:
        if look.planned_n <= 0 or n >= look.planned_n:
            return NO_ALPHA
        end = look.planned_n
    else:
        end = max(CAP, n + step, min_samples + step)
    looks = max(1, math.ceil((end - n) / step))
    ks = np.arange(1, looks + 1, dtype=np.float64)
    if looks > MAX_LOOKS:
        head = MAX_LOOKS // 3
        tail = np.round(np.geomspace(head + 1, looks, MAX_LOOKS - head))
        ks = np.unique(np.concatenate([ks[:head], tail]))
    ns = n + ks * step
    gaps = np.diff(np.concatenate([[float(n)], ns]))
    total = look.total_alpha
    if spending:
        plan = SpendingPlan(total, look.planned_n, "obrien_fleming", sides=1)
        levels = np.array([plan.look_alpha(int(m - step), int(m)) for m in ns])
        z, z_fail = _isf(levels), _isf(levels / parts)
    elif look.rule == "confidence_sequence":  # Bonferroni: the sequence at α / parts
        z = _sequence_z(ns, look.planned_n, total)
        z_fail = z if parts == 1 else _sequence_z(ns, look.planned_n, total / parts)
    else:
        z = np.full(ns.shape, norm_isf(look.alpha))
        z_fail = np.full(ns.shape, norm_isf(look.alpha / parts))
    counts = (ns >= min_samples) & np.isfinite(z)
    return Horizon(n, ns, gaps, z, z_fail, total, total / parts, counts, look.rule == "confidence_sequence")


def _isf(levels: Floats) -> Floats:
    return np.array([norm_isf(a) if a > 1e-300 else math.inf for a in levels], dtype=np.float64)


def _sequence_z(ns: Floats, planned: int, alpha: float) -> Floats:
    grid, table = _z_table(planned, alpha)
    out: Floats = np.interp(np.log(ns), grid, table)
    return out


@lru_cache(maxsize=32)
def _z_table(planned: int, alpha: float) -> tuple[Floats, Floats]:
    """The sequence's z(n) on a log grid (12 points a decade, 1 to 10⁷), for interpolation."""
    rho = tuned_rho(max(1, planned), alpha)
    grid = np.log(np.logspace(0, 7, 85))
    return grid, np.array([z_multiplier(math.exp(g), rho, alpha) for g in grid])


def _passes_now(g: GateResult) -> bool:
    bound = g.ci_high if g.direction == "max" else g.ci_low
    if bound is None or not math.isfinite(bound):
        return False
    return bound <= g.threshold if g.direction == "max" else bound >= g.threshold


# ---------------------------------------------------------------------- summaries and words
def _summarise(passed: Bools, fail: Bools, h: Horizon, rate: float | None, cap: int) -> Forward:
    """Percentiles of the further requests to each path's first verdict, and where most head."""
    decided = passed | fail
    hit = decided.any(axis=1)
    first = np.where(hit, decided.argmax(axis=1), 0)
    further = np.sort(np.where(hit, h.ns[first] - h.n, math.inf))
    to_fail = hit & fail[np.arange(first.size), first]
    n_fail, n_pass, paths = int(to_fail.sum()), int((hit & ~to_fail).sum()), first.size
    heading: Heading | None = None
    if 2 * max(n_fail, n_pass) > paths:
        heading = "PASS" if n_pass >= n_fail else "FAIL"
    chance = max(n_fail, n_pass) / paths if heading else None
    picks = [quantile(further.tolist(), q) for q in (0.5, LOW, HIGH)]
    median, low, high = (int(v) if v is not None and math.isfinite(v) else None for v in picks)
    words = _words(heading, chance, (median, low, high), float(hit.mean()), rate, cap)
    return _forward(heading, chance, (median, low, high), rate, cap, words)


def _forward(
    heading: Heading | None, chance: float | None, counts: Counts, rate: float | None, cap: int, reason: str
) -> Forward:
    median, low, high = counts
    return Forward(heading, chance, median, low, high, _seconds(median, rate), _seconds(low, rate),
                   _seconds(high, rate), rate, cap, reason)  # fmt: skip


def _seconds(requests: int | None, rate: float | None) -> float | None:
    return None if requests is None or not rate else requests / rate


def _words(
    heading: Heading | None,
    chance: float | None,
    counts: Counts,
    decided: float,
    rate: float | None,
    cap: int,
) -> str:
    median, low, high = counts
    if median is None:
        return (f"no verdict in sight within {_count(cap)} more requests at the current effect and "
                f"variance (only {decided * 100:.0f} % of simulated paths reach one)")  # fmt: skip
    to = f"heading to {heading} ({chance * 100:.0f} %), " if heading and chance is not None else ""
    top = _count(high) if high is not None else f"beyond {_count(cap)}"
    span = f"{_count(low)}–{top}" if low is not None else top
    when = f", ≈ {_duration(median / rate)} at {_per_s(rate)} req/s" if rate else ", request rate unknown"
    return f"{to}about {_count(median)} more requests ({span}){when}"


def _count(n: int | None) -> str:
    if n is None:
        return "?"
    digits = max(0, len(str(abs(n))) - 2)
    return f"{round(n, -digits):,}"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= 1.5 * size:
            value = seconds / size
            return f"{value:.0f} {unit}" if value >= 10 or unit == "min" else f"{value:.1f} {unit}"
    return f"{seconds:.0f} s"


def _per_s(rate: float) -> str:
    return f"{rate:.0f}" if rate >= 10 else f"{rate:.1f}" if rate >= 0.1 else f"{rate:.2g}"


def _rate(summary: WindowSummary | None) -> float | None:
    if summary is None or not summary.count:
        return None
    seconds = (summary.window_end_ms - summary.window_start_ms) / 1000.0
    return summary.count / seconds if seconds > 0 else None


def describe(forward: Forward | None, blocking: Sequence[str] = ()) -> str:
    """One line for a step or a log: the blocking gates and the way forward."""
    if forward is None:
        return ""
    who = f"{', '.join(blocking)} {'blocks' if len(blocking) == 1 else 'block'}; " if blocking else ""
    return f"{who}{forward.reason}"
