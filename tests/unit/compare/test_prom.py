"""The comparator's labelled Prometheus series, rendered through a fresh registry's exposition."""

from __future__ import annotations

import random
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from shadowlane.compare.prom import DELTA_S_BUCKETS, LATENCY_BUCKETS, CompareMetrics
from shadowlane.contracts.comparison import Comparison
from shadowlane.settings import CompareSettings
from shadowlane.windows.accumulator import Accumulator
from shadowlane.windows.alerts import drift_alerts

P = "shadowlane_compare"


def _comp(i: int, candidate: str = "cand", **fields: Any) -> Comparison:
    values: dict[str, Any] = {
        "comparison_id": f"c{i}",
        "req_hash": f"{i:032x}",
        "candidate": candidate,
        "traffic_arm": "baseline" if candidate == "baseline" else "shadow",
        "ts_ms": 0,
        "endpoint": "/v1/chat/completions",
        "tenant": "t1",
        "complete": True,
        "outcome": "joined",
        "prod_latency_ms": 40.0,
        "shadow_latency_ms": 60.0,
        "prod_status": "200",
        "shadow_status": "ok",
    }
    values.update(fields)
    if values["outcome"] != "joined":
        values["complete"] = False
    return Comparison(**values)


def _render(metrics: CompareMetrics) -> str:
    registry = CollectorRegistry()
    for collector in metrics.collectors():
        registry.register(collector)
    return generate_latest(registry).decode()


def _value(text: str, series: str) -> float:
    """The value of one exposition line, ``series`` being its name and labels exactly."""
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    raise AssertionError(f"{series} not in exposition")


def _observed() -> CompareMetrics:
    metrics = CompareMetrics()
    metrics.observe(
        [
            _comp(1, delta_s=0.0, delta_s_floor=0.2, delta_s_excess=-0.2),
            _comp(2, delta_s=0.03, delta_s_floor=0.07, delta_s_excess=-0.04),
            _comp(3, delta_s=0.05, delta_s_floor=0.05, delta_s_excess=0.0),  # le is inclusive
            _comp(4, delta_s=0.2, delta_s_floor=0.15, delta_s_excess=0.05, lambda_flip=True),
            _comp(5, delta_s=0.9, lambda_flip=False, shadow_status="error:timeout"),
            _comp(6, delta_s=None, lambda_flip=True),
            _comp(7, outcome="shadow_timeout", shadow_latency_ms=None, shadow_status=None),
            _comp(8, outcome="request_missing", prod_latency_ms=None, prod_status=None),
            _comp(9, "baseline", delta_s=0.04),
            _comp(10, "baseline", delta_s=0.07, lambda_flip=True),
        ]
    )
    return metrics


def test_delta_s_histogram_per_candidate_and_arm() -> None:
    text = _render(_observed())
    ds = f"{P}_delta_s_bucket"
    assert _value(text, f'{ds}{{candidate="cand",le="0.0",traffic_arm="shadow"}}') == 1
    assert _value(text, f'{ds}{{candidate="cand",le="0.02",traffic_arm="shadow"}}') == 1
    assert _value(text, f'{ds}{{candidate="cand",le="0.05",traffic_arm="shadow"}}') == 3
    assert _value(text, f'{ds}{{candidate="cand",le="0.3",traffic_arm="shadow"}}') == 4
    assert _value(text, f'{ds}{{candidate="cand",le="+Inf",traffic_arm="shadow"}}') == 5
    assert _value(text, f'{P}_delta_s_count{{candidate="cand",traffic_arm="shadow"}}') == 5
    assert _value(text, f'{P}_delta_s_sum{{candidate="cand",traffic_arm="shadow"}}') == pytest.approx(1.18)
    assert _value(text, f'{ds}{{candidate="baseline",le="0.05",traffic_arm="baseline"}}') == 1
    assert _value(text, f'{P}_delta_s_count{{candidate="baseline",traffic_arm="baseline"}}') == 2
    assert 'candidate="cand",le="0.05",traffic_arm="baseline"' not in text


def test_no_histogram_of_per_request_differences() -> None:
    """The excess ΔS has one definition, the windows' (a gauge below); the quantiles of
    per-request differences are another statistic and are not exported."""
    text = _render(_observed())
    assert f"{P}_delta_s_excess_bucket" not in text
    assert f"{P}_delta_s_adjusted" not in text


def test_latency_per_arm() -> None:
    text = _render(_observed())
    lat = f"{P}_latency_seconds"
    # prod latency: every comparison that has one (joined and shadow_timeout), shadow: joined + missing
    assert _value(text, f'{lat}_count{{candidate="cand",traffic_arm="prod"}}') == 7
    assert _value(text, f'{lat}_sum{{candidate="cand",traffic_arm="prod"}}') == pytest.approx(7 * 0.04)
    assert _value(text, f'{lat}_count{{candidate="cand",traffic_arm="shadow"}}') == 7
    assert _value(text, f'{lat}_sum{{candidate="cand",traffic_arm="shadow"}}') == pytest.approx(7 * 0.06)
    assert _value(text, f'{lat}_bucket{{candidate="cand",le="0.05",traffic_arm="prod"}}') == 7
    assert _value(text, f'{lat}_bucket{{candidate="cand",le="0.05",traffic_arm="shadow"}}') == 0
    assert _value(text, f'{lat}_count{{candidate="baseline",traffic_arm="baseline"}}') == 2
    assert _value(text, f'{lat}_count{{candidate="baseline",traffic_arm="prod"}}') == 2


def test_comparisons_by_outcome() -> None:
    text = _render(_observed())
    n = f"{P}_comparisons_total"
    assert _value(text, f'{n}{{candidate="cand",outcome="joined",traffic_arm="shadow"}}') == 6
    assert _value(text, f'{n}{{candidate="cand",outcome="shadow_timeout",traffic_arm="shadow"}}') == 1
    assert _value(text, f'{n}{{candidate="cand",outcome="request_missing",traffic_arm="shadow"}}') == 1
    assert _value(text, f'{n}{{candidate="baseline",outcome="joined",traffic_arm="baseline"}}') == 2


def test_shadow_errors_and_lambda_flips() -> None:
    text = _render(_observed())
    assert _value(text, f'{P}_shadow_errors_total{{candidate="cand"}}') == 1  # timeouts are not errors
    assert _value(text, f'{P}_lambda_flips_total{{candidate="cand"}}') == 2
    assert _value(text, f'{P}_lambda_flips_total{{candidate="baseline"}}') == 1


def test_observing_again_accumulates() -> None:
    metrics = _observed()
    metrics.observe([_comp(20, delta_s=0.01), _comp(21, outcome="shadow_timeout", shadow_latency_ms=None)])
    text = _render(metrics)
    assert _value(text, f'{P}_delta_s_bucket{{candidate="cand",le="0.05",traffic_arm="shadow"}}') == 4
    assert (
        _value(
            text, f'{P}_comparisons_total{{candidate="cand",outcome="shadow_timeout",traffic_arm="shadow"}}'
        )
        == 2
    )


def test_histogram_buckets_cover_delta_s_range() -> None:
    assert DELTA_S_BUCKETS[0] == 0.0
    assert DELTA_S_BUCKETS[-1] == 1.0
    assert list(DELTA_S_BUCKETS) == sorted(set(DELTA_S_BUCKETS))


def test_window_gauges_and_alert_counter() -> None:
    metrics = CompareMetrics()
    acc = Accumulator(0, 60_000, ("cand", "/v1/chat/completions", "t1"))
    for i in range(20):
        acc.add(_comp(i, delta_s=0.6, lambda_state="divergent", lambda_flip=i < 5))
    summary = acc.summary()
    metrics.window(summary)
    alerts = drift_alerts(summary, CompareSettings())
    assert sorted(a.metric for a in alerts) == ["delta_s_mean", "lambda_flip_rate"]
    for alert in alerts:
        metrics.alert(alert)
    metrics.alert(alerts[0])
    text = _render(metrics)
    labels = 'candidate="cand",endpoint="/v1/chat/completions",tenant="t1"'
    assert _value(text, f"{P}_window_delta_s_mean{{{labels}}}") == pytest.approx(0.6)
    assert _value(text, f"{P}_window_lambda_flip_rate{{{labels}}}") == pytest.approx(0.25)
    # the samples behind each, which the Prometheus rules' 20-sample guard reads
    assert _value(text, f"{P}_window_delta_s_samples{{{labels}}}") == 20
    assert _value(text, f"{P}_window_lambda_flip_samples{{{labels}}}") == 20
    counts = {a.metric: 1 for a in alerts}
    counts[alerts[0].metric] += 1
    for metric, count in counts.items():
        assert _value(text, f'{P}_drift_alerts_total{{candidate="cand",metric="{metric}"}}') == count


def test_window_gauge_tracks_the_last_window_and_empty_buckets() -> None:
    metrics = CompareMetrics()
    for value in (0.2, 0.7):
        acc = Accumulator(0, 60_000, ("cand", None, None))
        acc.add(_comp(1, delta_s=value, endpoint=None, tenant=None))
        metrics.window(acc.summary())
    empty = Accumulator(0, 60_000, ("other", None, None)).summary()
    metrics.window(empty)  # no ΔS, no λ: no series
    text = _render(metrics)
    assert _value(
        text, f'{P}_window_delta_s_mean{{candidate="cand",endpoint="",tenant=""}}'
    ) == pytest.approx(0.7)
    assert 'candidate="other"' not in text
    assert f'{P}_window_lambda_flip_rate{{candidate="cand"' not in text


def test_window_excess_gauges_follow_the_last_window_and_vanish_without_a_floor() -> None:
    """The excess ΔS gauges carry the window summary's own values; a later window of the same key
    without a noise floor removes them rather than leaving the older window's figure up."""
    metrics = CompareMetrics()
    acc = Accumulator(0, 60_000, ("cand", None, None))
    for i in range(30):
        acc.add(
            _comp(
                i,
                delta_s=0.1 + i / 100,
                delta_s_floor=0.05,
                delta_s_excess=0.05 + i / 100,
                endpoint=None,
                tenant=None,
            )
        )
    summary = acc.summary()
    assert summary.delta_s_excess_median is not None
    assert summary.delta_s_excess_p95 is not None
    metrics.window(summary)
    text = _render(metrics)
    labels = 'candidate="cand",endpoint="",tenant=""'
    assert _value(text, f"{P}_window_delta_s_excess_median{{{labels}}}") == summary.delta_s_excess_median
    assert _value(text, f"{P}_window_delta_s_excess_p95{{{labels}}}") == summary.delta_s_excess_p95
    assert _value(text, f"{P}_window_delta_s_excess_samples{{{labels}}}") == 30
    later = Accumulator(60_000, 120_000, ("cand", None, None))
    later.add(_comp(1, delta_s=0.3, endpoint=None, tenant=None))  # no floor in this window
    metrics.window(later.summary())
    text = _render(metrics)
    assert f"{P}_window_delta_s_excess_median{{" not in text
    assert f"{P}_window_delta_s_excess_p95{{" not in text
    assert f"{P}_window_delta_s_excess_samples{{" not in text
    assert _value(text, f"{P}_window_delta_s_mean{{{labels}}}") == pytest.approx(0.3)


def test_metrics_are_not_registered_globally() -> None:
    first, second = CompareMetrics(), CompareMetrics()  # a global registry would reject duplicates
    first.observe([_comp(1, delta_s=0.1)])
    assert 'candidate="cand"' not in _render(second)
    assert _value(_render(first), f'{P}_delta_s_count{{candidate="cand",traffic_arm="shadow"}}') == 1


def _reference_exposition(polls: list[list[Comparison]]) -> str:
    """The series as prometheus-client's own Histogram and Counter give them, one value at a time."""
    registry = CollectorRegistry()
    arm = ("candidate", "traffic_arm")
    delta_s = Histogram(f"{P}_delta_s", "x", arm, buckets=DELTA_S_BUCKETS, registry=registry)
    latency = Histogram(f"{P}_latency_seconds", "x", arm, buckets=LATENCY_BUCKETS, registry=registry)
    outcomes = Counter(f"{P}_comparisons", "x", ("candidate", "traffic_arm", "outcome"), registry=registry)
    errors = Counter(f"{P}_shadow_errors", "x", ("candidate",), registry=registry)
    flips = Counter(f"{P}_lambda_flips", "x", ("candidate",), registry=registry)
    for poll in polls:
        for c in poll:
            outcomes.labels(c.candidate, c.traffic_arm, c.outcome).inc()
            if c.prod_latency_ms is not None:
                latency.labels(c.candidate, "prod").observe(c.prod_latency_ms / 1000)
            if c.shadow_latency_ms is not None:
                latency.labels(c.candidate, c.traffic_arm).observe(c.shadow_latency_ms / 1000)
            if c.outcome != "joined":
                continue
            if c.delta_s is not None:
                delta_s.labels(c.candidate, c.traffic_arm).observe(c.delta_s)
            if c.shadow_status != "ok":
                errors.labels(c.candidate).inc()
            if c.lambda_flip:
                flips.labels(c.candidate).inc()
    return generate_latest(registry).decode()


def _samples(text: str) -> dict[str, float]:
    """Exposition lines by series (help text and ``_created`` stamps left out)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or "_created" in line:
            continue
        name, _, value = line.rpartition(" ")
        out[name] = float(value)
    return out


@pytest.mark.parametrize("seed", range(20))
def test_batched_observe_equals_observing_one_at_a_time(seed: int) -> None:
    """Grouping a poll per series changes no count, bucket or float sum, whatever the mix of
    candidates, arms (one candidate in two arms included), outcomes and missing values."""
    rng = random.Random(seed)

    def maybe(value: float) -> float | None:
        return None if rng.random() < 0.3 else value

    polls = []
    for p in range(3):
        poll = []
        for i in range(rng.randrange(0, 40)):
            candidate = rng.choice(["a", "b", "baseline"])
            outcome = rng.choice(["joined", "joined", "shadow_timeout", "request_missing"])
            ds = maybe(round(rng.random(), 4))
            poll.append(
                _comp(
                    p * 100 + i,
                    candidate,
                    traffic_arm=rng.choice(["shadow", "baseline", "prod"]),
                    outcome=outcome,
                    prod_latency_ms=maybe(rng.uniform(1, 9000)),
                    shadow_latency_ms=maybe(rng.uniform(1, 9000)),
                    delta_s=ds,
                    delta_s_excess=maybe(round(rng.uniform(-1, 1), 4)),
                    shadow_status=rng.choice(["ok", "ok", "error:timeout"]),
                    lambda_flip=rng.choice([None, True, False]),
                )
            )
        polls.append(poll)
    metrics = CompareMetrics()
    for poll in polls:
        metrics.observe(poll)
    assert _samples(_render(metrics)) == _samples(_reference_exposition(polls))
