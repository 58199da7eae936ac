"""Consumer lag per partition, computed at scrape time: ``end - next offset to read``.

The poll loop calls :meth:`LagTracker.seen` with the last offset it consumed from a partition, or
:meth:`LagTracker.at` with the consumer's position (a dict store, nothing else); a scrape asks the
consumer for each partition's end (synchronous in aiokafka: what the last fetch response
reported) and skips partitions whose end is not known yet. The end is the last stable offset
when the broker reports one, else the highwater mark: a ``read_committed`` consumer can read no
further, and on a topic written in transactions the commit markers take offsets no record has,
so only the position (which moves past them) reaches it. Revoked partitions are forgotten. The
same tracker serves the shadow workers and the comparator: :meth:`LagTracker.labelled_gauges` feeds a
:class:`~shadowlane.metrics.StatsCollector`, and :meth:`LagTracker.collector` builds one exposing
``shadowlane_consumer_lag{group, topic, partition}``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol

from aiokafka import TopicPartition

from shadowlane.metrics import Labelled, StatsCollector

log = logging.getLogger(__name__)

LAG_METRIC = "consumer_lag"
LAG_LABELS = ("topic", "partition")


def lag_behind(following: int, *, stable: int | None, high: int | None) -> int | None:
    """The lag of a reader whose next offset is ``following``: the partition's end (the last stable
    offset when the broker reports one, else the highwater mark) minus it, never negative; None
    when no end is known. The workers' own lag and ``shadowlane lag`` both count with it."""
    end = high if stable is None or stable < 0 else stable
    if end is None:
        return None
    return max(0, int(end) - following)


class HighwaterSource(Protocol):
    """What the tracker needs of a consumer (``AIOKafkaConsumer`` has it)."""

    def highwater(self, partition: Any) -> int | None: ...

    def last_stable_offset(self, partition: Any) -> int | None: ...


class LagTracker:
    """The next offset to read per partition; lag against the consumer's ends on demand."""

    def __init__(self, consumer: HighwaterSource | None = None) -> None:
        self._consumer = consumer
        self._last: dict[TopicPartition, int] = {}

    def attach(self, consumer: HighwaterSource | None) -> None:
        """Use ``consumer``'s highwater marks from now on (the worker creates it in ``run``)."""
        self._consumer = consumer

    def seen(self, tp: TopicPartition, offset: int) -> None:
        """Record that ``offset`` of ``tp`` was consumed (call with the last offset of a batch)."""
        self._last[tp] = offset + 1

    def at(self, tp: TopicPartition, position: int) -> None:
        """Record the consumer's position in ``tp`` (the next offset it will read)."""
        self._last[tp] = position

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop revoked partitions: another member reports their lag now."""
        for tp in partitions:
            self._last.pop(tp, None)

    def lags(self) -> dict[TopicPartition, int]:
        """Lag of every partition whose highwater is known (never negative)."""
        consumer = self._consumer
        if consumer is None:
            return {}
        out: dict[TopicPartition, int] = {}
        for tp, following in self._last.copy().items():  # copy: scrapes run on another thread
            try:
                lag = lag_behind(
                    following, stable=consumer.last_stable_offset(tp), high=consumer.highwater(tp)
                )
            except Exception:  # not assigned any more (aiokafka asserts), consumer stopping
                continue
            if lag is not None:
                out[tp] = lag
        return out

    def labelled_gauges(self) -> dict[str, Labelled]:
        """``{"consumer_lag": (("topic", "partition"), {(topic, partition): lag})}`` for StatsCollector."""
        samples: dict[tuple[str, ...], float] = {
            (tp.topic, str(tp.partition)): float(lag) for tp, lag in self.lags().items()
        }
        return {LAG_METRIC: (LAG_LABELS, samples)}

    def collector(self, group: str, *, prefix: str = "shadowlane") -> StatsCollector:
        """A collector exposing ``<prefix>_consumer_lag{group, topic, partition}``."""
        return StatsCollector(prefix, dict, labelled_gauges=self.labelled_gauges, labels={"group": group})
