"""shadowlane/metrics.py and shadowlane/kafka/lag.py: labelled metrics, collector passthrough,
consumer lag."""

from __future__ import annotations

import urllib.request
from typing import Any, get_args

import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from pydantic import SecretStr

from shadowlane.compare.prom import CompareMetrics
from shadowlane.contracts.comparison import Outcome
from shadowlane.contracts.drift_alert import AlertMetric
from shadowlane.contracts.shadow_result import ErrorClass
from shadowlane.kafka.lag import LagTracker
from shadowlane.metrics import StatsCollector, serve_metrics
from shadowlane.rollout.control_plane import ControlWatcher
from shadowlane.rollout.signing import RejectReason
from shadowlane.settings import CompareSettings, ControlSettings, Settings, ShadowSettings
from shadowlane.shadow.candidates import CallableCandidate
from shadowlane.shadow.worker import ShadowWorker


def exposition(*collectors: Any) -> str:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry).decode()


def sample_lines(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{") or line.startswith(name + " ")]


LABELS = {"group": "g1", "candidate": "c1"}


def test_plain_counters_and_gauges_keep_their_shape() -> None:
    text = exposition(
        StatsCollector("shadowlane_x", lambda: {"consumed": 4}, gauges=lambda: {"depth": 2.5}, labels=LABELS)
    )
    assert sample_lines(text, "shadowlane_x_consumed_total") == [
        'shadowlane_x_consumed_total{candidate="c1",group="g1"} 4.0'
    ]
    assert sample_lines(text, "shadowlane_x_depth") == ['shadowlane_x_depth{candidate="c1",group="g1"} 2.5']
    assert "# TYPE shadowlane_x_consumed_total counter" in text
    assert "# TYPE shadowlane_x_depth gauge" in text


def test_labelled_counters_and_gauges() -> None:
    collector = StatsCollector(
        "shadowlane_shadow",
        lambda: {},
        labels=LABELS,
        labelled_counters=lambda: {
            "candidate_errors": (("error_class",), {("timeout",): 3.0, ("server_error",): 1.0})
        },
        labelled_gauges=lambda: {"backlog": (("topic", "partition"), {("t", "0"): 7.0})},
    )
    text = exposition(collector)
    assert sorted(sample_lines(text, "shadowlane_shadow_candidate_errors_total")) == [
        'shadowlane_shadow_candidate_errors_total{candidate="c1",error_class="server_error",group="g1"} 1.0',
        'shadowlane_shadow_candidate_errors_total{candidate="c1",error_class="timeout",group="g1"} 3.0',
    ]
    assert "# TYPE shadowlane_shadow_candidate_errors_total counter" in text
    assert sample_lines(text, "shadowlane_shadow_backlog") == [
        'shadowlane_shadow_backlog{candidate="c1",group="g1",partition="0",topic="t"} 7.0'
    ]
    assert "# TYPE shadowlane_shadow_backlog gauge" in text


def test_labelled_values_must_match_their_label_names() -> None:
    wrong_width = StatsCollector(
        "p", lambda: {}, labelled_counters=lambda: {"e": (("a", "b"), {("only-one",): 1.0})}
    )
    with pytest.raises(ValueError, match="1 label values for 2 label names"):
        list(wrong_width.collect())
    clash = StatsCollector(
        "p", lambda: {}, labels={"group": "g"}, labelled_gauges=lambda: {"e": (("group",), {("x",): 1.0})}
    )
    with pytest.raises(ValueError, match="group"):
        list(clash.collect())


def test_known_label_values_are_exported_as_zero_until_counted() -> None:
    counts: dict[tuple[str, ...], float] = {}
    collector = StatsCollector(
        "p",
        lambda: {},
        labels={"group": "g"},
        labelled_counters=lambda: {"errors": (("arm", "kind"), dict(counts))},
        known={"errors": [("a", "b"), ("x", "y")]},
    )
    fresh = sorted(sample_lines(exposition(collector), "p_errors_total"))
    assert fresh == [
        f'p_errors_total{{arm="{arm}",group="g",kind="{kind}"}} 0.0' for arm in "ab" for kind in "xy"
    ]
    counts[("a", "y")] = 3.0
    counts[("c", "z")] = 1.0  # an unknown value still shows once counted
    text = exposition(collector)
    assert 'p_errors_total{arm="a",group="g",kind="y"} 3.0' in sample_lines(text, "p_errors_total")
    assert 'p_errors_total{arm="c",group="g",kind="z"} 1.0' in sample_lines(text, "p_errors_total")
    assert len(sample_lines(text, "p_errors_total")) == 5  # counted values are never doubled
    wrong = StatsCollector(
        "p", lambda: {}, labelled_counters=lambda: {"e": (("a",), {})}, known={"e": [("x",), ("y",)]}
    )
    with pytest.raises(ValueError, match="2 known label values for 1 label names"):
        list(wrong.collect())


def test_every_labelled_counter_family_has_its_zero_series_from_the_start() -> None:
    """Fresh collectors, no event yet: the shadow worker's error classes, the control watcher's
    rejection reasons and the comparator's per-candidate series are all there, at 0."""
    settings = Settings(
        shadow=ShadowSettings(candidate="cand"),
        control=ControlSettings(signing_keys={"k1": SecretStr("k" * 32)}),
    )
    worker = ShadowWorker(settings, CallableCandidate("cand", lambda body: "x"), {})
    shadow = exposition(
        StatsCollector(
            "shadowlane_shadow",
            worker.counters,
            labels={"group": worker.group_id, "candidate": "cand"},
            labelled_counters=worker.labelled_counters,
            known=worker.known_labels,
        )
    )
    errors = sample_lines(shadow, "shadowlane_shadow_candidate_errors_total")
    assert len(errors) == len(get_args(ErrorClass)) == 6
    for cls in get_args(ErrorClass):
        labels = f'candidate="cand",error_class="{cls}",group="{worker.group_id}"'
        assert f"shadowlane_shadow_candidate_errors_total{{{labels}}} 0.0" in errors

    watcher = ControlWatcher(settings, {}, observer="test")
    rejected = sample_lines(exposition(watcher.collector()), "shadowlane_control_rejected_by_reason_total")
    reasons = sorted(line.split('reason="')[1].split('"')[0] for line in rejected)
    assert reasons == sorted(get_args(RejectReason))
    assert all(line.endswith(" 0.0") for line in rejected)

    compare = CompareSettings(candidates=("cand", "baseline"))
    metrics = CompareMetrics(compare.candidates, compare.baseline_candidate)
    text = exposition(*metrics.collectors())
    comparisons = sample_lines(text, "shadowlane_compare_comparisons_total")
    assert len(comparisons) == 2 * len(get_args(Outcome))
    for outcome in get_args(Outcome):
        for candidate, arm in (("cand", "shadow"), ("baseline", "baseline")):
            labels = f'candidate="{candidate}",outcome="{outcome}",traffic_arm="{arm}"'
            assert f"shadowlane_compare_comparisons_total{{{labels}}} 0.0" in comparisons
    for name in ("shadow_errors", "lambda_flips"):
        assert sorted(sample_lines(text, f"shadowlane_compare_{name}_total")) == [
            f'shadowlane_compare_{name}_total{{candidate="baseline"}} 0.0',
            f'shadowlane_compare_{name}_total{{candidate="cand"}} 0.0',
        ]
    alerts = sample_lines(text, "shadowlane_compare_drift_alerts_total")
    assert len(alerts) == 2 * len(get_args(AlertMetric))
    assert all(line.endswith(" 0.0") for line in alerts)


def test_also_collectors_are_exposed_alongside() -> None:
    inner = StatsCollector("other", lambda: {"n": 1})
    text = exposition(StatsCollector("outer", lambda: {"m": 2}, also=[inner]))
    assert sample_lines(text, "outer_m_total") == ["outer_m_total 2.0"]
    assert sample_lines(text, "other_n_total") == ["other_n_total 1.0"]


def test_serve_metrics_exposes_a_histogram_made_without_a_registry() -> None:
    histogram = Histogram(
        "shadowlane_test_latency_seconds", "replay latency", buckets=(0.1, 1.0), registry=None
    )
    for value in (0.05, 0.5, 3.0):
        histogram.observe(value)
    server = serve_metrics([StatsCollector("shadowlane_t", lambda: {"replayed": 3}), histogram])
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    finally:
        server.close()
    assert 'shadowlane_test_latency_seconds_bucket{le="0.1"} 1.0' in text
    assert 'shadowlane_test_latency_seconds_bucket{le="1.0"} 2.0' in text
    assert 'shadowlane_test_latency_seconds_bucket{le="+Inf"} 3.0' in text
    assert "shadowlane_test_latency_seconds_count 3.0" in text
    assert "shadowlane_t_replayed_total 3.0" in text


# --------------------------------------------------------------------------- consumer lag


class FakeConsumer:
    def __init__(
        self, highwater: dict[TopicPartition, int | None], stable: dict[TopicPartition, int] | None = None
    ) -> None:
        self.marks = highwater
        self.stable = stable or {}

    def highwater(self, partition: TopicPartition) -> int | None:
        if partition not in self.marks:
            raise AssertionError("Partition is not assigned")  # what aiokafka does
        return self.marks[partition]

    def last_stable_offset(self, partition: TopicPartition) -> int | None:
        self.highwater(partition)
        return self.stable.get(partition)


T0, T1, T2, U0 = (
    TopicPartition("req", 0),
    TopicPartition("req", 1),
    TopicPartition("req", 2),
    TopicPartition("u", 0),
)


def test_lag_is_highwater_minus_next_offset_skipping_unknowns() -> None:
    consumer = FakeConsumer({T0: 100, T1: None, U0: 10})
    lag = LagTracker()
    assert lag.lags() == {}  # no consumer yet
    lag.attach(consumer)
    lag.seen(T0, 40)
    lag.seen(T0, 94)  # the newest offset wins
    lag.seen(T1, 5)  # highwater not known yet: skipped
    lag.seen(T2, 3)  # not assigned (the consumer raises): skipped
    lag.seen(U0, 9)  # caught up
    assert lag.lags() == {T0: 5, U0: 0}
    consumer.marks[T1] = 8
    assert lag.lags() == {T0: 5, T1: 2, U0: 0}
    lag.forget([T0, T1])
    assert lag.lags() == {U0: 0}


def test_a_transactional_partition_is_caught_up_at_its_last_stable_offset() -> None:
    # records 0..8, then the commit marker at 9: the last record is 8, the end is 10
    consumer = FakeConsumer({T0: 12}, {T0: 10})
    lag = LagTracker(consumer)
    lag.seen(T0, 8)
    assert lag.lags() == {T0: 1}  # the marker: only the position tells it was read
    lag.at(T0, 10)
    assert lag.lags() == {T0: 0}  # offsets 10, 11 belong to a transaction still open


def test_lag_is_never_negative() -> None:
    lag = LagTracker(FakeConsumer({T0: 3}))
    lag.seen(T0, 10)
    assert lag.lags() == {T0: 0}


def test_lag_gauge_mapping_and_exposition() -> None:
    lag = LagTracker(FakeConsumer({T0: 100, U0: 12}))
    lag.seen(T0, 89)
    lag.seen(U0, 1)
    assert lag.labelled_gauges() == {
        "consumer_lag": (("topic", "partition"), {("req", "0"): 10.0, ("u", "0"): 10.0})
    }
    lag.seen(U0, 6)
    text = exposition(lag.collector("shadowlane.shadow.cand"))
    assert sorted(sample_lines(text, "shadowlane_consumer_lag")) == [
        'shadowlane_consumer_lag{group="shadowlane.shadow.cand",partition="0",topic="req"} 10.0',
        'shadowlane_consumer_lag{group="shadowlane.shadow.cand",partition="0",topic="u"} 5.0',
    ]
    assert "# TYPE shadowlane_consumer_lag gauge" in text


def test_shadow_worker_metrics_as_run_shadow_wires_them() -> None:
    settings = Settings(shadow=ShadowSettings(candidate="cand"))
    worker = ShadowWorker(settings, CallableCandidate("cand", lambda body: "x"), {})
    worker.stats.consumed = 5
    worker.stats.lambda_replays = 2
    worker.stats.error_classes.update({"timeout": 3, "exception": 1})
    worker.bucket.throttled = 4
    worker.bucket.throttle_wait_s = 1.5
    worker.lag.attach(FakeConsumer({T0: 50}))
    worker.lag.seen(T0, 44)
    collector = StatsCollector(
        "shadowlane_shadow",
        worker.counters,
        gauges=worker.gauges,
        labels={"group": worker.group_id, "candidate": "cand"},
        labelled_counters=worker.labelled_counters,
        known=worker.known_labels,
        also=[worker.lag.collector(worker.group_id)],
    )
    text = exposition(collector)
    group = worker.group_id
    both = f'candidate="cand",group="{group}"'
    errors = "shadowlane_shadow_candidate_errors_total"
    expected = [
        f"shadowlane_shadow_consumed_total{{{both}}} 5.0",
        f"shadowlane_shadow_lambda_replays_total{{{both}}} 2.0",
        f"shadowlane_shadow_throttled_total{{{both}}} 4.0",
        f"shadowlane_shadow_throttle_wait_seconds_total{{{both}}} 1.5",
        f'{errors}{{candidate="cand",error_class="timeout",group="{group}"}} 3.0',
        f'{errors}{{candidate="cand",error_class="exception",group="{group}"}} 1.0',
        f'{errors}{{candidate="cand",error_class="rate_limited",group="{group}"}} 0.0',
        f"shadowlane_shadow_in_flight{{{both}}} 0.0",
        f'shadowlane_consumer_lag{{group="{group}",partition="0",topic="req"}} 5.0',
    ]
    for line in expected:
        assert line in text.splitlines(), line
    # the stopped line keeps plain integers only
    assert "error_classes" not in worker.stats.as_dict()
    assert worker.stats.as_dict()["lambda_replays"] == 2
