"""Window summaries of the quality metrics: means, rates, percentiles, cost, exact merges, ids, late.

Summaries are built from hand-made comparisons whose expected aggregates are known; merges are
checked against the one-window summary over the same records, field by field.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pytest

from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.windows import histograms as h
from shadowlane.windows.accumulator import Accumulator, merge_summaries
from shadowlane.windows.aggregate import WindowAggregator
from shadowlane.windows.percentiles import histogram_counts, record_values, value_at_percentile

KEY = ("cand", "/v1/chat/completions", "t1")
HISTS = (
    "hist_latency_prod_us",
    "hist_latency_shadow_us",
    "hist_delta_s_e4",
    "hist_delta_s_paired_e4",
    "hist_delta_s_floor_e4",
    "hist_delta_s_gold_e4",
)
PERCENTILES = (1, 10, 25, 50, 75, 90, 95, 99, 99.9, 100)


def _comp(i: int, **fields: Any) -> Comparison:
    values: dict[str, Any] = {
        "comparison_id": f"c{i}",
        "req_hash": f"{i:032x}",
        "candidate": KEY[0],
        "ts_ms": 0,
        "endpoint": KEY[1],
        "tenant": KEY[2],
        "complete": True,
        "outcome": "joined",
        "prod_status": "200",
        "shadow_status": "ok",
        "prod_latency_ms": 100.0,
        "shadow_latency_ms": 150.0,
    }
    values.update(fields)
    if values["outcome"] != "joined":
        values["complete"] = False
    return Comparison(**values)


def _summary(comps: Iterable[Comparison], **kwargs: Any) -> WindowSummary:
    acc = Accumulator(0, 60_000, KEY)
    for c in comps:
        acc.add(c)
    return acc.summary(**kwargs)


def _nearest_rank(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, int(pct * len(ordered) / 100 + 0.5)) - 1]


STEPS = [round(0.05 * k, 2) for k in range(1, 21)]  # 0.05 .. 1.00


# ---------------------------------------------------------------------- ΔS
def test_delta_s_mean_is_sum_over_count_and_ignores_missing() -> None:
    comps = [_comp(i, delta_s=v) for i, v in enumerate(STEPS)]
    comps += [_comp(100, delta_s=None), _comp(101, outcome="shadow_timeout", shadow_latency_ms=None)]
    s = _summary(comps)
    assert s.delta_s_count == 20
    assert s.delta_s_sum == pytest.approx(sum(STEPS))
    assert s.delta_s_mean == pytest.approx(sum(STEPS) / 20)
    assert s.delta_s_median == pytest.approx(0.50, abs=1e-3)
    assert s.delta_s_p95 == pytest.approx(0.95, abs=1e-3)


def _paired(i: int, ds: float | None, floor: float | None, **fields: Any) -> Comparison:
    """A comparison with ΔS and noise floor, its excess set the way the builder sets it."""
    excess = None if ds is None or floor is None else round(ds - floor, 6)
    return _comp(i, delta_s=ds, delta_s_floor=floor, delta_s_excess=excess, **fields)


def test_excess_floor_and_gold_percentiles() -> None:
    floors = [round(1 - v, 4) for v in STEPS]
    comps = [_paired(i, v, f, delta_s_gold=v) for i, (v, f) in enumerate(zip(STEPS, floors, strict=True))]
    s = _summary(comps)
    excess = [v - f for v, f in zip(STEPS, floors, strict=True)]
    assert s.excess_count == 20
    assert s.excess_sum == pytest.approx(sum(excess))
    assert s.delta_s_excess_mean == pytest.approx(sum(excess) / 20, abs=1e-9)
    # median / p95 of ΔS minus median / p95 of the floor: not percentiles of the per-row excess
    median = _nearest_rank(STEPS, 50) - _nearest_rank(floors, 50)
    p95 = _nearest_rank(STEPS, 95) - _nearest_rank(floors, 95)
    assert s.delta_s_excess_median == pytest.approx(median, abs=1e-3)
    assert s.delta_s_excess_p95 == pytest.approx(p95, abs=1e-3)
    assert s.delta_s_excess_p95 != pytest.approx(_nearest_rank(excess, 95), abs=1e-2)
    assert s.delta_s_floor_median == pytest.approx(_nearest_rank(floors, 50), abs=1e-3)
    assert s.delta_s_floor_p95 == pytest.approx(_nearest_rank(floors, 95), abs=1e-3)
    assert s.gold_count == 20
    assert s.delta_s_gold_median == pytest.approx(0.50, abs=1e-3)


def test_excess_delta_s_is_signed() -> None:
    """A candidate closer to prod than the baseline replay is: every excess ΔS figure below zero."""
    comps = [_paired(i, round(v / 2, 4), v) for i, v in enumerate(STEPS)]
    s = _summary(comps)
    assert s.delta_s_excess_mean == pytest.approx(-sum(STEPS) / 40, abs=1e-9)
    assert s.delta_s_excess_median == pytest.approx(
        _nearest_rank([v / 2 for v in STEPS], 50) - _nearest_rank(STEPS, 50), abs=1e-3
    )
    assert s.delta_s_excess_median is not None
    assert s.delta_s_excess_median < 0
    assert s.delta_s_excess_p95 is not None
    assert s.delta_s_excess_p95 < 0


def test_excess_delta_s_of_a_candidate_as_noisy_as_the_baseline_is_zero() -> None:
    """ΔS drawn from the floor's own distribution, not per request equal: the per-request excess
    is positive and negative, but median and p95 of ΔS are the floor's, so the excess ΔS ≈ 0."""
    rng = random.Random(6)
    floors = [round(rng.uniform(0.0, 0.3), 4) for _ in range(400)]
    shuffled = rng.sample(floors, len(floors))
    comps = [_paired(i, ds, f) for i, (ds, f) in enumerate(zip(shuffled, floors, strict=True))]
    s = _summary(comps)
    assert any(c.delta_s_excess is not None and c.delta_s_excess < -0.1 for c in comps)
    assert any(c.delta_s_excess is not None and c.delta_s_excess > 0.1 for c in comps)
    assert s.delta_s_excess_median == 0.0
    assert s.delta_s_excess_p95 == 0.0
    assert s.delta_s_excess_mean == pytest.approx(0.0, abs=1e-9)
    identical = _summary([_paired(i, f, f) for i, f in enumerate(floors)])  # equal per request too
    assert (identical.delta_s_excess_median, identical.delta_s_excess_p95) == (0.0, 0.0)
    assert identical.delta_s_excess_mean == 0.0


def test_paired_and_floor_histograms_hold_only_rows_with_delta_s_floor_and_excess() -> None:
    comps = [_paired(i, 0.1, 0.05) for i in range(4)]  # paired: ΔS 0.1, floor 0.05
    comps += [_paired(10 + i, 0.9, None) for i in range(6)]  # ΔS only: raw drift, not paired
    comps += [_paired(20 + i, None, 0.8) for i in range(6)]  # floor only (candidate had no answer)
    s = _summary(comps)
    assert (s.delta_s_count, s.excess_count) == (10, 4)
    paired, floor = h.decode(s.hist_delta_s_paired_e4), h.decode(s.hist_delta_s_floor_e4)
    assert paired.get_total_count() == floor.get_total_count() == 4
    assert h.delta_s_at(paired, 100) == pytest.approx(0.1)
    assert h.delta_s_at(floor, 100) == pytest.approx(0.05)
    assert (s.delta_s_floor_median, s.delta_s_floor_p95) == pytest.approx((0.05, 0.05))
    assert s.delta_s_median == pytest.approx(0.9, abs=1e-3)  # raw ΔS: all ten rows
    assert s.delta_s_excess_median == pytest.approx(0.05)  # paired rows only: 0.1 − 0.05
    assert s.delta_s_excess_p95 == pytest.approx(0.05)
    assert s.delta_s_excess_mean == pytest.approx(0.05)


def test_excess_delta_s_is_none_without_paired_rows() -> None:
    s = _summary([_paired(1, 0.4, None), _paired(2, None, 0.2)])
    assert s.excess_count == 0
    assert (s.delta_s_excess_mean, s.delta_s_excess_median, s.delta_s_excess_p95) == (None, None, None)
    assert (s.delta_s_floor_median, s.delta_s_floor_p95) == (None, None)
    assert h.decode(s.hist_delta_s_paired_e4).get_total_count() == 0


def test_zero_delta_s_is_kept_in_percentiles() -> None:
    s = _summary([_comp(i, delta_s=0.0) for i in range(5)])
    assert s.delta_s_median == 0.0
    assert s.delta_s_p95 == 0.0
    assert s.delta_s_mean == 0.0


def test_empty_metrics_are_none() -> None:
    s = _summary([_comp(1)])
    assert (s.delta_s_mean, s.delta_s_median, s.delta_s_excess_mean, s.delta_s_floor_median) == (
        None,
        None,
        None,
        None,
    )
    assert (s.lambda_flip_rate, s.coverage_mean, s.tool_success_rate, s.cost_uplift) == (
        None,
        None,
        None,
        None,
    )


# ---------------------------------------------------------------------- λ, coverage, tools
def test_lambda_flip_rate_is_flips_over_paired() -> None:
    comps = [_comp(i, lambda_state="divergent", lambda_flip=True) for i in range(2)]
    comps += [_comp(10 + i, lambda_state="convergent", lambda_flip=False) for i in range(6)]
    comps += [_comp(20 + i, lambda_state="divergent") for i in range(3)]  # no baseline λ: unpaired
    comps += [_comp(30)]
    s = _summary(comps)
    assert (s.lambda_sampled, s.lambda_divergent, s.lambda_paired, s.lambda_flips) == (11, 5, 8, 2)
    assert s.lambda_flip_rate == 0.25


def test_coverage_mean_over_comparisons_with_coverage() -> None:
    s = _summary([_comp(1, coverage=1.0), _comp(2, coverage=0.5), _comp(3, coverage=0.0), _comp(4)])
    assert s.coverage_count == 3
    assert s.coverage_mean == pytest.approx(0.5)


def test_tool_success_rate_is_valid_over_calls() -> None:
    comps = [
        _comp(1, tool_calls=3, tool_valid=2, tool_matched_prod=1),
        _comp(2, tool_calls=1, tool_valid=1, tool_matched_prod=1),
        _comp(3),
    ]
    s = _summary(comps)
    assert (s.tool_calls, s.tool_valid, s.tool_matched_prod) == (4, 3, 2)
    assert s.tool_success_rate == 0.75


# ---------------------------------------------------------------------- cost
def _graded(
    i: int, prod_ok: bool, shadow_ok: bool, prod_cost: float | None, shadow_cost: float | None
) -> Comparison:
    return _comp(
        i, prod_solved=prod_ok, shadow_solved=shadow_ok, prod_cost_usd=prod_cost, shadow_cost_usd=shadow_cost
    )


def test_cost_per_solved_and_uplift_when_graded() -> None:
    comps = [_graded(i, True, i < 2, 1.0, 0.5) for i in range(4)]  # prod solves 4, shadow 2
    s = _summary(comps)
    assert (s.graded, s.prod_solved, s.shadow_solved, s.priced) == (4, 4, 2, 4)
    assert (s.priced_graded, s.priced_prod_solved, s.priced_shadow_solved) == (4, 4, 2)
    assert (s.graded_prod_cost_usd, s.graded_shadow_cost_usd) == pytest.approx((4.0, 2.0))
    assert s.prod_cost_per_solved_usd == pytest.approx(1.0)  # 4 $ / 4 solved
    assert s.shadow_cost_per_solved_usd == pytest.approx(1.0)  # 2 $ / 2 solved
    assert s.cost_uplift == pytest.approx(0.0)  # per solved, not the per-request −50 %


def test_cost_uplift_per_request_when_ungraded() -> None:
    comps = [_comp(i, prod_cost_usd=1.0, shadow_cost_usd=0.25) for i in range(4)]
    s = _summary(comps)
    assert s.graded == 0
    assert s.priced == 4
    assert s.prod_cost_usd == pytest.approx(4.0)
    assert s.shadow_cost_usd == pytest.approx(1.0)
    assert s.prod_cost_per_solved_usd is None
    assert s.shadow_cost_per_solved_usd is None
    assert s.cost_uplift == pytest.approx(-0.75)


def test_cost_needs_both_arms_priced() -> None:
    comps = [
        _comp(1, prod_cost_usd=1.0, shadow_cost_usd=None),
        _comp(2, prod_cost_usd=None, shadow_cost_usd=2.0),
    ]
    s = _summary(comps)
    assert s.priced == 0
    assert (s.prod_cost_usd, s.shadow_cost_usd) == (0.0, 0.0)
    assert s.cost_uplift is None


def test_cost_per_solved_counts_solves_of_priced_rows_only() -> None:
    """Cost and solves must cover the same rows: an unpriced solve costs nothing it could divide."""
    comps = [
        _graded(1, True, True, 1.0, 1.0),  # priced, both solve
        _graded(2, True, False, None, None),  # graded but unpriced (model not in the price table)
        _graded(3, True, True, 1.0, None),  # graded, only prod priced: not priced
    ]
    s = _summary(comps)
    assert (s.graded, s.prod_solved, s.shadow_solved) == (3, 3, 2)
    assert (s.priced, s.priced_graded, s.priced_prod_solved, s.priced_shadow_solved) == (1, 1, 1, 1)
    assert s.prod_cost_per_solved_usd == pytest.approx(1.0)  # 1 $ over the 1 priced prod solve
    assert s.shadow_cost_per_solved_usd == pytest.approx(1.0)
    assert s.cost_uplift == pytest.approx(0.0)  # same cost, same solves on the rows we can price


def test_cost_per_solved_uses_only_rows_both_priced_and_graded() -> None:
    """Priced but ungraded rows add to the per-request totals, not to the per-solved figures."""
    comps = [_graded(i, True, True, 1.0, 1.0) for i in range(2)]
    comps += [_comp(10 + i, prod_cost_usd=1.0, shadow_cost_usd=10.0) for i in range(2)]  # ungraded
    s = _summary(comps)
    assert (s.priced, s.priced_graded, s.graded) == (4, 2, 2)
    assert (s.prod_cost_usd, s.shadow_cost_usd) == pytest.approx((4.0, 22.0))
    assert (s.graded_prod_cost_usd, s.graded_shadow_cost_usd) == pytest.approx((2.0, 2.0))
    assert s.prod_cost_per_solved_usd == pytest.approx(1.0)
    assert s.shadow_cost_per_solved_usd == pytest.approx(1.0)
    assert s.cost_uplift == pytest.approx(0.0)  # per solved; per request it would be +450 %


@pytest.mark.parametrize(("prod_ok", "shadow_ok"), [(True, False), (False, True), (False, False)])
def test_cost_uplift_is_none_when_an_arm_solved_none_of_the_priced_graded_rows(
    prod_ok: bool, shadow_ok: bool
) -> None:
    s = _summary([_graded(i, prod_ok, shadow_ok, 1.0, 0.5) for i in range(4)])
    assert s.priced_graded == 4
    assert (s.prod_cost_per_solved_usd is None) is not prod_ok
    assert (s.shadow_cost_per_solved_usd is None) is not shadow_ok
    assert s.cost_uplift is None  # no fallback to the per-request uplift (−50 %)


def test_cost_uplift_is_per_request_when_graded_rows_are_unpriced() -> None:
    comps = [_graded(i, True, True, None, None) for i in range(3)]  # graded, unpriced
    comps += [_comp(10 + i, prod_cost_usd=2.0, shadow_cost_usd=3.0) for i in range(2)]  # priced, ungraded
    s = _summary(comps)
    assert (s.graded, s.priced, s.priced_graded) == (3, 2, 0)
    assert (s.prod_cost_per_solved_usd, s.shadow_cost_per_solved_usd) == (None, None)
    assert s.cost_uplift == pytest.approx(0.5)


# ---------------------------------------------------------------------- latency
def test_latency_p95_uplift() -> None:
    rng = random.Random(5)
    prod = [rng.uniform(20.0, 200.0) for _ in range(200)]
    shadow = [rng.uniform(40.0, 400.0) for _ in range(200)]
    comps = [
        _comp(i, prod_latency_ms=p, shadow_latency_ms=q)
        for i, (p, q) in enumerate(zip(prod, shadow, strict=True))
    ]
    s = _summary(comps)
    p95, q95 = _nearest_rank(prod, 95), _nearest_rank(shadow, 95)
    assert s.latency_prod.p95_ms == pytest.approx(p95, rel=1e-3)
    assert s.latency_shadow.p95_ms == pytest.approx(q95, rel=1e-3)
    assert s.latency_p95_uplift == pytest.approx(q95 / p95 - 1, rel=1e-2)
    assert (s.latency_prod.count, s.latency_shadow.count) == (200, 200)


def test_latency_p95_uplift_of_a_constant_slowdown() -> None:
    s = _summary([_comp(i, prod_latency_ms=100.0, shadow_latency_ms=150.0) for i in range(50)])
    assert s.latency_p95_uplift == pytest.approx(0.5, rel=2e-3)


# ---------------------------------------------------------------------- merge
def _random_comparison(i: int, rng: random.Random, candidate: str = KEY[0]) -> Comparison:
    outcome = rng.choices(["joined", "shadow_timeout", "request_missing"], [0.9, 0.06, 0.04])[0]
    if outcome != "joined":
        return _comp(
            i,
            candidate=candidate,
            outcome=outcome,
            prod_latency_ms=rng.lognormvariate(3.5, 0.5) if outcome == "shadow_timeout" else None,
            shadow_latency_ms=rng.lognormvariate(3.8, 0.6) if outcome == "request_missing" else None,
            prod_status="200" if outcome == "shadow_timeout" else None,
            shadow_status=None,
        )
    ds = round(rng.random(), 4) if rng.random() < 0.95 else None  # None: the candidate had no answer
    floor = round(rng.random() * 0.6, 4) if rng.random() < 0.7 else None
    graded = rng.random() < 0.6
    priced = rng.random() < 0.8
    lam = rng.choice([None, "convergent", "divergent"])
    calls = rng.randrange(4)
    return _comp(
        i,
        candidate=candidate,
        delta_s=ds,
        exact_match=None if ds is None else ds < 0.05,
        prod_latency_ms=rng.lognormvariate(3.5, 0.5),
        shadow_latency_ms=rng.lognormvariate(3.8, 0.6),
        prod_status="200" if i % 40 else "503",
        shadow_status="ok" if i % 25 else "error:timeout",
        delta_s_floor=floor,
        delta_s_excess=None if ds is None or floor is None else round(ds - floor, 6),
        delta_s_gold=round(rng.random(), 4) if graded else None,
        prod_solved=rng.random() < 0.7 if graded else None,
        shadow_solved=rng.random() < 0.6 if graded else None,
        lambda_state=lam,
        lambda_flip=None if lam is None or rng.random() < 0.3 else rng.random() < 0.2,
        coverage=rng.choice([None, 0.0, 0.25, 0.5, 1.0]),
        tool_calls=calls,
        tool_valid=rng.randrange(calls + 1),
        tool_matched_prod=rng.randrange(calls + 1),
        prod_cost_usd=round(rng.uniform(1e-4, 1e-2), 9) if priced else None,
        shadow_cost_usd=round(rng.uniform(1e-4, 1e-2), 9) if priced else None,
    )


def _assert_same_stats(merged: WindowSummary, single: WindowSummary, *, skip: Iterable[str] = ()) -> None:
    """Every field equal (floats approximately), histograms equal by their percentiles."""
    skipped = set(skip)
    for name in WindowSummary.model_fields:
        if name in skipped:
            continue
        got, want = getattr(merged, name), getattr(single, name)
        if name in HISTS:
            a, b = h.decode(got), h.decode(want)
            assert a.get_total_count() == b.get_total_count(), name
            for pct in PERCENTILES:
                assert a.get_value_at_percentile(pct) == b.get_value_at_percentile(pct), (name, pct)
        elif isinstance(want, float):
            assert got == pytest.approx(want, rel=1e-9, abs=1e-12), name
        else:
            assert got == want, name


def test_merge_of_ten_second_windows_equals_the_ten_second_window() -> None:
    rng = random.Random(11)
    comps = [_random_comparison(i, rng) for i in range(3_000)]
    split = WindowAggregator(window_ms=1_000, grace_ms=0)
    whole = WindowAggregator(window_ms=10_000, grace_ms=0)
    for i, c in enumerate(comps):
        split.add(c, event_ms=i * 10_000 // len(comps))
        whole.add(c, event_ms=i * 10_000 // len(comps))
    parts = split.flush()
    (single,) = whole.flush()
    assert len(parts) == 10
    merged = merge_summaries(parts)
    assert (merged.window_start_ms, merged.window_end_ms) == (0, 10_000)
    _assert_same_stats(merged, single)
    # sanity: the random records exercise every metric
    assert single.lambda_paired > 0
    assert single.graded > 0
    assert single.excess_count > 0
    assert any(c.delta_s_excess is not None and c.delta_s_excess < 0 for c in comps)  # signed
    assert single.excess_count < single.delta_s_count
    assert single.priced_graded > 0
    assert single.shadow_timeouts > 0
    assert single.requests_missing > 0
    assert single.cost_uplift is not None


def test_merge_of_two_members_equals_one_member_over_all_records() -> None:
    rng = random.Random(12)
    comps = [_random_comparison(i, rng) for i in range(1_500)]
    m1, m2 = WindowAggregator(member="m1"), WindowAggregator(member="m2")
    single = WindowAggregator()
    for i, c in enumerate(comps):
        (m1 if i % 3 else m2).add(c, event_ms=1_000)
        single.add(c, event_ms=1_000)
    (a,) = m1.flush(partitions=[2, 0, 1])
    (b,) = m2.flush(partitions=[3, 5, 4])
    (whole,) = single.flush(partitions=range(6))
    merged = merge_summaries([b, a])
    assert merged.member == "m1,m2"
    assert merged.partitions == (0, 1, 2, 3, 4, 5)
    assert merged.count == a.count + b.count == len(comps)
    _assert_same_stats(merged, whole, skip=("summary_id", "member"))


def test_merge_of_two_members_is_exact_for_paired_and_floor_histograms() -> None:
    """Each member holds only its own paired rows: the merged excess median / p95 must be read from
    the union of the paired and floor histograms, not combined from the members' excess values."""
    rng = random.Random(16)
    comps = []
    for i in range(900):
        ds = round(rng.uniform(0.0, 0.5) if i % 2 else rng.uniform(0.4, 1.0), 4)  # members differ
        floor = round(rng.uniform(0.0, 0.4), 4) if i % 5 else None
        comps.append(_paired(i, ds if i % 7 else None, floor))
    m1, m2, single = WindowAggregator(member="m1"), WindowAggregator(member="m2"), WindowAggregator()
    for i, c in enumerate(comps):
        (m1 if i % 2 else m2).add(c, event_ms=1_000)
        single.add(c, event_ms=1_000)
    (a,), (b,), (whole,) = m1.flush(partitions=[0]), m2.flush(partitions=[1]), single.flush()
    merged = merge_summaries([a, b])
    assert a.delta_s_excess_median != b.delta_s_excess_median
    assert merged.excess_count == a.excess_count + b.excess_count == whole.excess_count
    paired = {c.req_hash for c in comps if c.delta_s_excess is not None}
    assert merged.excess_count == len(paired)
    for field in ("hist_delta_s_paired_e4", "hist_delta_s_floor_e4"):
        got, want = h.decode(getattr(merged, field)), h.decode(getattr(whole, field))
        assert got.get_total_count() == want.get_total_count() == len(paired), field
        for pct in PERCENTILES:
            assert got.get_value_at_percentile(pct) == want.get_value_at_percentile(pct), (field, pct)
    percentiles = ("delta_s_excess_median", "delta_s_excess_p95")
    for name in (*percentiles, "delta_s_floor_median", "delta_s_floor_p95"):
        assert getattr(merged, name) == getattr(whole, name), name
        assert getattr(merged, name) is not None, name
    assert merged.delta_s_excess_mean == pytest.approx(whole.delta_s_excess_mean, rel=1e-9)
    excess = [c.delta_s_excess for c in comps if c.delta_s_excess is not None]
    assert merged.delta_s_excess_mean == pytest.approx(sum(excess) / len(excess), rel=1e-9)


def test_merged_histograms_are_one_histogram_over_all_values() -> None:
    rng = random.Random(13)
    chunks = [[rng.random() for _ in range(rng.randrange(1, 300))] for _ in range(7)]
    encoded = []
    everything = h.delta_s_histogram()
    for chunk in chunks:
        part = h.delta_s_histogram()
        for v in chunk:
            h.record_delta_s(part, v)
            h.record_delta_s(everything, v)
        encoded.append(h.encode(part))
    merged = h.merged(encoded)
    assert merged.get_total_count() == sum(len(c) for c in chunks)
    for pct in PERCENTILES:
        assert h.delta_s_at(merged, pct) == h.delta_s_at(everything, pct)


def test_merge_keeps_traffic_arm_and_adds_late() -> None:
    base = [_comp(i, candidate="baseline", traffic_arm="baseline", delta_s=0.1) for i in range(4)]
    acc1, acc2 = (
        Accumulator(0, 1_000, ("baseline", *KEY[1:])),
        Accumulator(1_000, 2_000, ("baseline", *KEY[1:])),
    )
    for i, c in enumerate(base):
        (acc1 if i % 2 else acc2).add(c)
    merged = merge_summaries([acc1.summary(late=1), acc2.summary(late=2)])
    assert merged.traffic_arm == "baseline"
    assert merged.late == 3
    assert merged.count == 4
    assert (merged.window_start_ms, merged.window_end_ms) == (0, 2_000)


@pytest.mark.parametrize(
    "other_key", [("other", KEY[1], KEY[2]), (KEY[0], "/v1/other", KEY[2]), (KEY[0], KEY[1], "t2")]
)
def test_merging_different_keys_raises(other_key: tuple[str, str, str]) -> None:
    mine = _summary([_comp(1, delta_s=0.1)])
    acc = Accumulator(0, 60_000, other_key)
    acc.add(_comp(2, candidate=other_key[0], endpoint=other_key[1], tenant=other_key[2]))
    with pytest.raises(ValueError, match="different keys"):
        merge_summaries([mine, acc.summary()])


def test_merging_nothing_raises() -> None:
    with pytest.raises(ValueError, match="at least one"):
        merge_summaries([])


def test_merge_of_one_summary_is_that_summary() -> None:
    rng = random.Random(14)
    s = _summary([_random_comparison(i, rng) for i in range(300)], member="m1", partitions=[1, 0])
    assert merge_summaries([s]) == s


# ---------------------------------------------------------------------- wire, ids
def test_summaries_round_trip_through_the_wire_contract() -> None:
    rng = random.Random(15)
    s = _summary([_random_comparison(i, rng) for i in range(500)], late=3, member="m1", partitions=[4, 2])
    assert s.partitions == (2, 4)
    assert decode(encode(s), WindowSummary) == s
    empty = Accumulator(0, 1_000, KEY).summary()
    assert decode(encode(empty), WindowSummary) == empty
    assert merge_summaries([decode(encode(s), WindowSummary)]) == s


def test_summary_id_is_stable_and_names_member_partitions_window_and_key() -> None:
    comps = [_comp(i, delta_s=0.2) for i in range(3)]
    base = _summary(comps, member="m1", partitions=[0, 1])
    assert _summary(comps, member="m1", partitions=[1, 0]).summary_id == base.summary_id
    assert _summary(comps[:1], member="m1", partitions=[0, 1]).summary_id == base.summary_id  # not content
    others = [
        _summary(comps, member="m2", partitions=[0, 1]),
        _summary(comps, member="m1", partitions=[0]),
        _summary(comps, member="m1", partitions=[0, 1, 2]),
        _summary(comps, member="", partitions=[0, 1]),
        Accumulator(60_000, 120_000, KEY).summary(member="m1", partitions=[0, 1]),
        Accumulator(0, 60_000, ("other", *KEY[1:])).summary(member="m1", partitions=[0, 1]),
        Accumulator(0, 60_000, (KEY[0], "/other", KEY[2])).summary(member="m1", partitions=[0, 1]),
        Accumulator(0, 60_000, (KEY[0], KEY[1], "t9")).summary(member="m1", partitions=[0, 1]),
    ]
    ids = {s.summary_id for s in others}
    assert len(ids) == len(others)
    assert base.summary_id not in ids


# ---------------------------------------------------------------------- late records
def test_late_records_are_counted_and_reported_on_the_keys_next_summary() -> None:
    agg = WindowAggregator(window_ms=1_000, grace_ms=0)
    agg.add(_comp(1, delta_s=0.1), event_ms=100)
    agg.add(_comp(2, candidate="other", delta_s=0.1), event_ms=100)
    assert len(agg.advance(1_000)) == 2
    assert agg.add(_comp(3, delta_s=0.9), event_ms=500) is False
    assert agg.add(_comp(4, delta_s=0.9), event_ms=999) is False
    assert agg.late_total == 2
    assert agg.add(_comp(5, delta_s=0.3), event_ms=1_500) is True
    agg.add(_comp(6, candidate="other", delta_s=0.3), event_ms=1_500)
    by_candidate = {s.candidate: s for s in agg.flush()}
    cand = by_candidate[KEY[0]]
    assert cand.late == 2
    assert cand.count == 1  # the late records were not merged
    assert cand.delta_s_mean == pytest.approx(0.3)
    assert by_candidate["other"].late == 0
    assert agg.late_total == 2


def test_late_count_is_reported_once() -> None:
    agg = WindowAggregator(window_ms=1_000, grace_ms=0)
    agg.add(_comp(1), event_ms=0)
    agg.advance(1_000)
    agg.add(_comp(2), event_ms=10)
    agg.add(_comp(3), event_ms=1_100)
    (first,) = agg.advance(2_000)
    agg.add(_comp(4), event_ms=2_100)
    (second,) = agg.flush()
    assert (first.late, second.late) == (1, 0)


def test_window_uses_comparison_event_time() -> None:
    agg = WindowAggregator(window_ms=1_000, grace_ms=0)
    agg.add(_comp(1, ts_ms=2_500))
    agg.add(_comp(2, ts_ms=2_999))
    agg.add(_comp(3, ts_ms=3_000))
    summaries = agg.flush()
    assert [(s.window_start_ms, s.count) for s in summaries] == [(2_000, 2), (3_000, 1)]


# ---------------------------------------------------------------------- moments for the gates
def test_gate_moments_are_the_sums_the_gates_need() -> None:
    rows = [  # (prod solved, shadow solved, prod cost, shadow cost, coverage)
        (True, True, 1.0, 2.0, 1.0),
        (True, False, 2.0, 1.0, 0.5),
        (False, True, 3.0, 3.0, 0.0),
        (False, False, 4.0, 1.0, None),
    ]
    comps = [_graded(i, p, s, pc, sc).model_copy(update={"coverage": cov}) for i, (p, s, pc, sc, cov) in
             enumerate(rows)]  # fmt: skip
    comps.append(_comp(9, prod_cost_usd=5.0, shadow_cost_usd=6.0))  # priced, not graded
    s = _summary(comps)
    assert (s.solved_gained, s.solved_lost, s.priced_both_solved) == (1, 1, 1)
    assert s.coverage_sq_sum == pytest.approx(1.25)
    assert (s.prod_cost_sq, s.shadow_cost_sq, s.cost_cross) == pytest.approx((55.0, 51.0, 47.0))
    assert (s.graded_prod_cost_sq, s.graded_shadow_cost_sq, s.graded_cost_cross) == pytest.approx(
        (30.0, 15.0, 17.0)
    )
    assert s.graded_prod_cost_prod_solved == pytest.approx(3.0)  # rows prod solved: 1 + 2
    assert s.graded_prod_cost_shadow_solved == pytest.approx(4.0)  # rows the candidate solved: 1 + 3
    assert s.graded_shadow_cost_prod_solved == pytest.approx(3.0)  # 2 + 1
    assert s.graded_shadow_cost_shadow_solved == pytest.approx(5.0)  # 2 + 3
    assert s.solved_lost - s.solved_gained == s.prod_solved - s.shadow_solved


def test_numpy_histogram_reads_equal_hdrhistogram() -> None:
    rng = random.Random(21)
    for trial in range(40):
        hist, direct = (h.latency_histogram(), h.latency_histogram()) if trial % 2 else (
            h.delta_s_histogram(), h.delta_s_histogram())  # fmt: skip
        if trial % 2:
            values = [h.latency_value(rng.lognormvariate(6.5, 1.2)) for _ in range(rng.randrange(1, 2_000))]
        else:
            values = [h.delta_s_value(rng.betavariate(0.5, 3)) for _ in range(rng.randrange(1, 2_000))]
        record_values(hist, np.array(values, dtype=np.int64))
        for v in values:
            direct.record_value(v)
        assert h.encode(hist) == h.encode(direct)
        decoded = h.decode(h.encode(direct))
        for pct in (0, *PERCENTILES, 37.3):
            assert value_at_percentile(decoded, pct) == direct.get_value_at_percentile(pct), (trial, pct)
        got_values, got_counts = histogram_counts(h.encode(direct))
        assert got_counts.sum() == len(values)
        assert all(direct.get_highest_equivalent_value(int(v)) == v for v in got_values)
