"""Prometheus exposition of the counters every Shadowlane process keeps.

Each component keeps plain counters (``PublisherStats``, ``ShadowStats``, ``JoinStats``, ...);
:class:`StatsCollector` reads them at scrape time, so the hot paths pay nothing for metrics.
Besides plain counters and gauges it exposes *labelled* ones: a reader returns, per metric
name, the extra label names and one value per tuple of label values. Every process gets its
own ``CollectorRegistry`` (no module-level registry) and serves ``/metrics`` on 127.0.0.1 by
default; :func:`serve_metrics` takes any ``prometheus_client`` collector, including metrics
created with ``registry=None`` (a ``Histogram``, ...), and next to ``/metrics`` a process's
``/healthz`` and ``/readyz`` (:mod:`shadowlane.health`).

Readers run on the exposition thread: they must only read (copy a dict, never iterate a live one).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import TYPE_CHECKING, Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, make_server

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment
    from wsgiref.types import WSGIApplication as WSGIApp

Reader = Callable[[], Mapping[str, float]]
# ((label names), {(label values): value}) per metric name
Labelled = tuple[Sequence[str], Mapping[tuple[str, ...], float]]
LabelledReader = Callable[[], Mapping[str, Labelled]]
# per labelled metric name: the known values of each of its labels, in label order
Known = Mapping[str, Sequence[Iterable[str]]]


class StatsCollector(Collector):
    """Exposes ``counters()`` as ``<prefix>_<name>_total`` and ``gauges()`` as ``<prefix>_<name>``.

    ``labels`` are constant labels on every sample. ``labelled_counters()`` /
    ``labelled_gauges()`` return ``{name: ((label, ...), {(value, ...): number})}``, exposed as
    ``<prefix>_<name>_total{<labels>, label="value", ...}`` (counters) or without ``_total``
    (gauges). ``known`` names, per labelled metric, the known values of each of its labels: every
    combination of them is exported from the first scrape on, 0 until counted, so a rate over
    the series (or an alert on it) never sees a missing series. ``also`` are further collectors
    scraped with this one (e.g. the consumer-lag collector, whose metric names do not carry this
    prefix).
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
        known: Known | None = None,
        also: Iterable[Collector] = (),
    ) -> None:
        self._prefix = prefix
        self._counters = counters
        self._gauges = gauges
        self._labels = dict(labels or {})
        self._labelled_counters = labelled_counters
        self._labelled_gauges = labelled_gauges
        self._known = {name: list(product(*values)) for name, values in (known or {}).items()}
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
                yield _fill(counter, name, values, len(extra), samples, self._known.get(name, ()))
        if self._labelled_gauges is not None:
            for name, (extra, samples) in self._labelled_gauges().items():
                gauge = GaugeMetricFamily(self._name(name), self._help(name), labels=self._names(extra))
                yield _fill(gauge, name, values, len(extra), samples, self._known.get(name, ()))
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
    known: Sequence[tuple[str, ...]] = (),
) -> Metric:
    """``samples``, then a 0 for every ``known`` label-value tuple they do not hold."""
    seen: set[tuple[str, ...]] = set()
    for key, value in samples.items():
        if len(key) != width:
            raise ValueError(f"{name}: {len(key)} label values for {width} label names")
        labels = tuple(str(k) for k in key)
        seen.add(labels)
        family.add_metric([*constant, *labels], float(value))
    for key in known:
        if len(key) != width:
            raise ValueError(f"{name}: {len(key)} known label values for {width} label names")
        if key not in seen:
            family.add_metric([*constant, *key], 0.0)
    return family


class HealthSource(Protocol):
    """What ``/healthz`` and ``/readyz`` answer from (:class:`shadowlane.health.Health`)."""

    def liveness(self) -> tuple[bool, Mapping[str, object]]: ...

    def readiness(self) -> tuple[bool, Mapping[str, object]]: ...


@dataclass
class MetricsServer:
    """A running exposition server: ``registry`` takes collectors registered after it started."""

    registry: CollectorRegistry
    port: int
    _shutdown: Callable[[], None]

    def close(self) -> None:
        self._shutdown()


_HEALTH_PATHS = frozenset({"/healthz", "/readyz"})


class _ThreadingServer(ThreadingWSGIServer):
    """One daemon thread per request; :func:`serve_metrics` sets the address family per server."""


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape or probe."""

    def log_message(self, format: str, *args: Any) -> None:
        return


def _app(registry: CollectorRegistry, health: HealthSource | None) -> WSGIApp:
    """``/healthz`` and ``/readyz`` (JSON, 200 or 503) from ``health``; any other path is the
    exposition of ``registry``, as prometheus_client serves it."""
    metrics = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path not in _HEALTH_PATHS:
            exposition: Iterable[bytes] = metrics(environ, start_response)
            return exposition
        body: Mapping[str, object]
        if health is None:
            status, body = "404 Not Found", {"reason": "this process serves no health state"}
        else:
            ok, body = health.liveness() if path == "/healthz" else health.readiness()
            status = "200 OK" if ok else "503 Service Unavailable"
        data = orjson.dumps(dict(body))
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
        ]
        start_response(status, headers)
        return [data]

    return app


def serve_metrics(
    collectors: Iterable[Collector],
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    health: HealthSource | None = None,
) -> MetricsServer:
    """Serve ``/metrics`` for ``collectors`` in a daemon thread; ``port=0`` lets the OS choose.

    Any collector works, e.g. a ``prometheus_client.Histogram(..., registry=None)``; more can be
    registered on the returned server's ``registry`` later. With ``health``, ``/healthz`` answers
    its liveness and ``/readyz`` its readiness (200 or 503, a JSON body); without it they are 404.
    """
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    family, _type, _proto, _name, sockaddr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]

    class Server(_ThreadingServer):
        address_family = family

    server = make_server(str(sockaddr[0]), port, _app(registry, health), Server, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name=f"metrics:{server.server_port}", daemon=True)
    thread.start()

    def shutdown() -> None:
        server.shutdown()
        server.server_close()

    return MetricsServer(registry, server.server_port, shutdown)
