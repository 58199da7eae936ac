"""The comparator: its own consumer group over requests + shadow-results, emitting comparisons.

Both topics are co-partitioned by ``req_hash``, so the range assignor (set explicitly) hands partition *p*
of each topic to the same member and every pair meets in one process. Per poll: read and join
each partition's records (``join.ingest``: the native join when ``shadowlane_native`` is built,
which also builds the plain pairs as they join; a bad record → DLQ), advance the watermark,
expire, build the other comparisons (ΔS batched in a worker thread), produce them and wait for
the acks, then mark the released records done.
The committed offset of a partition never passes a record that is still waiting for its pair.

Watermark: per assigned partition, the timestamp of the last record read, or the wall clock when
the partition is caught up to its high-water mark; the watermark is the minimum. Reading a
backlog therefore never expires pairs early, and an idle stream still times out.

Windows: every comparison also goes into a tumbling window (event time = its request's time).
A request can still be waiting up to the join window after its time, so windows advance on
``watermark − join window`` and close after their grace; each closed window is a
``WindowSummary`` on the summary topic plus a ``DriftAlert`` per crossed threshold. Summaries are
derived data: the compare topic is the source of truth, and ``shadowlane rescore`` rebuilds them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from shadowlane.compare.build import ComparisonBuilder
from shadowlane.compare.embedder import Embedder
from shadowlane.compare.join import Output, RecordRef
from shadowlane.compare.native.join import join_buffer
from shadowlane.compare.prom import CompareMetrics
from shadowlane.contracts.codec import DecodeError, encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.hashing import partition_for
from shadowlane.kafka.batching import PartitionBatcher, partition_count
from shadowlane.kafka.consumer_support import CommittingWorker, RebalanceHooks, wait_bounded
from shadowlane.kafka.history import read_since
from shadowlane.kafka.lag import LagTracker
from shadowlane.kafka.offsets import OffsetTracker
from shadowlane.settings import Settings
from shadowlane.windows.aggregate import WindowAggregator
from shadowlane.windows.alerts import drift_alerts

log = logging.getLogger(__name__)

MAX_UNACKED_POLLS = 8
SHIP_BATCH_BYTES = 512 * 1024  # under the broker's default message.max.bytes (1 MiB)
MAX_OUTPUT_BYTES = SHIP_BATCH_BYTES - 1024  # one record with its batch and record headers
Outbox = dict[str, list[tuple[str, bytes]]]  # topic -> (key, value) records, in order


@dataclass(slots=True)
class CompareStats:
    consumed: int = 0
    emitted: int = 0
    dead_lettered: int = 0
    dlq_failures: int = 0
    too_large: int = 0
    learned: int = 0  # pairs a newly owned partition's earlier owner emitted, read from the compare topic
    commits: int = 0
    late: int = 0
    summaries: int = 0
    alerts: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _count(outbox: Outbox) -> int:
    return sum(len(records) for records in outbox.values())


def _emitted_pair(value: bytes | None) -> list[tuple[str, str]]:
    """The (``req_hash``, candidate) of a comparison record (nothing for anything else)."""
    try:
        data: Any = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return []
    if not isinstance(data, dict):
        return []
    req_hash, candidate = data.get("req_hash"), data.get("candidate")
    return [(req_hash, candidate)] if isinstance(req_hash, str) and isinstance(candidate, str) else []


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Comparator(CommittingWorker):
    def __init__(self, settings: Settings, embedder: Embedder | None, client_kwargs: dict[str, Any]) -> None:
        self.settings = settings
        self.c = settings.compare
        self.worker_id = self.c.group_id
        self.dlq_topic = settings.topics.dlq_topic
        self._kwargs = client_kwargs
        self.builder = ComparisonBuilder(embedder, self.c)
        self.join = join_buffer(
            self.c.candidates,
            int(self.c.window_s * 1000),
            max_pending=self.c.max_pending,
            plain=self.builder.plain,  # plain pairs are built as they join
            native=self.builder.native,
        )
        self.member = f"{self.c.group_id}/{uuid.uuid4().hex[:8]}"
        self.windows = WindowAggregator(
            int(self.c.summary_window_s * 1000), int(self.c.summary_grace_s * 1000), member=self.member
        )
        self.metrics = CompareMetrics()
        self.lag = LagTracker()
        self.tracker = OffsetTracker()
        self._init_consumer_state()
        self.stats: CompareStats = CompareStats()
        self._last_ts: dict[TopicPartition, int] = {}
        self._stop = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self.assigned = asyncio.Event()
        self._acks: set[asyncio.Task[None]] = set()
        self._last_ack: asyncio.Task[None] | None = None
        self._partition_counts: dict[str, int] = {}

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        t = self.settings.topics
        log.info("comparator hot path: %s", "native" if self.builder.native else "python")
        self._producer = AIOKafkaProducer(
            **self._kwargs,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            # one batch per partition per poll: with 16 KB batches (~12 comparisons) shipping waits
            # for the partition's previous batch to be acked, a broker round trip every 12 records
            max_batch_size=SHIP_BATCH_BYTES,
        )
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
            self.lag.attach(self._consumer)
            try:
                last_commit = time.monotonic()
                while not self._stop.is_set():
                    await self.step(timeout_ms=200)
                    if time.monotonic() - last_commit >= 1.0:
                        await self._commit()
                        last_commit = time.monotonic()
            finally:
                self._stop_learning()
                deadline = time.monotonic() + self.c.drain_timeout_s
                await self._drain_acks(self.c.drain_timeout_s)
                await self._flush_windows(deadline - time.monotonic())
                await self._drain_letters(deadline - time.monotonic())
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
        bad: list[tuple[TopicPartition, Any, DecodeError]] = []
        assigned = consumer.assignment()
        for tp, records in batches.items():
            # nothing below awaits, so a revocation cannot land mid-poll; one fetched before it did
            # is skipped here and re-read by the new owner
            if records and tp in assigned:
                outputs.extend(self._ingest(tp, records, bad))
        for tp, record, exc in bad:
            self._dead_letter(tp, record, exc.reason, exc.detail)
        watermark = await self._watermark(consumer)
        outputs.extend(self.join.expire(watermark))
        await self._emit(outputs, watermark)
        return len(outputs)

    def _owned(self) -> list[int]:
        consumer = self._consumer
        topic = self.settings.topics.requests_topic
        return [tp.partition for tp in consumer.assignment() if tp.topic == topic] if consumer else []

    def _ingest(
        self, tp: TopicPartition, records: list[Any], bad: list[tuple[TopicPartition, Any, DecodeError]]
    ) -> list[Output]:
        """Read and join one partition's records of a poll; undecodable ones go to ``bad``."""
        self.stats.consumed += len(records)
        self._last_ts[tp] = records[-1].timestamp
        self.lag.seen(tp, records[-1].offset)
        is_request = tp.topic == self.settings.topics.requests_topic
        outputs, offsets, done, undecodable = self.join.ingest(records, tp.topic, tp.partition, is_request)
        track = self.tracker.partition(tp)
        track.add_many(offsets)  # every record is registered before any is marked done
        for offset in done:
            track.done(offset)
        bad.extend((tp, record, exc) for record, exc in undecodable)
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

    async def _emit(self, outputs: list[Output], watermark: int) -> None:
        """Build the comparisons and ship them with the closed windows and alerts; the released
        records are marked done once everything is acked.

        ΔS needs the embedder, which runs in a worker thread; without any pair to embed the
        comparisons are built inline. Shipping does not wait for the acks (that would stall
        every poll for a produce round trip): a task per poll waits for them, marks the released
        records done and retries on failure. At most ``MAX_UNACKED_POLLS`` such tasks run.
        """
        producer = self._producer
        assert producer is not None
        comparisons: list[Comparison] = []
        wire: list[bytes | None] = []  # the native path's bytes of its comparisons
        if outputs:
            prepared = self.builder.prepare(outputs)
            if self.builder.needs_embedding(prepared):
                comparisons = await asyncio.to_thread(self.builder.finish, prepared)
            else:
                comparisons = self.builder.finish(prepared)
            wire = prepared.wire
        outbox: Outbox = {}
        if comparisons:
            outbox[self.settings.topics.compare_topic] = [
                (c.req_hash, encode(c) if data is None else data)
                for c, data in zip(comparisons, wire, strict=True)
            ]
        self.stats.late += self.windows.add_many(comparisons)
        self.metrics.observe(comparisons)
        if watermark >= 0:
            closed = self.windows.advance(watermark - self.join.window_ms, self._owned())
            self._window_records(closed, outbox)
        if not outbox:
            return
        releases = [ref for out in outputs for ref in out.release]
        futures = await self._ship(outbox)
        while len(self._acks) >= MAX_UNACKED_POLLS and not self._stop.is_set():
            stopping = asyncio.ensure_future(self._stop.wait())  # a stop is not held up by the broker
            await asyncio.wait([*self._acks, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
        acks = self._await_acks(futures, outbox, len(comparisons), releases, self._last_ack)
        task = asyncio.create_task(acks)
        self._last_ack = task
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)

    def _window_records(self, summaries: list[Any], outbox: Outbox) -> None:
        """Each closed window's summary and alerts, added to ``outbox``."""
        t = self.settings.topics
        for summary in summaries:
            self.stats.summaries += 1
            self.metrics.window(summary)
            outbox.setdefault(t.summary_topic, []).append((summary.candidate, encode(summary)))
            for alert in drift_alerts(summary, self.c):
                self.stats.alerts += 1
                self.metrics.alert(alert)
                log.warning("drift alert: %s", alert.message)
                outbox.setdefault(t.alerts_topic, []).append((alert.candidate, encode(alert)))

    async def _flush_windows(self, timeout_s: float) -> None:
        """On shutdown: ship what the open windows hold (partials; a later owner adds the rest)."""
        outbox: Outbox = {}
        self._window_records(self.windows.flush(self._owned()), outbox)
        if not outbox:
            return
        try:
            await asyncio.wait_for(asyncio.gather(*await self._ship(outbox)), max(timeout_s, 0.1))
        except Exception as exc:  # derived data: rescore rebuilds it from the compare topic
            log.warning("shipping %d window records at shutdown failed: %s", _count(outbox), exc)

    async def _ship(self, outbox: Outbox) -> list[asyncio.Future[Any]]:
        producer = self._producer
        assert producer is not None
        shipped = []
        for topic, records in outbox.items():
            if topic not in self._partition_counts:
                self._partition_counts[topic] = await partition_count(producer, topic)
            batcher = PartitionBatcher(producer, topic, self._partition_counts[topic])
            if any(len(value) > MAX_OUTPUT_BYTES for _key, value in records):
                records = self._fitting(topic, records)
            shipped.extend(await batcher.add_many(records))
            shipped.extend(await batcher.flush())
        return [fut for fut, _count in shipped]

    def _fitting(self, topic: str, records: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        """``records`` without those no batch can hold (counted ``too_large``, logged): a derived
        record that big (kilobytes of pins or breakdown labels) could never be produced."""
        fitting = [(key, value) for key, value in records if len(value) <= MAX_OUTPUT_BYTES]
        dropped = len(records) - len(fitting)
        self.stats.too_large += dropped
        log.error(
            "%d %s records over %d bytes not produced (counted too_large)", dropped, topic, MAX_OUTPUT_BYTES
        )
        return fitting

    async def _await_acks(
        self,
        futures: list[asyncio.Future[Any]],
        outbox: Outbox,
        comparisons: int,
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
                log.warning("producing %d records failed: %s; retrying", _count(outbox), exc)
                await asyncio.sleep(1.0)
                self._partition_counts.clear()
                try:
                    futures = await self._ship(outbox)
                except Exception as again:
                    log.warning("re-shipping records failed: %s", again)
        if previous is not None:
            await asyncio.wait([previous])
        self.stats.emitted += comparisons
        self.tracker.done_refs(releases)

    async def _drain_acks(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the polls' acknowledgements; a poll still unacknowledged
        then is given up and its records stay uncommitted."""
        if await wait_bounded(list(self._acks), timeout_s):
            log.warning("output still unacknowledged after %.0fs; its records stay uncommitted", timeout_s)

    def on_assigned(self, assigned: list[TopicPartition]) -> None:
        if not assigned or self.c.dedupe_ttl_s <= 0:
            self.assigned.set()
            return
        self._learn_then_fetch(assigned, lambda: self._learn(assigned), self.assigned.set)

    async def _learn(self, assigned: list[TopicPartition]) -> None:
        """The pairs emitted on newly owned partitions within ``dedupe_ttl_s`` (by any member),
        read from the compare topic into the join's finished pairs: a retried request's copy
        then gets no second comparison."""
        t = self.settings.topics
        producer = self._producer
        assert producer is not None
        owned = {tp.partition for tp in assigned}
        compare_count = await partition_count(producer, t.compare_topic)
        request_count = await partition_count(producer, t.requests_topic)
        # comparisons are keyed by req_hash like requests: the same partition numbers when the
        # topics have as many partitions, else every partition, filtered
        partitions = sorted(owned) if compare_count == request_count else list(range(compare_count))
        since = _now_ms() - int(self.c.dedupe_ttl_s * 1000)
        found = await read_since(self._kwargs, t.compare_topic, partitions, since, _emitted_pair)
        pairs = [
            pair
            for entries in found.values()
            for pair, _ts in entries
            if partition_for(pair[0], request_count) in owned
        ]
        self.join.mark_finished(pairs)
        self.stats.learned += len(pairs)

    async def on_revoked(self, revoked: list[TopicPartition]) -> None:
        deadline = time.monotonic() + self.c.drain_timeout_s
        await self._drain_acks(self.c.drain_timeout_s)
        await self._drain_letters(deadline - time.monotonic(), revoked)
        await self._commit(revoked)
        dropped = self.join.drop_partitions((tp.topic, tp.partition) for tp in revoked)
        if dropped:
            log.info("revoked %d partitions; %d waiting records go to their new owner", len(revoked), dropped)
        self.tracker.forget(revoked)
        self.lag.forget(revoked)
        self._stop_learning(revoked)
        for tp in revoked:
            self._last_ts.pop(tp, None)
