"""What every Shadowlane consumer loop shares: rebalance hooks, committing the done prefix, and
dead-lettering that retries until the DLQ has the record (the offset is committed only after).
:class:`CommittingWorker` bundles the last two for the shadow worker and the comparator."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from shadowlane.kafka.dlq import send_dead_letter
from shadowlane.kafka.offsets import OffsetTracker

log = logging.getLogger(__name__)


class RebalanceHooks(ConsumerRebalanceListener):  # type: ignore[misc]
    """Forwards aiokafka's rebalance callbacks to the worker's own methods."""

    def __init__(
        self,
        on_revoked: Callable[[list[TopicPartition]], Awaitable[None]],
        on_assigned: Callable[[list[TopicPartition]], None],
    ) -> None:
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._on_revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._on_assigned(list(assigned))


async def commit_done(
    consumer: AIOKafkaConsumer | None, tracker: OffsetTracker, only: Iterable[TopicPartition] | None = None
) -> bool:
    """Commit the contiguous done prefix of each partition; False when nothing was committed."""
    if consumer is None:
        return False
    owned = consumer.assignment()
    offsets = {tp: off for tp, off in tracker.committable(only).items() if tp in owned}
    if not offsets:
        return False
    try:
        await consumer.commit(offsets)
    except Exception as exc:
        log.warning("commit failed (will retry): %s", exc)
        return False
    tracker.mark_committed(offsets)
    return True


async def dead_letter_until_sent(
    producer: AIOKafkaProducer, topic: str, record: Any, *, reason: str, detail: str, worker: str
) -> None:
    """Put ``record`` on the DLQ, retrying every second while the broker refuses."""
    while True:
        try:
            await send_dead_letter(producer, topic, record, reason=reason, detail=detail, worker=worker)
            return
        except Exception as exc:
            log.warning("DLQ produce failed: %s; retrying", exc)
            await asyncio.sleep(1.0)


class WorkerCounters(Protocol):
    dead_lettered: int
    commits: int


class CommittingWorker:
    """Base of the consumer loops: dead-letter a record, commit the done prefix, count both.

    Subclasses set ``worker_id``, ``dlq_topic``, ``tracker``, ``stats`` and, once running,
    ``_consumer`` / ``_producer``."""

    worker_id: str
    dlq_topic: str
    tracker: OffsetTracker
    stats: WorkerCounters
    _consumer: AIOKafkaConsumer | None
    _producer: AIOKafkaProducer | None

    async def _dead_letter(self, record: Any, reason: str, detail: str) -> None:
        assert self._producer is not None
        await dead_letter_until_sent(
            self._producer, self.dlq_topic, record, reason=reason, detail=detail, worker=self.worker_id
        )
        self.stats.dead_lettered += 1

    async def _commit(self, only: Iterable[TopicPartition] | None = None) -> None:
        if await commit_done(self._consumer, self.tracker, only):
            self.stats.commits += 1
