"""The comparator: its own consumer group over requests + shadow-results, emitting comparisons.

Both topics are co-partitioned by ``req_hash``, so the range assignor (set explicitly) hands partition *p*
of each topic to the same member and every pair meets in one process. Per poll: decode (bad →
DLQ), feed the :class:`JoinBuffer`, advance the watermark, expire, build comparisons (ΔS batched
in a worker thread), produce them and wait for the acks, then mark the released records done.
The committed offset of a partition never passes a record that is still waiting for its pair.

Watermark: per assigned partition, the timestamp of the last record read, or the wall clock when
the partition is caught up to its high-water mark; the watermark is the minimum. Reading a
backlog therefore never expires pairs early, and an idle stream still times out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from schemas.codec import DecodeError, decode, encode
from schemas.envelope import RequestEnvelope
from schemas.shadow_result import ShadowResult
from workers.compare.build import ComparisonBuilder
from workers.compare.embedder import Embedder
from workers.compare.join import JoinBuffer, Output, RecordRef
from workers.kafka.batching import PartitionBatcher, partition_count
from workers.kafka.consumer_support import CommittingWorker, RebalanceHooks
from workers.kafka.offsets import OffsetTracker
from workers.settings import Settings

log = logging.getLogger(__name__)

MAX_UNACKED_POLLS = 8


@dataclass(slots=True)
class CompareStats:
    consumed: int = 0
    emitted: int = 0
    dead_lettered: int = 0
    commits: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Comparator(CommittingWorker):
    def __init__(self, settings: Settings, embedder: Embedder | None, client_kwargs: dict[str, Any]) -> None:
        self.settings = settings
        self.c = settings.compare
        self.worker_id = self.c.group_id
        self.dlq_topic = settings.topics.dlq_topic
        self._kwargs = client_kwargs
        self.join = JoinBuffer(self.c.candidates, int(self.c.window_s * 1000), max_pending=self.c.max_pending)
        self.builder = ComparisonBuilder(embedder)
        self.tracker = OffsetTracker()
        self.stats: CompareStats = CompareStats()
        self._last_ts: dict[TopicPartition, int] = {}
        self._stop = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self.assigned = asyncio.Event()
        self._acks: set[asyncio.Task[None]] = set()
        self._last_ack: asyncio.Task[None] | None = None
        self._compare_partitions = 0

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        t = self.settings.topics
        self._producer = AIOKafkaProducer(**self._kwargs, acks="all", enable_idempotence=True, linger_ms=5)
        self._consumer = AIOKafkaConsumer(
            **self._kwargs,
            group_id=self.c.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=2000,
            # co-partitioning needs partition p of both topics on the same member: range, not
            # aiokafka's default round-robin
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
        await self._producer.start()
        try:
            self._consumer.subscribe(
                [t.requests_topic, t.shadow_results_topic],
                listener=RebalanceHooks(self.on_revoked, self.on_assigned),
            )
            await self._consumer.start()
            try:
                last_commit = time.monotonic()
                while not self._stop.is_set():
                    await self.step(timeout_ms=200)
                    if time.monotonic() - last_commit >= 1.0:
                        await self._commit()
                        last_commit = time.monotonic()
            finally:
                await self._drain_acks()
                await self._commit()
                await self._consumer.stop()
        finally:
            await self._producer.stop()

    async def step(self, timeout_ms: int) -> int:
        """One poll: consume, join, expire, emit. Returns the number of comparisons emitted."""
        consumer = self._consumer
        assert consumer is not None
        batches = await consumer.getmany(timeout_ms=timeout_ms)
        outputs: list[Output] = []
        for tp, records in batches.items():
            for record in records:
                if tp not in consumer.assignment():
                    break  # revoked while this poll was being handled: the new owner re-reads it
                self.stats.consumed += 1
                self._last_ts[tp] = record.timestamp
                self.tracker.add(tp, record.offset)
                outputs.extend(await self._ingest(tp, record))
        outputs.extend(self.join.expire(await self._watermark(consumer)))
        if outputs:
            await self._emit(outputs)
        return len(outputs)

    async def _ingest(self, tp: TopicPartition, record: Any) -> list[Output]:
        ref = (tp.topic, tp.partition, record.offset)
        try:
            if tp.topic == self.settings.topics.requests_topic:
                outputs, done = self.join.add_request(
                    decode(record.value, RequestEnvelope), ref, record.timestamp
                )
            else:
                outputs, done = self.join.add_result(
                    decode(record.value, ShadowResult), ref, record.timestamp
                )
        except DecodeError as exc:
            await self._dead_letter(record, exc.reason, exc.detail)
            self.tracker.done(tp, record.offset)
            return []
        if done:
            self.tracker.done(tp, record.offset)
        return outputs

    async def _watermark(self, consumer: AIOKafkaConsumer) -> int:
        now = _now_ms()
        mark = now
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                return -1  # nothing fetched yet for this partition: time stands still
            if await consumer.position(tp) >= high:
                continue  # caught up: this partition follows the wall clock
            last = self._last_ts.get(tp)
            if last is None:
                return -1
            mark = min(mark, last)
        return mark

    async def _emit(self, outputs: list[Output]) -> None:
        """Build the comparisons and ship them; their records are marked done once acked.

        ΔS needs the embedder, which runs in a worker thread; without any pair to embed the
        comparisons are built inline. Shipping does not wait for the acks (that would stall
        every poll for a produce round trip): a task per poll waits for them, marks the released
        records done and retries on failure. At most ``MAX_UNACKED_POLLS`` such tasks run.
        """
        producer = self._producer
        assert producer is not None
        if self.builder.needs_embedding(outputs):
            comparisons = await asyncio.to_thread(self.builder.build, outputs)
        else:
            comparisons = self.builder.build(outputs)
        values = [(c.req_hash, encode(c)) for c in comparisons]
        releases = [ref for out in outputs for ref in out.release]
        futures = await self._ship(values)
        while len(self._acks) >= MAX_UNACKED_POLLS:
            await asyncio.wait(self._acks, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.create_task(self._await_acks(futures, values, releases, self._last_ack))
        self._last_ack = task
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)

    async def _ship(self, values: list[tuple[str, bytes]]) -> list[asyncio.Future[Any]]:
        producer = self._producer
        assert producer is not None
        topic = self.settings.topics.compare_topic
        if not self._compare_partitions:
            self._compare_partitions = await partition_count(producer, topic)
        batcher = PartitionBatcher(producer, topic, self._compare_partitions)
        shipped = []
        for req_hash, value in values:
            shipped.extend(await batcher.add(req_hash, value))
        shipped.extend(await batcher.flush())
        return [fut for fut, _count in shipped]

    async def _await_acks(
        self,
        futures: list[asyncio.Future[Any]],
        values: list[tuple[str, bytes]],
        releases: list[RecordRef],
        previous: asyncio.Task[None] | None,
    ) -> None:
        """Wait for this poll's acks, then for the previous poll's task, then release records.

        Releasing in poll order matters: a request completed in this poll may depend on a
        comparison shipped (and perhaps still being retried) by an earlier poll."""
        while True:
            try:
                await asyncio.gather(*futures)
                break
            except Exception as exc:  # retriable: nothing is marked done until every ack is in
                log.warning("producing %d comparisons failed: %s; retrying", len(values), exc)
                await asyncio.sleep(1.0)
                self._compare_partitions = 0
                try:
                    futures = await self._ship(values)
                except Exception as again:
                    log.warning("re-shipping comparisons failed: %s", again)
        if previous is not None:
            await asyncio.wait([previous])
        self.stats.emitted += len(values)
        for topic_name, partition, offset in releases:
            self.tracker.done(TopicPartition(topic_name, partition), offset)

    async def _drain_acks(self) -> None:
        if self._acks:
            await asyncio.gather(*self._acks, return_exceptions=True)

    def on_assigned(self, assigned: list[TopicPartition]) -> None:
        self.assigned.set()

    async def on_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._drain_acks()
        await self._commit(revoked)
        dropped = self.join.drop_partitions((tp.topic, tp.partition) for tp in revoked)
        if dropped:
            log.info("revoked %d partitions; %d waiting records go to their new owner", len(revoked), dropped)
        self.tracker.forget(revoked)
        for tp in revoked:
            self._last_ts.pop(tp, None)
