"""The comparator's labelled Prometheus series: ΔS and latency histograms, outcomes, windows, alerts.

Plain counters (consumed, joined, late, DLQ, ...) are read from the stats objects at scrape time
by :class:`workers.metrics.StatsCollector`; this module holds the series that need labels per
candidate and ``traffic_arm`` (``prod`` / ``shadow`` / ``baseline``). The objects are created
unregistered (``registry=None``) and handed to the process's own registry: no global state.
A poll's comparisons are observed as a batch: values are grouped per label set and each group
goes into a :class:`~workers.prom_batch.BatchHistogram` at once, counters are incremented once
per label set.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Gauge
from prometheus_client.registry import Collector

from schemas.comparison import Comparison
from schemas.drift_alert import DriftAlert
from schemas.window_summary import WindowSummary
from workers.prom_batch import BatchHistogram

DELTA_S_BUCKETS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0)
EXCESS_BUCKETS = (-0.3, -0.1, -0.05, -0.02, 0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 1.0)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)
P = "shadowlane_compare"


class CompareMetrics:
    def __init__(self) -> None:
        self.delta_s = BatchHistogram(
            f"{P}_delta_s", "ΔS prod vs arm per request", ("candidate", "traffic_arm"), DELTA_S_BUCKETS
        )
        self.delta_s_excess = BatchHistogram(
            f"{P}_delta_s_excess", "ΔS minus the noise floor, per request (signed)", ("candidate",),
            EXCESS_BUCKETS,
        )  # fmt: skip
        self.latency = BatchHistogram(
            f"{P}_latency_seconds", "latency per arm of compared requests", ("candidate", "traffic_arm"),
            LATENCY_BUCKETS,
        )  # fmt: skip
        self.comparisons = Counter(
            f"{P}_comparisons", "comparisons emitted", ("candidate", "traffic_arm", "outcome"), registry=None
        )
        self.shadow_errors = Counter(
            f"{P}_shadow_errors", "joined pairs whose shadow erred", ("candidate",), registry=None
        )
        self.lambda_flips = Counter(
            f"{P}_lambda_flips", "λ flips (baseline convergent, candidate not)", ("candidate",), registry=None
        )
        self.alerts = Counter(
            f"{P}_drift_alerts", "drift alerts raised", ("candidate", "metric"), registry=None
        )
        labels = ("candidate", "endpoint", "tenant")
        self.window_delta_s_mean = Gauge(
            f"{P}_window_delta_s_mean", "mean ΔS of the last closed window", labels, registry=None
        )
        self.window_flip_rate = Gauge(
            f"{P}_window_lambda_flip_rate", "λ flip rate of the last closed window", labels, registry=None
        )
        self._children: dict[tuple[str, ...], Any] = {}

    def collectors(self) -> list[Collector]:
        return [
            self.delta_s, self.delta_s_excess, self.latency, self.comparisons, self.shadow_errors,
            self.lambda_flips, self.alerts, self.window_delta_s_mean, self.window_flip_rate,
        ]  # fmt: skip

    def _child(self, metric: Any, name: str, *labels: str) -> Any:
        key = (name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, comparisons: Iterable[Comparison]) -> None:
        """Observe a poll's comparisons: values grouped per series, each series updated once."""
        counts: defaultdict[tuple[Any, str, tuple[str, ...]], int] = defaultdict(int)
        values: defaultdict[tuple[BatchHistogram, tuple[str, ...]], list[float]] = defaultdict(list)
        for c in comparisons:
            cand, arm = c.candidate, c.traffic_arm
            counts[(self.comparisons, "n", (cand, arm, c.outcome))] += 1
            if c.prod_latency_ms is not None:
                values[(self.latency, (cand, "prod"))].append(c.prod_latency_ms / 1000)
            if c.shadow_latency_ms is not None:
                values[(self.latency, (cand, arm))].append(c.shadow_latency_ms / 1000)
            if c.outcome != "joined":
                continue
            if c.delta_s is not None:
                values[(self.delta_s, (cand, arm))].append(c.delta_s)
            if c.delta_s_excess is not None:
                values[(self.delta_s_excess, (cand,))].append(c.delta_s_excess)
            if c.shadow_status != "ok":
                counts[(self.shadow_errors, "err", (cand,))] += 1
            if c.lambda_flip:
                counts[(self.lambda_flips, "flip", (cand,))] += 1
        for (hist, labels), batch in values.items():
            hist.observe_many(labels, batch)
        for (metric, name, labels), n in counts.items():
            self._child(metric, name, *labels).inc(n)

    def window(self, s: WindowSummary) -> None:
        labels = (s.candidate, s.endpoint or "", s.tenant or "")
        if s.delta_s_mean is not None:
            self.window_delta_s_mean.labels(*labels).set(s.delta_s_mean)
        if s.lambda_flip_rate is not None:
            self.window_flip_rate.labels(*labels).set(s.lambda_flip_rate)

    def alert(self, a: DriftAlert) -> None:
        self.alerts.labels(a.candidate, a.metric).inc()
