"""The comparator: its own consumer group over requests + shadow-results, emitting comparisons.

Both topics are co-partitioned by ``req_hash``, so the range assignor (set explicitly) hands partition *p*
of each topic to the same member and every pair meets in one process. Per poll: read and join
each partition's records (``join.ingest``: the native join when ``shadowlane_native`` is built,
which also builds the plain pairs as they join; a bad record → DLQ), advance the watermark,
expire, and hand the outputs to the build stage (:mod:`shadowlane.compare.build_stage`), which
builds the other comparisons in poll order (ΔS batched in a worker thread, off the polling loop),
produces them and, once acked, marks the released records done. While more pairs wait for ΔS
than the embedder builds in ``compare.delta_s_backlog_s``, fetching is paused (counted), not
polling.
The committed offset of a partition never passes a record that is still waiting for its pair.

Watermark: per assigned partition, the timestamp of the last record read, or the wall clock when
the partition is caught up to its high-water mark; the watermark is the minimum. Reading a
backlog therefore never expires pairs early, and an idle stream still times out.

Windows: every comparison also goes into a tumbling window (event time = its request's time).
A request can still be waiting up to the join window after its time, so windows advance on
``watermark − join window`` and close after their grace; each closed window is a
``WindowSummary`` on the summary topic plus a ``DriftAlert`` per crossed threshold. Windows are
kept per input partition (:mod:`shadowlane.windows.partitioned`). Summaries are derived data: the
compare topic is the source of truth, and ``shadowlane rescore`` rebuilds them.

How the output leaves, at-least-once or in one transaction per input partition with that
partition's state (exactly-once, the default): :mod:`shadowlane.compare.output`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from shadowlane.compare.build import ComparisonBuilder
from shadowlane.compare.build_stage import Bound, BuildStage, Polled
from shadowlane.compare.embed_cache import CachingEmbedder
from shadowlane.compare.embedder import Embedder
from shadowlane.compare.emitted_pairs import emitted_since
from shadowlane.compare.join import Output
from shadowlane.compare.native.join import join_buffer
from shadowlane.compare.output import (
    MAX_UNACKED_POLLS,
    SHIP_BATCH_BYTES,
    ComparatorOutput,
    CompareStats,
    Derived,
    Outbox,
)
from shadowlane.compare.partition_state import ReReadFilter, UnpairedLedger, partitions_of
from shadowlane.compare.prom import CompareMetrics
from shadowlane.contracts.codec import DecodeError, encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.health import Health
from shadowlane.kafka.consumer_support import RebalanceHooks
from shadowlane.kafka.lag import LagTracker
from shadowlane.kafka.offsets import OffsetTracker
from shadowlane.kafka.transactions import OutRecord, PartitionTransactions
from shadowlane.settings import Settings
from shadowlane.windows.alerts import drift_alerts
from shadowlane.windows.partitioned import PartitionedWindows

log = logging.getLogger(__name__)

MAX_POLL_RECORDS = 2000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Comparator(ComparatorOutput):
    def __init__(
        self,
        settings: Settings,
        embedder: Embedder | None,
        client_kwargs: dict[str, Any],
        *,
        health: Health | None = None,
    ) -> None:
        self.settings = settings
        self.health = health if health is not None else Health()  # what /healthz and /readyz answer
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
        # ΔS off the polling loop, in poll order, with counted backpressure past the backlog bound
        self.stage = BuildStage(
            self.builder,
            self._ship_polled,
            self.join.forget_finished,
            Bound(self.c.delta_s_backlog_s, self.c.delta_s_backlog_max) if embedder is not None else None,
            pairs_per_record=len(self.c.candidates),
        )
        self._held = False  # fetching paused by the stage's backpressure
        self.member = f"{self.c.group_id}/{uuid.uuid4().hex[:8]}"
        self.windows = PartitionedWindows(
            int(self.c.summary_window_s * 1000), int(self.c.summary_grace_s * 1000), member=self.member
        )
        cache = embedder if isinstance(embedder, CachingEmbedder) else None  # its counters are ours too
        also = [cache.collector("shadowlane_compare", {"group": self.c.group_id})] if cache else []
        self.metrics = CompareMetrics(self.c.candidates, self.c.baseline_candidate, also=also)
        self.lag = LagTracker()
        self.tracker = OffsetTracker()
        self._init_consumer_state(
            PartitionTransactions(client_kwargs, self.c.group_id) if self.c.exactly_once else None
        )
        # exactly-once, per input partition: the pairs that left unpaired, the records a new owner
        # reads again that were compared already, and what its next transaction writes
        self.unpaired = UnpairedLedger(2 * int(self.c.window_s * 1000))
        self.rereads = ReReadFilter()
        self._staged: dict[int, list[OutRecord]] = {}
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
        self.health.stopping()
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
            max_poll_records=MAX_POLL_RECORDS,
            isolation_level="read_committed",  # shadow results of aborted transactions never join
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
            self.health.watch_broker(self._consumer, t.requests_topic)
            try:
                last_commit = time.monotonic()
                while not self._stop.is_set():
                    await self.step(timeout_ms=200)
                    if time.monotonic() - last_commit >= self.c.commit_interval_s:
                        if self._txn is not None:
                            self._commit_soon()  # transactions: their round trips overlap polling
                        else:
                            await self._commit()
                        last_commit = time.monotonic()
            finally:
                self.health.unwatch_broker()
                self._stop_learning()
                deadline = time.monotonic() + self.c.drain_timeout_s
                await self.stage.drain(self.c.drain_timeout_s)
                await self._drain_acks(max(deadline - time.monotonic(), 0.5))
                # what the open windows hold so far, as partials (a later owner adds the rest);
                # with exactly-once in the last transaction, whose state then holds no window
                if self._txn is None:
                    await self._flush_windows(deadline - time.monotonic(), self._owned())
                else:
                    await self._stage([], [], [], self._window_records(self.windows.flush(self._owned())))
                await self._drain_letters(deadline - time.monotonic())
                await self._commit_now()
                await self._close_transactions()
                await self._consumer.stop()
        finally:
            await self._producer.stop()

    async def step(self, timeout_ms: int) -> int:
        """One poll: consume, join, expire, emit. Returns the number of comparisons emitted."""
        consumer = self._consumer
        assert consumer is not None
        room = self.stage.room()  # raises what a build raised
        self._hold_intake(consumer, room == 0)
        if room == 0:
            # fetching paused: wait until the embedder makes room, then poll all the same (paused
            # partitions give nothing): a member that stops polling for max_poll_interval_ms
            # (5 min) leaves its group
            await self.stage.wait_for_room(timeout_ms / 1000)
            batches = await consumer.getmany(timeout_ms=0)
        else:
            batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=min(room, MAX_POLL_RECORDS))
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
        await self.stage.submit(outputs, watermark)
        return len(outputs)

    def _hold_intake(self, consumer: AIOKafkaConsumer, hold: bool) -> None:
        """Backpressure from the build stage: while it holds, every owned partition stays paused
        (newly assigned ones too); when it lets go, those that nothing else holds resume."""
        if hold:
            self._held = True
            consumer.pause(*consumer.assignment())
        elif self._held:
            self._held = False
            consumer.resume(*self.resumable(consumer.assignment()))

    def _may_resume(self, tp: TopicPartition) -> bool:
        """Not while the build stage holds fetching (learning's end or a DLQ unblock waits too)."""
        return super()._may_resume(tp) and not self._held

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
        records, compared = self.rereads.keep(tp, records)  # read again after a take-over
        outputs, offsets, done, undecodable = (
            self.join.ingest(records, tp.topic, tp.partition, is_request) if records else ([], [], [], [])
        )
        track = self.tracker.partition(tp)
        # every record is registered (in offset order) before any is marked done
        track.add_many(sorted([*offsets, *compared]) if compared else offsets)
        for offset in compared:
            track.done(offset)
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
            position = await consumer.position(tp)
            self.lag.at(tp, position)  # past transaction markers too: the lag a scrape reports
            stable = consumer.last_stable_offset(tp)  # read_committed reads no further
            if position >= (high if stable is None or stable < 0 else min(stable, high)):
                continue  # caught up: this partition follows the wall clock
            last = self._last_ts.get(tp)
            if last is None:
                return -1
            mark = min(mark, last)
        return mark

    async def _ship_polled(self, polled: Polled, comparisons: list[Comparison]) -> None:
        """Ship a poll's comparisons (built by :attr:`stage`) with the closed windows and alerts;
        the released records are marked done once everything is acked.

        Shipping does not wait for the acks (that would stall every poll for a produce round
        trip): a task per poll waits for them, marks the released records done and retries on
        failure. At most ``MAX_UNACKED_POLLS`` such tasks run.
        """
        producer = self._producer
        assert producer is not None
        outputs, watermark, started_ns = polled.outputs, polled.watermark, polled.started_ns
        wire = polled.prepared.wire if polled.prepared is not None else []  # the native path's bytes
        encoded = [encode(c) if data is None else data for c, data in zip(comparisons, wire, strict=True)]
        traces = self.builder.trace.headers(comparisons, started_ns)  # each record's trace context
        places = partitions_of(outputs, comparisons)
        by_partition: dict[int, list[Comparison]] = {}
        now = _now_ms()
        for c, partition in zip(comparisons, places, strict=True):
            by_partition.setdefault(partition, []).append(c)
            if self._txn is not None:
                self.unpaired.record(partition, c, now)
        for partition, mine in by_partition.items():
            self.stats.late += self.windows.add_many(partition, mine)
        self.metrics.observe(comparisons)
        derived = (
            self._window_records(self.windows.advance(watermark - self.join.window_ms))
            if watermark >= 0
            else []
        )
        releases = [ref for out in outputs for ref in out.release]
        if self._txn is not None:  # committed with the offsets by the partitions' next transactions
            await self._stage(comparisons, encoded, places, derived, traces)
            self.tracker.done_refs(releases)
            return
        outbox: Outbox = {}
        if comparisons:
            outbox[self.settings.topics.compare_topic] = [
                (c.req_hash, v, h) for c, v, h in zip(comparisons, encoded, traces, strict=True)
            ]
        for _partition, topic, key, value in derived:
            outbox.setdefault(topic, []).append((key, value))
        if not outbox:
            return
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

    def _window_records(self, closed: list[tuple[int, WindowSummary]]) -> Derived:
        """The closed windows' summaries, and the alerts judged on their merge per window and key
        (with the lowest partition of the merged ones)."""
        t = self.settings.topics
        derived: Derived = []
        for partition, summary in closed:
            self.stats.summaries += 1
            derived.append((partition, t.summary_topic, summary.candidate, encode(summary)))
        for partition, merged in PartitionedWindows.alertable(closed):
            self.metrics.window(merged)  # the gauges show what the alerts judge
            for alert in drift_alerts(merged, self.c):
                self.stats.alerts += 1
                self.metrics.alert(alert)
                log.warning("drift alert: %s", alert.message)
                derived.append((partition, t.alerts_topic, alert.candidate, encode(alert)))
        return derived

    def on_assigned(self, assigned: list[TopicPartition]) -> None:
        if not assigned or (self.c.dedupe_ttl_s <= 0 and self._txn is None):
            self._took_over()
            return
        self._learn_then_fetch(assigned, lambda: self._take_over(assigned), self._took_over)

    def _took_over(self) -> None:
        """The member now works its partitions (none: a standby): it is ready."""
        self.assigned.set()
        self.health.member(self.c.group_id, len(self._owned()))

    async def _take_over(self, assigned: list[TopicPartition]) -> None:
        if self._txn is not None:
            await self._restore_or_hold(assigned)
        if self.c.dedupe_ttl_s > 0:
            await self._learn(assigned)

    async def _learn(self, assigned: list[TopicPartition]) -> None:
        """The pairs emitted on newly owned partitions within ``dedupe_ttl_s`` (by any member),
        read from the compare topic into the join's finished pairs: a retried request's copy
        then gets no second comparison."""
        producer = self._producer
        assert producer is not None
        since = _now_ms() - int(self.c.dedupe_ttl_s * 1000)
        owned = [tp.partition for tp in assigned]
        pairs = await emitted_since(self._kwargs, producer, self.settings.topics, owned, since)
        self.join.mark_finished(pairs)
        self.stats.learned += len(pairs)

    async def on_revoked(self, revoked: list[TopicPartition]) -> None:
        deadline = time.monotonic() + self.c.drain_timeout_s
        numbers = {tp.partition for tp in revoked}
        await self.stage.drain(self.c.drain_timeout_s)
        await self._drain_acks(max(deadline - time.monotonic(), 0.5))
        if self._txn is None:
            await self._flush_windows(deadline - time.monotonic(), sorted(numbers))
        await self._drain_letters(deadline - time.monotonic(), revoked)
        await self._commit_now(revoked)
        await self._close_transactions(revoked)
        self.windows.drop(numbers)
        self.unpaired.drop(numbers)
        self.rereads.forget(revoked)
        for partition in numbers:
            self._staged.pop(partition, None)
        dropped = self.join.drop_partitions((tp.topic, tp.partition) for tp in revoked)
        if dropped:
            log.info("revoked %d partitions; %d waiting records go to their new owner", len(revoked), dropped)
        self.tracker.forget(revoked)
        self.lag.forget(revoked)
        self._stop_learning(revoked)
        for tp in revoked:
            self._last_ts.pop(tp, None)
