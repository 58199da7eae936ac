"""Prometheus exposition of the counters every Shadowlane process keeps.

Each component keeps plain counters (``PublisherStats``, ``ShadowStats``, ``JoinStats``, ...);
:class:`StatsCollector` reads them at scrape time, so the hot paths pay nothing for metrics.
Besides plain counters and gauges it exposes *labelled* ones: a reader returns, per metric
name, the extra label names and one value per tuple of label values. Every process gets its
own ``CollectorRegistry`` (no module-level registry) and serves ``/metrics`` on 127.0.0.1 by
default; :func:`serve_metrics` takes any ``prometheus_client`` collector, including metrics
created with ``registry=None`` (a ``Histogram``, ...).

Readers run on the exposition thread: they must only read (copy a dict, never iterate a live one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

Reader = Callable[[], Mapping[str, float]]
# ((label names), {(label values): value}) per metric name
Labelled = tuple[Sequence[str], Mapping[tuple[str, ...], float]]
LabelledReader = Callable[[], Mapping[str, Labelled]]


class StatsCollector(Collector):
    """Exposes ``counters()`` as ``<prefix>_<name>_total`` and ``gauges()`` as ``<prefix>_<name>``.

    ``labels`` are constant labels on every sample. ``labelled_counters()`` /
    ``labelled_gauges()`` return ``{name: ((label, ...), {(value, ...): number})}``, exposed as
    ``<prefix>_<name>_total{<labels>, label="value", ...}`` (counters) or without ``_total``
    (gauges). ``also`` are further collectors scraped with this one (e.g. the consumer-lag
    collector, whose metric names do not carry this prefix).
    """

    def __init__(
        self,
        prefix: str,
        counters: Reader,
        *,
        gauges: Reader | None = None,
        labels: Mapping[str, str] | None = None,
        labelled_counters: LabelledReader | None = None,
        labelled_gauges: LabelledReader | None = None,
        also: Iterable[Collector] = (),
    ) -> None:
        self._prefix = prefix
        self._counters = counters
        self._gauges = gauges
        self._labels = dict(labels or {})
        self._labelled_counters = labelled_counters
        self._labelled_gauges = labelled_gauges
        self._also = tuple(also)

    def collect(self) -> Iterator[Metric]:
        names, values = list(self._labels), list(self._labels.values())
        for name, value in self._counters().items():
            family = CounterMetricFamily(self._name(name), self._help(name), labels=names)
            family.add_metric(values, float(value))
            yield family
        for name, value in (self._gauges() if self._gauges else {}).items():
            gauge = GaugeMetricFamily(self._name(name), self._help(name), labels=names)
            gauge.add_metric(values, float(value))
            yield gauge
        if self._labelled_counters is not None:
            for name, (extra, samples) in self._labelled_counters().items():
                counter = CounterMetricFamily(self._name(name), self._help(name), labels=self._names(extra))
                yield _fill(counter, name, values, len(extra), samples)
        if self._labelled_gauges is not None:
            for name, (extra, samples) in self._labelled_gauges().items():
                gauge = GaugeMetricFamily(self._name(name), self._help(name), labels=self._names(extra))
                yield _fill(gauge, name, values, len(extra), samples)
        for collector in self._also:
            yield from collector.collect()

    def _name(self, name: str) -> str:
        return f"{self._prefix}_{name}" if self._prefix else name

    def _help(self, name: str) -> str:
        return f"{self._prefix} {name}".strip()

    def _names(self, extra: Sequence[str]) -> list[str]:
        clash = set(extra) & set(self._labels)
        if clash:
            raise ValueError(f"labels {sorted(clash)} are both constant and per-sample")
        return [*self._labels, *extra]


def _fill(
    family: CounterMetricFamily | GaugeMetricFamily,
    name: str,
    constant: list[str],
    width: int,
    samples: Mapping[tuple[str, ...], float],
) -> Metric:
    for key, value in samples.items():
        if len(key) != width:
            raise ValueError(f"{name}: {len(key)} label values for {width} label names")
        family.add_metric([*constant, *(str(k) for k in key)], float(value))
    return family


@dataclass
class MetricsServer:
    registry: CollectorRegistry
    port: int
    _shutdown: Callable[[], None]

    def close(self) -> None:
        self._shutdown()


def serve_metrics(
    collectors: Iterable[Collector], *, port: int = 0, host: str = "127.0.0.1"
) -> MetricsServer:
    """Serve ``/metrics`` for ``collectors`` in a daemon thread; ``port=0`` lets the OS choose.

    Any collector works, e.g. a ``prometheus_client.Histogram(..., registry=None)``.
    """
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    server, _thread = start_http_server(port, addr=host, registry=registry)

    def shutdown() -> None:
        server.shutdown()
        server.server_close()

    return MetricsServer(registry, server.server_port, shutdown)
