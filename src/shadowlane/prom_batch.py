"""A Prometheus histogram fed a poll's worth of observations at once.

``prometheus_client.Histogram.observe`` takes a lock and walks the buckets in Python for every
value (~2 µs); the comparator observes several values per comparison. :class:`BatchHistogram`
is a custom collector with the same exposition (``_bucket{le}``, ``_count``, ``_sum``; no
``_sum`` when a bucket bound is negative, as prometheus-client's ``Histogram`` does): a batch of
values is bucketed with one ``numpy.searchsorted`` and added under the lock once.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString


@dataclass(slots=True)
class _Series:
    counts: npt.NDArray[np.int64]
    total: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class BatchHistogram(Collector):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]):
        bounds = [float(b) for b in buckets]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ValueError(f"{name}: buckets must be strictly increasing, got {buckets}")
        if not bounds or bounds[-1] != math.inf:
            bounds.append(math.inf)
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._bounds = np.array(bounds, dtype=np.float64)
        self._le: list[str] = [floatToGoString(b) for b in bounds]  # type: ignore[no-untyped-call]
        self._with_sum = bounds[0] >= 0
        self._series: dict[tuple[str, ...], _Series] = {}
        self._lock = threading.Lock()

    def observe_many(self, labels: tuple[str, ...], values: Sequence[float]) -> None:
        """Observe every value in ``values`` under one label set."""
        if len(labels) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {labels}")
        if not values:
            return
        data = np.asarray(values, dtype=np.float64)
        counts = np.bincount(np.searchsorted(self._bounds, data, side="left"), minlength=len(self._bounds))
        series = self._series.get(labels)
        if series is None:
            with self._lock:
                series = self._series.setdefault(labels, _Series(np.zeros(len(self._bounds), np.int64)))
        with series.lock:
            series.counts += counts[: len(self._bounds)]
            total = series.total
            for value in values:  # in order, as Histogram adds them: the same float _sum
                total += value
            series.total = total

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            items = list(self._series.items())
        for labels, series in items:
            with series.lock:
                cumulative = np.cumsum(series.counts).tolist()
                total = series.total
            family.add_metric(
                list(labels),
                list(zip(self._le, (float(c) for c in cumulative), strict=True)),
                total if self._with_sum else None,
            )
            if not self._with_sum:  # add_metric then leaves out _count too; Histogram keeps it
                names = dict(zip(self.labelnames, labels, strict=True))
                family.samples.append(Sample(f"{self.name}_count", names, float(cumulative[-1])))
        yield family

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
