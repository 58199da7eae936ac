"""The comparator's labelled Prometheus series: ΔS and latency histograms, outcomes, windows, alerts.

The excess ΔS (ΔS beyond the noise floor) is exported as each closed window has it (median and
p95 of ΔS minus those of the floor, over the requests with both), the one definition summaries,
gates and the report use; not as a histogram of per-request differences, whose quantiles are
another statistic (far from 0 at the p95 for a candidate exactly as noisy as the baseline).

Plain counters (consumed, joined, late, DLQ, ...) are read from the stats objects at scrape time
by :class:`shadowlane.metrics.StatsCollector`; this module holds the series that need labels per
candidate and ``traffic_arm`` (``prod`` / ``shadow`` / ``baseline``). The objects are created
unregistered (``registry=None``) and handed to the process's own registry: no global state.
Every labelled counter has a 0 series for each configured candidate (and its arm, every outcome
and alert metric) from the start, so rates and alerts over them never see a missing series.
The window gauges carry their sample sizes, the same ones the comparator's own alert guard
(``alert_min_samples``) reads. ``also`` adds collectors of the comparator's parts (the embedding
cache's counters, :meth:`~shadowlane.compare.embed_cache.CachingEmbedder.collector`).
A poll's comparisons are observed as a batch: values are grouped per label set and each group
goes into a :class:`~shadowlane.prom_batch.BatchHistogram` at once, counters are incremented once
per label set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, get_args

from prometheus_client import Counter, Gauge
from prometheus_client.registry import Collector

from shadowlane.contracts.comparison import Comparison, Outcome, traffic_arm_of
from shadowlane.contracts.drift_alert import AlertMetric, DriftAlert
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.prom_batch import BatchHistogram

DELTA_S_BUCKETS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)
P = "shadowlane_compare"


class _ArmBatch:
    """One poll's values of one (candidate, traffic_arm), in poll order. The series labelled by
    the candidate alone (prod latency) are lists shared by the candidate's batches, and
    an arm named ``prod`` shares prod's latency series, as one-at-a-time observing would."""

    __slots__ = ("delta_s", "errors", "flips", "latency", "outcomes", "prod_latency")

    def __init__(self, arm: str, prod_latency: list[float]) -> None:
        self.outcomes: dict[str, int] = {}
        self.prod_latency = prod_latency
        self.latency = prod_latency if arm == "prod" else []
        self.delta_s: list[float] = []
        self.errors = 0
        self.flips = 0

    def add(self, c: Comparison) -> None:
        outcome = c.outcome
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if (ms := c.prod_latency_ms) is not None:
            self.prod_latency.append(ms / 1000)
        if (ms := c.shadow_latency_ms) is not None:
            self.latency.append(ms / 1000)
        if outcome != "joined":
            return
        if (ds := c.delta_s) is not None:
            self.delta_s.append(ds)
        if c.shadow_status != "ok":
            self.errors += 1
        if c.lambda_flip:
            self.flips += 1


class CompareMetrics:
    """The comparator's labelled series; ``candidates`` (with the ``baseline`` noise floor among
    them, if any) get their 0 series at once."""

    def __init__(
        self, candidates: Iterable[str] = (), baseline: str | None = None, *, also: Iterable[Collector] = ()
    ) -> None:
        self._also = tuple(also)  # further collectors of the comparator (the embedding cache's)
        self.delta_s = BatchHistogram(
            f"{P}_delta_s", "ΔS prod vs arm per request", ("candidate", "traffic_arm"), DELTA_S_BUCKETS
        )
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
        self.pin_mismatches = Counter(
            f"{P}_pin_mismatches",
            "comparisons where a side served with other pins than it claimed (side: candidate or prod)",
            ("candidate", "side"),
            registry=None,
        )
        labels = ("candidate", "endpoint", "tenant")
        self.window_delta_s_mean = Gauge(
            f"{P}_window_delta_s_mean", "mean ΔS of the last closed window", labels, registry=None
        )
        self.window_flip_rate = Gauge(
            f"{P}_window_lambda_flip_rate", "λ flip rate of the last closed window", labels, registry=None
        )
        self.window_excess_median = Gauge(
            f"{P}_window_delta_s_excess_median",
            "excess ΔS of the last closed window: median(ΔS) − median(floor), requests with both",
            labels,
            registry=None,
        )
        self.window_excess_p95 = Gauge(
            f"{P}_window_delta_s_excess_p95",
            "excess ΔS of the last closed window: p95(ΔS) − p95(floor), requests with both",
            labels,
            registry=None,
        )
        self.window_excess_samples = Gauge(
            f"{P}_window_delta_s_excess_samples",
            "requests with both ΔS and a noise floor behind the last closed window's excess ΔS",
            labels,
            registry=None,
        )
        self.window_delta_s_samples = Gauge(
            f"{P}_window_delta_s_samples",
            "ΔS values behind the last closed window's mean",
            labels,
            registry=None,
        )
        self.window_lambda_flip_samples = Gauge(
            f"{P}_window_lambda_flip_samples",
            "λ-paired requests behind the last closed window's flip rate",
            labels,
            registry=None,
        )
        self._children: dict[tuple[str, ...], Any] = {}
        for candidate in candidates:
            self._zero(candidate, traffic_arm_of(candidate, baseline))

    def _zero(self, candidate: str, arm: str) -> None:
        """Creates the candidate's counter series at 0."""
        for outcome in get_args(Outcome):
            self._child(self.comparisons, "n", candidate, arm, outcome)
        self._child(self.shadow_errors, "err", candidate)
        self._child(self.lambda_flips, "flip", candidate)
        for side in ("candidate", "prod"):
            self._child(self.pin_mismatches, "pins", candidate, side)
        for metric in get_args(AlertMetric):
            self.alerts.labels(candidate, metric)

    def collectors(self) -> list[Collector]:
        return [
            self.delta_s, self.latency, self.comparisons, self.shadow_errors,
            self.lambda_flips, self.alerts, self.window_delta_s_mean, self.window_flip_rate,
            self.window_delta_s_samples, self.window_lambda_flip_samples, self.window_excess_median,
            self.window_excess_p95, self.window_excess_samples, self.pin_mismatches, *self._also,
        ]  # fmt: skip

    def _child(self, metric: Any, name: str, *labels: str) -> Any:
        key = (name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, comparisons: Sequence[Comparison]) -> None:
        """Observe a poll's comparisons: values grouped per series (in their order, so each
        histogram's float sum is the one one-at-a-time observing gives), each series updated once."""
        arms: dict[tuple[str, str], _ArmBatch] = {}
        shared: dict[str, list[float]] = {}  # candidate: prod latency
        for c in comparisons:
            key = (c.candidate, c.traffic_arm)
            batch = arms.get(key)
            if batch is None:
                prod_latency = shared.get(key[0])
                if prod_latency is None:
                    prod_latency = shared[key[0]] = []
                batch = arms[key] = _ArmBatch(key[1], prod_latency)
            batch.add(c)
            if c.pin_mismatch or c.prod_pin_mismatch:
                self._pins(c)
        errors: dict[str, int] = {}
        flips: dict[str, int] = {}
        for (cand, arm), batch in arms.items():
            for outcome, n in batch.outcomes.items():
                self._child(self.comparisons, "n", cand, arm, outcome).inc(n)
            if arm != "prod":
                self.latency.observe_many((cand, arm), batch.latency)
            self.delta_s.observe_many((cand, arm), batch.delta_s)
            errors[cand] = errors.get(cand, 0) + batch.errors
            flips[cand] = flips.get(cand, 0) + batch.flips
        for cand, prod_latency in shared.items():
            self.latency.observe_many((cand, "prod"), prod_latency)
            if errors[cand]:
                self._child(self.shadow_errors, "err", cand).inc(errors[cand])
            if flips[cand]:
                self._child(self.lambda_flips, "flip", cand).inc(flips[cand])

    def _pins(self, c: Comparison) -> None:
        """A comparison whose candidate, or prod, served with other pins (rare: counted one by one)."""
        if c.pin_mismatch:
            self._child(self.pin_mismatches, "pins", c.candidate, "candidate").inc()
        if c.prod_pin_mismatch:
            self._child(self.pin_mismatches, "pins", c.candidate, "prod").inc()

    def window(self, s: WindowSummary) -> None:
        """A closed window (its partitions' partials merged, as the comparator judges alerts):
        its mean ΔS, excess ΔS and λ flip rate, each with the sample size behind it. A figure the
        window lacks removes its series (a window without a noise floor leaves no excess ΔS), so
        a dashboard never shows an older window's value as this one's."""
        labels = (s.candidate, s.endpoint or "", s.tenant or "")
        _show(labels, s.delta_s_mean, s.delta_s_count, self.window_delta_s_mean, self.window_delta_s_samples)
        _show(
            labels,
            s.delta_s_excess_median,
            s.excess_count,
            self.window_excess_median,
            self.window_excess_samples,
        )
        _show(labels, s.delta_s_excess_p95, s.excess_count, self.window_excess_p95, None)
        _show(
            labels,
            s.lambda_flip_rate,
            s.lambda_paired,
            self.window_flip_rate,
            self.window_lambda_flip_samples,
        )

    def alert(self, a: DriftAlert) -> None:
        self.alerts.labels(a.candidate, a.metric).inc()


def _show(
    labels: tuple[str, str, str], value: float | None, n: int, gauge: Gauge, samples: Gauge | None
) -> None:
    """Set a window gauge (and its sample-size gauge) to ``value``, or remove the series when None."""
    if value is None:
        gauge.remove(*labels)
        if samples is not None:
            samples.remove(*labels)
        return
    gauge.labels(*labels).set(value)
    if samples is not None:
        samples.labels(*labels).set(n)
