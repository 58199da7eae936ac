"""Tumbling windows: closing on event time, late records counted, summaries merge exactly."""

from __future__ import annotations

import random

import pytest

from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.windows import histograms as h
from shadowlane.windows.accumulator import Accumulator
from shadowlane.windows.aggregate import WindowAggregator
from tests.support.summaries import comparison


def test_windows_close_on_event_time_and_summarise() -> None:
    rng = random.Random(1)
    agg = WindowAggregator(window_ms=1_000, grace_ms=500)
    for i in range(300):
        agg.add(comparison(i, rng), event_ms=i * 10)  # 0 .. 2990 ms: three windows
    assert agg.advance(1_400) == []  # window [0, 1000) closes at 1500
    first = agg.advance(1_500)
    assert [s.window_start_ms for s in first] == [0]
    assert first[0].count == 100
    assert first[0].exact_match_rate is not None
    assert abs(first[0].exact_match_rate - 34 / 100) < 1e-9
    rest = agg.flush()
    assert [s.window_start_ms for s in rest] == [1_000, 2_000]
    assert sum(s.count for s in first + rest) == 300
    for summary in first + rest:
        assert decode(encode(summary), WindowSummary) == summary


def test_late_records_are_counted_not_lost() -> None:
    rng = random.Random(2)
    agg = WindowAggregator(window_ms=1_000, grace_ms=0)
    agg.add(comparison(1, rng), event_ms=100)
    closed = agg.advance(1_000)
    assert len(closed) == 1
    assert agg.add(comparison(2, rng), event_ms=500) is False  # its window is out already
    assert agg.late_total == 1
    agg.add(comparison(3, rng), event_ms=1_200)
    (nxt,) = agg.flush()
    assert nxt.late == 1
    assert nxt.count == 1


def test_merged_window_histograms_equal_one_histogram_over_all_values() -> None:
    rng = random.Random(3)
    comps = [comparison(i, rng) for i in range(2_000)]
    split = WindowAggregator(window_ms=1_000, grace_ms=0)
    whole = WindowAggregator(window_ms=10_000, grace_ms=0)
    for i, c in enumerate(comps):
        split.add(c, event_ms=i * 5)  # ten 1 s windows
        whole.add(c, event_ms=i * 5)  # one 10 s window
    parts = split.flush()
    (single,) = whole.flush()
    assert len(parts) == 10
    hists = (
        "hist_latency_prod_us",
        "hist_latency_shadow_us",
        "hist_delta_s_e4",
        "hist_delta_s_paired_e4",
        "hist_delta_s_floor_e4",
    )
    for field in hists:
        merged = h.merged([getattr(p, field) for p in parts])
        reference = h.decode(getattr(single, field))
        assert merged.get_total_count() == reference.get_total_count()
        for pct in (50, 90, 95, 99, 99.9):
            assert merged.get_value_at_percentile(pct) == reference.get_value_at_percentile(pct)
    assert single.latency_prod.p95_ms == h.latency_ms_at(
        h.merged([p.hist_latency_prod_us for p in parts]), 95
    )
    assert single.excess_count == sum(p.excess_count for p in parts) > 0
    assert h.merged([p.hist_delta_s_paired_e4 for p in parts]).get_total_count() == single.excess_count
    paired_median = h.delta_s_at(h.merged([p.hist_delta_s_paired_e4 for p in parts]), 50)
    floor_median = h.delta_s_at(h.merged([p.hist_delta_s_floor_e4 for p in parts]), 50)
    assert paired_median is not None
    assert floor_median is not None
    assert single.delta_s_excess_median == pytest.approx(paired_median - floor_median, abs=1e-9)


def test_tally_folds_into_exactly_the_histogram_direct_recording_gives() -> None:
    rng = random.Random(7)
    values = [rng.choice((12.0, 40.5, 41.0, 999.9)) if i % 3 else rng.uniform(0, 5000) for i in range(5000)]
    direct, tally, other = h.latency_histogram(), h.latency_tally(), h.latency_tally()
    for i, ms in enumerate(values):
        h.record_latency(direct, ms)
        (tally if i % 2 else other).record(h.latency_value(ms))
        if i == 2500:
            assert tally.hist.get_total_count() == 1250  # a read folds; recording goes on after it
    tally.add(other)
    assert tally.hist.get_total_count() == direct.get_total_count() == len(values)
    for p in (0, 50, 90, 95, 99, 99.9, 100):
        assert tally.hist.get_value_at_percentile(p) == direct.get_value_at_percentile(p)
    assert h.encode(tally.hist) == h.encode(direct)


@pytest.mark.parametrize("seed", range(12))
def test_adding_a_poll_at_once_equals_adding_one_at_a_time(seed: int) -> None:
    """``add_many`` (a poll's comparisons in runs per window) gives the summaries and late counts
    of adding each at its event time, whatever the chunking, the interleaving of windows and
    keys, and late records among them."""
    rng = random.Random(seed)
    polls: list[list[Comparison]] = []
    for p in range(6):
        poll = []
        for i in range(rng.randrange(0, 60)):
            outcome = rng.choice(["joined", "joined", "joined", "shadow_timeout", "request_missing"])
            c = comparison(p * 100 + i, rng, candidate=rng.choice(["a", "b"]), outcome=outcome)
            ts = p * 1_000 + rng.randrange(-2_500, 1_000)  # some land in windows closed already
            if p >= 3 and rng.random() < 0.3:  # runs of one late instant: a closed window's start
                ts = (p - 3) * 1_000
            poll.append(c.model_copy(update={"ts_ms": max(ts, 0), "tenant": rng.choice(["t1", "t2"])}))
        polls.append(poll)
    one, batched = WindowAggregator(1_000, 200), WindowAggregator(1_000, 200)
    out_one: list[WindowSummary] = []
    out_batched: list[WindowSummary] = []
    late_one = late_batched = 0
    for p, poll in enumerate(polls):
        late_one += sum(not one.add(c, event_ms=c.ts_ms) for c in poll)
        cut = rng.randrange(0, len(poll) + 1)
        late_batched += batched.add_many(poll[:cut]) + batched.add_many(poll[cut:])
        out_one += one.advance(p * 1_000)
        out_batched += batched.advance(p * 1_000)
    out_one += one.flush()
    out_batched += batched.flush()
    assert late_batched == late_one == one.late_total == batched.late_total
    assert [s.model_dump() for s in out_batched] == [s.model_dump() for s in out_one]
    assert late_one > 0  # the polls do put records into windows closed already


def test_the_accumulator_records_latencies_as_latency_value_does() -> None:
    """``Accumulator.add_many`` inlines :func:`histograms.latency_value`; the two must agree at
    the clamps (under 1 µs, past an hour) and on rounding."""
    rng = random.Random(5)
    values = [0.0, 0.0004, 0.0005, 0.0015, 1.2345, 40.0, 3_600_000.0, 9e12]
    acc = Accumulator(0, 60_000, ("b", None, None))
    base = comparison(0, rng)
    acc.add_many([base.model_copy(update={"prod_latency_ms": ms, "shadow_latency_ms": ms}) for ms in values])
    expected: dict[int, int] = {}
    for ms in values:
        expected[h.latency_value(ms)] = expected.get(h.latency_value(ms), 0) + 1
    assert acc.lat_prod.pending == expected == acc.lat_shadow.pending
