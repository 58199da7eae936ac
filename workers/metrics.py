"""Prometheus exposition of the counters every Shadowlane process keeps.

Each component keeps plain counters (``PublisherStats``, ``ShadowStats``, ``JoinStats``, ...);
:class:`StatsCollector` reads them at scrape time, so the hot paths pay nothing for metrics.
Every process gets its own ``CollectorRegistry`` (no module-level registry) and serves
``/metrics`` on 127.0.0.1 by default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

Reader = Callable[[], Mapping[str, float]]


class StatsCollector(Collector):
    """Exposes ``counters()`` as ``<prefix>_<name>_total`` and ``gauges()`` as ``<prefix>_<name>``."""

    def __init__(
        self,
        prefix: str,
        counters: Reader,
        *,
        gauges: Reader | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self._prefix = prefix
        self._counters = counters
        self._gauges = gauges
        self._labels = dict(labels or {})

    def collect(self) -> Iterator[Metric]:
        names, values = list(self._labels), list(self._labels.values())
        for name, value in self._counters().items():
            family = CounterMetricFamily(f"{self._prefix}_{name}", f"{self._prefix} {name}", labels=names)
            family.add_metric(values, float(value))
            yield family
        for name, value in (self._gauges() if self._gauges else {}).items():
            gauge = GaugeMetricFamily(f"{self._prefix}_{name}", f"{self._prefix} {name}", labels=names)
            gauge.add_metric(values, float(value))
            yield gauge


@dataclass
class MetricsServer:
    registry: CollectorRegistry
    port: int
    _shutdown: Callable[[], None]

    def close(self) -> None:
        self._shutdown()


def serve_metrics(collectors: list[Collector], *, port: int = 0, host: str = "127.0.0.1") -> MetricsServer:
    """Serve ``/metrics`` for ``collectors`` in a daemon thread; ``port=0`` lets the OS choose."""
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    server, _thread = start_http_server(port, addr=host, registry=registry)

    def shutdown() -> None:
        server.shutdown()
        server.server_close()

    return MetricsServer(registry, server.server_port, shutdown)
