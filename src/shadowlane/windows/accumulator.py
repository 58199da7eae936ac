"""One window's running state: counts, sums and HdrHistograms, and the ``WindowSummary`` it yields.

Everything kept is additive, so two accumulators (two windows, two comparator members) merge
exactly: :func:`merge_summaries` rebuilds accumulators from summaries, adds them and summarises
again. Means come from sums and counts, percentiles from the histograms, rates from counts; the
sums of squares and cross products (coverage, cost × solves) and the paired solve discordance are
kept for the rollout gates' confidence intervals.

Percentiles are read with numpy from the histogram's counts array
(:mod:`shadowlane.windows.percentiles`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from hdrh.histogram import HdrHistogram

from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.window_summary import LatencyStats, WindowSummary
from shadowlane.hashing import pair_id
from shadowlane.windows import histograms as h
from shadowlane.windows.percentiles import (
    values_at_percentiles,
)

Key = tuple[str, str | None, str | None]  # candidate, endpoint, tenant

_HISTS = {
    "lat_prod": "hist_latency_prod_us",
    "lat_shadow": "hist_latency_shadow_us",
    "drift": "hist_delta_s_e4",
    "paired": "hist_delta_s_paired_e4",
    "floor": "hist_delta_s_floor_e4",
    "gold": "hist_delta_s_gold_e4",
    "retrieval": "hist_retrieval_delta_s_e4",
    "prod_retrieval": "hist_prod_retrieval_delta_s_e4",
}


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _latency_ms(hist: HdrHistogram) -> tuple[float | None, ...]:
    """p50, p95, p99 in ms (None when empty)."""
    if hist.get_total_count() == 0:
        return None, None, None
    return tuple(v / 1000 for v in values_at_percentiles(hist, (50, 95, 99)))


def _delta_s(hist: HdrHistogram) -> tuple[float | None, ...]:
    """ΔS median and p95 (None when empty)."""
    if hist.get_total_count() == 0:
        return None, None
    return tuple((v - 1) / h.DELTA_S_SCALE for v in values_at_percentiles(hist, (50, 95)))


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 6)


@dataclass
class Accumulator:
    start_ms: int
    end_ms: int
    key: Key
    traffic_arm: str = "shadow"
    count: int = 0
    joined: int = 0
    shadow_timeouts: int = 0
    requests_missing: int = 0
    exact_matches: int = 0
    exact_known: int = 0
    shadow_errors: int = 0
    prod_errors: int = 0
    delta_s_count: int = 0
    delta_s_sum: float = 0.0
    excess_count: int = 0
    excess_sum: float = 0.0
    gold_count: int = 0
    lambda_sampled: int = 0
    lambda_divergent: int = 0
    lambda_paired: int = 0
    lambda_flips: int = 0
    pin_checked: int = 0  # pins verified: candidate and prod checks, and their mismatches
    pin_mismatches: int = 0
    prod_pin_checked: int = 0
    prod_pin_mismatches: int = 0
    coverage_count: int = 0
    coverage_sum: float = 0.0
    coverage_sq_sum: float = 0.0
    retrieval_count: int = 0  # retrieval drift: ΔS(question, retrieved) per arm, overlap, coverage
    prod_retrieval_count: int = 0
    retrieval_overlap_count: int = 0
    retrieval_overlap_sum: float = 0.0
    retrieval_coverage_count: int = 0
    retrieval_coverage_sum: float = 0.0
    retrieval_coverage_sq_sum: float = 0.0
    tool_calls: int = 0
    tool_valid: int = 0
    tool_matched_prod: int = 0
    agent_compared: int = 0  # agent replay: judged runs with tool steps, and those that diverged
    agent_diverged: int = 0
    graded: int = 0
    prod_solved: int = 0
    shadow_solved: int = 0
    solved_gained: int = 0
    solved_lost: int = 0
    priced: int = 0
    priced_graded: int = 0
    prod_cost_usd: float = 0.0
    shadow_cost_usd: float = 0.0
    prod_cost_sq: float = 0.0
    shadow_cost_sq: float = 0.0
    cost_cross: float = 0.0
    graded_prod_cost_usd: float = 0.0
    graded_shadow_cost_usd: float = 0.0
    priced_prod_solved: int = 0
    priced_shadow_solved: int = 0
    priced_both_solved: int = 0
    graded_prod_cost_sq: float = 0.0
    graded_shadow_cost_sq: float = 0.0
    graded_cost_cross: float = 0.0
    graded_prod_cost_prod_solved: float = 0.0
    graded_prod_cost_shadow_solved: float = 0.0
    graded_shadow_cost_prod_solved: float = 0.0
    graded_shadow_cost_shadow_solved: float = 0.0
    lat_prod: h.Tally = field(default_factory=h.latency_tally)
    lat_shadow: h.Tally = field(default_factory=h.latency_tally)
    drift: h.Tally = field(default_factory=h.delta_s_tally)
    paired: h.Tally = field(default_factory=h.delta_s_tally)
    floor: h.Tally = field(default_factory=h.delta_s_tally)
    gold: h.Tally = field(default_factory=h.delta_s_tally)
    retrieval: h.Tally = field(default_factory=h.delta_s_tally)
    prod_retrieval: h.Tally = field(default_factory=h.delta_s_tally)

    def add(self, c: Comparison) -> None:
        self.add_many((c,))

    def add_many(self, comparisons: Iterable[Comparison]) -> None:
        """Add comparisons in order. The counters every comparison touches are kept in locals for
        the batch and written back once (a poll's comparisons mostly share one window); the
        result is the same as adding them one at a time, float sums included (same order)."""
        count, joined = self.count, self.joined
        timeouts, missing = self.shadow_timeouts, self.requests_missing
        prod_errors, arm = self.prod_errors, self.traffic_arm
        exact_known, exact_matches, shadow_errors = self.exact_known, self.exact_matches, self.shadow_errors
        tool_calls, tool_valid, tool_matched = self.tool_calls, self.tool_valid, self.tool_matched_prod
        lat_prod, lat_shadow = self.lat_prod.pending, self.lat_shadow.pending
        top = h.LATENCY_MAX_US
        for c in comparisons:
            count += 1
            arm = c.traffic_arm
            outcome = c.outcome
            if outcome == "shadow_timeout":
                timeouts += 1
            elif outcome == "request_missing":
                missing += 1
            else:
                joined += 1
                if (exact := c.exact_match) is not None:
                    exact_known += 1
                    exact_matches += exact
                if c.shadow_status != "ok":
                    shadow_errors += 1
                tool_calls += c.tool_calls
                tool_valid += c.tool_valid
                tool_matched += c.tool_matched_prod
                if c.prod_steps is not None and c.shadow_status == "ok":  # a finished agent run
                    diverged = c.first_divergent_step is not None
                    if diverged or c.exact_match is not None:  # judged: a step differs, or both answered
                        self.agent_compared += 1
                        self.agent_diverged += diverged
                self._add_scores(c)
            if c.pin_mismatch is not None or c.prod_pin_mismatch is not None:
                self._add_pins(c)  # also on incomplete comparisons: a side present checks its own
            status = c.prod_status
            if status is not None and status[:1] != "2":
                prod_errors += 1
            # h.latency_value, inlined (comparisons instead of min/max: ~4x cheaper than the calls)
            if (ms := c.prod_latency_ms) is not None:
                value = round(ms * 1000)
                if value < 1:
                    value = 1
                elif value > top:
                    value = top
                lat_prod[value] = lat_prod.get(value, 0) + 1
            if (ms := c.shadow_latency_ms) is not None:
                value = round(ms * 1000)
                if value < 1:
                    value = 1
                elif value > top:
                    value = top
                lat_shadow[value] = lat_shadow.get(value, 0) + 1
        self.count, self.joined = count, joined
        self.shadow_timeouts, self.requests_missing = timeouts, missing
        self.prod_errors, self.traffic_arm = prod_errors, arm
        self.exact_known, self.exact_matches, self.shadow_errors = exact_known, exact_matches, shadow_errors
        self.tool_calls, self.tool_valid, self.tool_matched_prod = tool_calls, tool_valid, tool_matched

    def _add_pins(self, c: Comparison) -> None:
        """The pin checks of a comparison (:mod:`shadowlane.compare.pins`)."""
        if c.pin_mismatch is not None:
            self.pin_checked += 1
            self.pin_mismatches += c.pin_mismatch
        if c.prod_pin_mismatch is not None:
            self.prod_pin_checked += 1
            self.prod_pin_mismatches += c.prod_pin_mismatch

    def _add_retrieval(self, c: Comparison) -> None:
        """Retrieval drift (:mod:`shadowlane.compare.retrieval`): ΔS(question, retrieved) per arm,
        overlap and coverage of the retrieved ids."""
        if c.retrieval_delta_s is not None:
            self.retrieval_count += 1
            self.retrieval.record(h.delta_s_value(c.retrieval_delta_s))
        if c.prod_retrieval_delta_s is not None:
            self.prod_retrieval_count += 1
            self.prod_retrieval.record(h.delta_s_value(c.prod_retrieval_delta_s))
        if c.retrieval_overlap is not None:
            self.retrieval_overlap_count += 1
            self.retrieval_overlap_sum += c.retrieval_overlap
        if (cov := c.retrieval_coverage) is not None and c.retrieval_coverage_target == "gold":
            # the expected section (gold cited ids); coverage of prod's own ids is a likeness to
            # prod (overlap says it), which a new retriever or index fails by construction
            self.retrieval_coverage_count += 1
            self.retrieval_coverage_sum += cov
            self.retrieval_coverage_sq_sum += cov * cov

    def _add_scores(self, c: Comparison) -> None:
        """A joined pair's optional scores: ΔS, λ, coverage, grades and cost."""
        if c.delta_s is not None:
            self.delta_s_count += 1
            self.delta_s_sum += c.delta_s
            self.drift.record(h.delta_s_value(c.delta_s))
        if c.delta_s_excess is not None and c.delta_s is not None and c.delta_s_floor is not None:
            self.excess_count += 1
            self.excess_sum += c.delta_s_excess
            self.paired.record(h.delta_s_value(c.delta_s))
            self.floor.record(h.delta_s_value(c.delta_s_floor))
        if c.delta_s_gold is not None:
            self.gold_count += 1
            self.gold.record(h.delta_s_value(c.delta_s_gold))
        if c.lambda_state is not None:
            self.lambda_sampled += 1
            self.lambda_divergent += c.lambda_state == "divergent"
        if c.lambda_flip is not None:
            self.lambda_paired += 1
            self.lambda_flips += c.lambda_flip
        if c.coverage is not None:
            self.coverage_count += 1
            self.coverage_sum += c.coverage
            self.coverage_sq_sum += c.coverage * c.coverage
        if c.retrieval_paraphrases is not None or c.prod_retrieval_delta_s is not None:
            self._add_retrieval(c)  # the candidate reported retrieval, or prod's was scored
        graded = c.prod_solved is not None and c.shadow_solved is not None
        p_ok = s_ok = False
        if graded:
            p_ok, s_ok = bool(c.prod_solved), bool(c.shadow_solved)
            self.graded += 1
            self.prod_solved += p_ok
            self.shadow_solved += s_ok
            self.solved_gained += s_ok and not p_ok
            self.solved_lost += p_ok and not s_ok
        if c.prod_cost_usd is not None and c.shadow_cost_usd is not None:
            p_cost, s_cost = c.prod_cost_usd, c.shadow_cost_usd
            self.priced += 1
            self.prod_cost_usd += p_cost
            self.shadow_cost_usd += s_cost
            self.prod_cost_sq += p_cost * p_cost
            self.shadow_cost_sq += s_cost * s_cost
            self.cost_cross += p_cost * s_cost
            if graded:
                self.priced_graded += 1
                self.graded_prod_cost_usd += p_cost
                self.graded_shadow_cost_usd += s_cost
                self.priced_prod_solved += p_ok
                self.priced_shadow_solved += s_ok
                self.priced_both_solved += p_ok and s_ok
                self.graded_prod_cost_sq += p_cost * p_cost
                self.graded_shadow_cost_sq += s_cost * s_cost
                self.graded_cost_cross += p_cost * s_cost
                self.graded_prod_cost_prod_solved += p_cost * p_ok
                self.graded_prod_cost_shadow_solved += p_cost * s_ok
                self.graded_shadow_cost_prod_solved += s_cost * p_ok
                self.graded_shadow_cost_shadow_solved += s_cost * s_ok

    # ------------------------------------------------------------------ merge
    def merge(self, other: Accumulator) -> None:
        for f in fields(self):
            if f.name in ("start_ms", "end_ms", "key", "traffic_arm"):
                continue
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, h.Tally):
                mine.add(theirs)
            else:
                setattr(self, f.name, mine + theirs)
        self.start_ms = min(self.start_ms, other.start_ms)
        self.end_ms = max(self.end_ms, other.end_ms)

    @classmethod
    def of_summary(cls, s: WindowSummary) -> Accumulator:
        acc = cls(s.window_start_ms, s.window_end_ms, (s.candidate, s.endpoint, s.tenant), s.traffic_arm)
        for f in fields(acc):
            if f.name in _HISTS:
                encoded = getattr(s, _HISTS[f.name])
                if encoded:  # '': a record written before that histogram existed (empty)
                    setattr(acc, f.name, h.Tally(h.decode(encoded)))
            elif f.name not in ("start_ms", "end_ms", "key", "traffic_arm"):
                setattr(acc, f.name, getattr(s, f.name))
        return acc

    # ------------------------------------------------------------------ summary
    def summary(self, *, late: int = 0, member: str = "", partitions: Sequence[int] = ()) -> WindowSummary:
        candidate, endpoint, tenant = self.key
        parts = tuple(sorted(partitions))
        prod_ms, shadow_ms = _latency_ms(self.lat_prod.hist), _latency_ms(self.lat_shadow.hist)
        prod95, shadow95 = prod_ms[1], shadow_ms[1]
        drift, gold = _delta_s(self.drift.hist), _delta_s(self.gold.hist)
        retrieval, prod_retrieval = _delta_s(self.retrieval.hist), _delta_s(self.prod_retrieval.hist)
        # excess ΔS: ΔS percentile minus the noise floor's, over the requests that have both (Diffy's
        # idea: judge the candidate's differences against the ones prod's own nondeterminism makes)
        paired, floor = _delta_s(self.paired.hist), _delta_s(self.floor.hist)
        # per solved: cost and solves over the same rows (priced and graded)
        prod_per_solved = _ratio(self.graded_prod_cost_usd, self.priced_prod_solved)
        shadow_per_solved = _ratio(self.graded_shadow_cost_usd, self.priced_shadow_solved)
        cost_uplift: float | None = None
        if self.priced_graded:  # graded: per solved request, or nothing when an arm solved none
            if prod_per_solved and shadow_per_solved is not None:
                cost_uplift = shadow_per_solved / prod_per_solved - 1
        elif self.prod_cost_usd > 0:
            cost_uplift = self.shadow_cost_usd / self.prod_cost_usd - 1
        with_prod = self.joined + self.shadow_timeouts
        summary_key = f"{self.start_ms}|{self.end_ms}|{endpoint}|{tenant}|{member}|{parts}"
        copied: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name in _COPIED}
        hists: dict[str, Any] = {t: h.encode(getattr(self, name).hist) for name, t in _HISTS.items()}
        return WindowSummary(
            summary_id=pair_id(summary_key, candidate),
            window_start_ms=self.start_ms,
            window_end_ms=self.end_ms,
            candidate=candidate,
            traffic_arm=self.traffic_arm,
            endpoint=endpoint,
            tenant=tenant,
            member=member,
            partitions=parts,
            late=late,
            **copied,
            exact_match_rate=_ratio(self.exact_matches, self.exact_known),
            shadow_error_rate=_ratio(self.shadow_errors, self.joined),
            prod_error_rate=_ratio(self.prod_errors, with_prod),
            delta_s_mean=_ratio(self.delta_s_sum, self.delta_s_count),
            delta_s_median=drift[0],
            delta_s_p95=drift[1],
            delta_s_excess_mean=_ratio(self.excess_sum, self.excess_count),
            delta_s_excess_median=_minus(paired[0], floor[0]),
            delta_s_excess_p95=_minus(paired[1], floor[1]),
            delta_s_floor_median=floor[0],
            delta_s_floor_p95=floor[1],
            delta_s_gold_median=gold[0],
            lambda_flip_rate=_ratio(self.lambda_flips, self.lambda_paired),
            pin_mismatch_rate=_ratio(self.pin_mismatches, self.pin_checked),
            coverage_mean=_ratio(self.coverage_sum, self.coverage_count),
            retrieval_delta_s_median=retrieval[0],
            retrieval_delta_s_p95=retrieval[1],
            prod_retrieval_delta_s_median=prod_retrieval[0],
            prod_retrieval_delta_s_p95=prod_retrieval[1],
            retrieval_overlap_mean=_ratio(self.retrieval_overlap_sum, self.retrieval_overlap_count),
            retrieval_coverage_mean=_ratio(self.retrieval_coverage_sum, self.retrieval_coverage_count),
            tool_success_rate=_ratio(self.tool_valid, self.tool_calls),
            agent_divergence_rate=_ratio(self.agent_diverged, self.agent_compared),
            prod_cost_per_solved_usd=prod_per_solved,
            shadow_cost_per_solved_usd=shadow_per_solved,
            cost_uplift=cost_uplift,
            latency_prod=_stats(prod_ms, self.lat_prod.hist),
            latency_shadow=_stats(shadow_ms, self.lat_shadow.hist),
            latency_p95_uplift=shadow95 / prod95 - 1 if prod95 and shadow95 is not None else None,
            **hists,
        )


_COPIED = frozenset(
    f.name
    for f in fields(Accumulator)
    if f.name not in _HISTS and f.name not in ("start_ms", "end_ms", "key", "traffic_arm")
)


def _stats(ms: tuple[float | None, ...], hist: HdrHistogram) -> LatencyStats:
    return LatencyStats(p50_ms=ms[0], p95_ms=ms[1], p99_ms=ms[2], count=int(hist.get_total_count()))


def merge_summaries(parts: Sequence[WindowSummary]) -> WindowSummary:
    """The exact summary of the union of ``parts`` (same candidate / endpoint / tenant).

    Windows may differ (the result spans them); ``late`` and ``partitions`` add up."""
    if not parts:
        raise ValueError("merge_summaries needs at least one summary")
    keys = {(p.candidate, p.endpoint, p.tenant) for p in parts}
    if len(keys) > 1:
        raise ValueError(f"cannot merge summaries of different keys: {sorted(map(str, keys))}")
    acc = Accumulator.of_summary(parts[0])
    for part in parts[1:]:
        acc.merge(Accumulator.of_summary(part))
    members = sorted({p.member for p in parts if p.member})
    partitions = sorted({i for p in parts for i in p.partitions})
    return acc.summary(late=sum(p.late for p in parts), member=",".join(members), partitions=partitions)
