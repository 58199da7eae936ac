"""The shadow worker: one consumer group per candidate, replaying envelopes at a hard rate cap.

Flow per record: decode (bad bytes / wrong version → DLQ) → take a call slot → replay against
the candidate (read-only tools), every call of it (attempt, retry, tool round) first taking a
token of this member's share of the group cap → the ``ShadowResult``. With exactly-once (the
default) the result waits until its record is inside the partition's done prefix, then commits
with that prefix in the partition's transaction (:mod:`shadowlane.kafka.transactions`); without
it, the result is produced, and its offset done once acknowledged. Offsets are committed only for
the contiguous done prefix of each partition: every ``commit_interval_s``, on partition revoke
(after the revoked partitions' in-flight replays finish) and on shutdown. Concurrency is bounded; when
every slot is taken the worker pauses its partitions instead of buffering more records.
Only the candidate call holds a concurrency slot: waiting for the result's ack does not, so a
member's throughput is ``concurrency / candidate latency`` (up to its share of the cap).

A λ-sampled request (see :mod:`shadowlane.shadow.stability`) is replayed a few more times after
the main replay, concurrently; each extra replay takes its own call slot and its calls their
tokens, so the rate cap counts every call the candidate receives. The worker exposes its metrics
through :meth:`ShadowWorker.counters`, :meth:`ShadowWorker.gauges`,
:meth:`ShadowWorker.labelled_counters` and its :attr:`lag` tracker. The kill switch:
:mod:`shadowlane.shadow.kill_switch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, get_args

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shadowlane.contracts.codec import DecodeError, encode
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.contracts.request_check import check_request
from shadowlane.contracts.shadow_result import ErrorClass, ShadowResult
from shadowlane.health import Health
from shadowlane.kafka.consumer_support import CommittingWorker, RebalanceHooks, wait_bounded
from shadowlane.kafka.dlq import SIZE_REFUSALS
from shadowlane.kafka.history import read_since
from shadowlane.kafka.lag import LagTracker
from shadowlane.kafka.offsets import OffsetTracker
from shadowlane.kafka.transactions import MAX_RECORD_BYTES, OutRecord, PartitionTransactions
from shadowlane.metrics import Known, Labelled
from shadowlane.settings import Settings
from shadowlane.shadow.candidates import Candidate
from shadowlane.shadow.dedupe import RecentReplays, replayed_by
from shadowlane.shadow.held_results import HeldResults
from shadowlane.shadow.kill_switch import KillSwitchHold
from shadowlane.shadow.replay import Replayer
from shadowlane.shadow.stability import stability_samples
from shadowlane.shadow.throttle import TokenBucket, partition_share
from shadowlane.tracing import KafkaHeaders, TraceContext

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ShadowStats:
    consumed: int = 0
    replayed: int = 0
    errors: int = 0
    dead_lettered: int = 0
    dlq_failures: int = 0
    tools_stubbed: int = 0
    tools_blocked: int = 0
    paused: int = 0
    commits: int = 0
    produce_failed: int = 0
    lambda_replays: int = 0
    kill_pauses: int = 0
    kill_held: int = 0
    duplicates_skipped: int = 0  # copies of a request replayed within dedupe_ttl_s (a retry storm)
    learned: int = 0  # recent replays of a newly owned partition, read from the results topic
    candidate_served: int = 0  # A/B or canary requests a candidate served itself: not replayed
    # error results (main and λ replays) by error_class; not part of ``as_dict``
    error_classes: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        """The plain counters (what the ``stopped`` line prints)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "error_classes"}

    def count_error(self, result: ShadowResult) -> None:
        if result.status == "error":
            key = result.error_class or "unknown"
            self.error_classes[key] = self.error_classes.get(key, 0) + 1


class ShadowWorker(KillSwitchHold, CommittingWorker):
    """Consumes the requests topic as group ``<group_prefix><candidate>``."""

    # every error class has a ``candidate_errors`` series (0) from the first scrape on
    known_labels: ClassVar[Known] = {"candidate_errors": [get_args(ErrorClass)]}

    def __init__(
        self,
        settings: Settings,
        candidate: Candidate,
        client_kwargs: dict[str, Any],
        *,
        halt: Callable[[], bool] | None = None,
        health: Health | None = None,
    ) -> None:
        self.settings = settings
        self.halt = halt
        self.health = health if health is not None else Health()  # what /healthz and /readyz answer
        self.paused_by_kill = False
        self.s = settings.shadow
        self.candidate = candidate
        self.bucket = TokenBucket(0.0)
        self.replayer = Replayer(
            candidate,
            self.s,
            baseline=candidate.name == settings.compare.baseline_candidate,
            admit=self._admit,  # every call takes a token: attempts, retries, tool rounds
        )
        self.group_id = f"{self.s.group_prefix}{candidate.name}"
        self.worker_id = self.group_id
        self.dlq_topic = settings.topics.dlq_topic
        self._kwargs = client_kwargs
        self.stats: ShadowStats = ShadowStats()
        self.tracker = OffsetTracker()
        self._init_consumer_state(
            PartitionTransactions(client_kwargs, self.group_id) if self.s.exactly_once else None
        )
        self.held = HeldResults()  # exactly-once: results waiting for their offsets' commit
        self._full = False  # every slot taken: the loop paused the partitions
        self.recent = RecentReplays(int(self.s.dedupe_ttl_s * 1000))
        self.lag = LagTracker()
        self._tasks: dict[asyncio.Task[None], TopicPartition] = {}
        self._slot_free = asyncio.Event()
        # candidate calls in flight are capped at ``concurrency``; records held in this process
        # (waiting for a token or a call slot, or for their result's ack) at twice that, beyond
        # which the partitions are paused: a bounded buffer, never an unbounded one
        self._calls = asyncio.Semaphore(self.s.concurrency)
        self._max_buffered = 2 * self.s.concurrency
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._stop = asyncio.Event()
        self.assigned = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle
    def tasks_in_flight(self) -> list[asyncio.Task[None]]:
        return list(self._tasks)

    def stop(self) -> None:
        self.health.stopping()
        self._stop.set()

    # ------------------------------------------------------------------ metrics (scrape thread)
    def counters(self) -> dict[str, float]:
        """Plain counters plus the rate cap's: ``throttled`` and ``throttle_wait_seconds``."""
        return {
            **self.stats.as_dict(),
            **self.transaction_counters(),
            "throttled": self.bucket.throttled,
            "throttle_wait_seconds": self.bucket.throttle_wait_s,
        }

    def gauges(self) -> dict[str, float]:
        return {
            "in_flight": len(self._tasks),
            "rate_limit": self.bucket.rate,
            "paused_by_kill": float(self.paused_by_kill),
            "dlq_blocked_partitions": self.dlq_blocked_partitions,
        }

    def labelled_counters(self) -> dict[str, Labelled]:
        """``candidate_errors{error_class}``: error results of main and λ replays."""
        errors: dict[tuple[str, ...], float] = {
            (cls,): float(n) for cls, n in self.stats.error_classes.copy().items()
        }
        return {"candidate_errors": (("error_class",), errors)}

    async def run(self) -> None:
        topics = self.settings.topics
        self._producer = AIOKafkaProducer(**self._kwargs, acks="all", enable_idempotence=True, linger_ms=2)
        self._consumer = AIOKafkaConsumer(
            **self._kwargs,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._max_buffered,
        )
        self.lag.attach(self._consumer)
        await self._producer.start()
        try:
            self._consumer.subscribe(
                [topics.requests_topic], listener=RebalanceHooks(self.on_revoked, self.on_assigned)
            )
            await self._consumer.start()
            self.health.watch_broker(self._consumer, topics.requests_topic)
            try:
                await self._loop()
            finally:
                self.health.unwatch_broker()
                self._stop_learning()
                await self._drain_all()
                await self._commit_now()
                await self._close_transactions()
                await self._consumer.stop()
                self.lag.attach(None)
        finally:
            await self._producer.stop()
            await self.candidate.aclose()

    async def _loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        last_commit = time.monotonic()
        paused = self._full = False
        while not self._stop.is_set():
            # also while killed: finished replays commit
            if time.monotonic() - last_commit >= self.s.commit_interval_s:
                if self._txn is not None:
                    self._commit_soon()  # transactions: their round trips overlap polling
                else:
                    await self._commit()
                last_commit = time.monotonic()
            if self._halted():
                await self._hold(consumer)
                paused = True  # resumed by the branch below once the switch is released
                continue
            if self.paused_by_kill:
                self.paused_by_kill = False
                log.warning("%s: kill switch released, resuming", self.group_id)
            free = self._max_buffered - len(self._tasks)
            if free <= 0:
                if not paused:
                    consumer.pause(*consumer.assignment())
                    paused = self._full = True
                    self.stats.paused += 1
                self._slot_free.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._slot_free.wait(), 0.2)
                # keep polling while paused so the group does not see us as stuck; a partition
                # assigned meanwhile is not paused, so whatever comes back is still handled
                await self._poll(consumer, 1, 0)
            else:
                if paused:
                    # a partition held by a refused dead letter, or still learning its recent
                    # replays, stays paused until that is done
                    self._full = False
                    consumer.resume(*self.resumable(consumer.assignment()))
                    paused = False
                await self._poll(consumer, free, 200)

    async def _poll(self, consumer: AIOKafkaConsumer, max_records: int, timeout_ms: int) -> None:
        batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        for tp, records in batches.items():
            if records:
                self.lag.seen(tp, records[-1].offset)
            for record in records:
                self.stats.consumed += 1
                self.tracker.add(tp, record.offset)
                task = asyncio.create_task(self._handle(tp, record))
                self._tasks[task] = tp
                task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        self._slot_free.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("shadow handler crashed", exc_info=task.exception())

    # ------------------------------------------------------------------ per record
    async def _handle(self, tp: TopicPartition, record: Any) -> None:
        producer = self._producer
        assert producer is not None
        topics = self.settings.topics
        try:
            envelope = check_request(record.value, record.key)
        except DecodeError as exc:
            self._dead_letter(tp, record, exc.reason, exc.detail)
            return
        if envelope.exposure is not None and envelope.exposure.arm == "candidate":
            # an exposure record (the report's A/B data); replaying it would compare the candidate
            # with itself, so no shadow replays it and the comparator does not wait for one
            self.stats.candidate_served += 1
            self.tracker.done(tp, record.offset)
            return
        if not self.recent.first(tp, envelope.req_hash, envelope.ts_ms):
            self.stats.duplicates_skipped += 1  # a copy of a request replayed within the TTL
            self.tracker.done(tp, record.offset)
            return
        if self._halted() and not await self._held():
            return  # stopping while killed: the offset stays uncommitted, the record is replayed later
        trace = TraceContext.from_kafka(record.headers, envelope.trace_id)  # never raises
        try:
            result = await self._replay(envelope, trace)
        except Exception as exc:  # a bug or a result that breaks the contract: keep it, with the reason
            log.exception("replay of %s[%d]@%d failed", record.topic, record.partition, record.offset)
            self._dead_letter(tp, record, "replay_failed", f"{type(exc).__name__}: {exc}")
            return
        self.stats.replayed += 1
        if result.status == "error":
            self.stats.errors += 1
        self.stats.count_error(result)
        stability = await stability_samples(envelope, self.s, self._lambda_replay)
        if stability:
            result = result.model_copy(update={"stability": stability})
        for call in result.tool_calls:
            if call.disposition == "blocked":
                self.stats.tools_blocked += 1
            elif call.disposition.startswith("stubbed"):
                self.stats.tools_stubbed += 1
        headers = TraceContext.of(result.traceparent, trace.tracestate).kafka_headers()
        if self._txn is not None:
            self._hold_result(tp, record, encode(result), headers)
            return
        while True:
            try:
                await producer.send_and_wait(
                    topics.shadow_results_topic,
                    encode(result),
                    key=record.key,
                    partition=record.partition,
                    headers=headers,
                )
                break
            except SIZE_REFUSALS as exc:  # the same bytes can never fit: the request is dead-lettered
                self.stats.produce_failed += 1
                self._dead_letter(tp, record, "result_too_large", f"{type(exc).__name__}: {exc}")
                return
            except Exception as exc:  # retriable: keep the offset uncommitted and retry
                self.stats.produce_failed += 1
                log.warning(
                    "producing shadow result for %s[%d]@%d failed: %s; retrying",
                    record.topic,
                    record.partition,
                    record.offset,
                    exc,
                )
                await asyncio.sleep(1.0)
        self.tracker.done(tp, record.offset)

    def _hold_result(
        self, tp: TopicPartition, record: Any, value: bytes, headers: KafkaHeaders | None = None
    ) -> None:
        """Exactly-once: keep the result for its partition's next transaction (one that can never
        fit in a record is dead-lettered instead)."""
        if len(value) + len(record.key or b"") > MAX_RECORD_BYTES:
            self.stats.produce_failed += 1
            self._dead_letter(tp, record, "result_too_large", f"{len(value)} bytes > {MAX_RECORD_BYTES}")
            return
        topic = self.settings.topics.shadow_results_topic
        self.held.hold(tp, record.offset, (topic, record.key, value, record.partition, headers))
        self.tracker.done(tp, record.offset)

    def _transaction_records(
        self, partition: int, offsets: dict[TopicPartition, int]
    ) -> tuple[list[OutRecord], Callable[[], None]]:
        """The held results of the records inside the prefix being committed."""
        tp = TopicPartition(self.settings.topics.requests_topic, partition)
        return self.held.inside(tp, offsets.get(tp))

    async def _admit(self) -> None:
        """One candidate call's token of this member's share of the rate cap."""
        await self.bucket.acquire()

    async def _replay(self, envelope: RequestEnvelope, trace: TraceContext | None = None) -> ShadowResult:
        """One replay in a call slot; each of its candidate calls takes a token of the rate cap."""
        async with self._calls:
            return await self.replayer.replay(envelope, trace)

    async def _lambda_replay(self, envelope: RequestEnvelope) -> ShadowResult:
        try:
            result = await self._replay(envelope)
        finally:
            self.stats.lambda_replays += 1
        self.stats.count_error(result)
        return result

    async def _drain_all(self, only: set[TopicPartition] | None = None) -> None:
        """Let the replays and dead letters in flight (of ``only``, default all) finish within one
        ``drain_timeout_s``; the rest are cancelled, their records stay uncommitted and are read
        again by the partition's next owner."""
        deadline = time.monotonic() + self.s.drain_timeout_s
        tasks = [task for task, tp in self._tasks.items() if only is None or tp in only]
        await wait_bounded(tasks, self.s.drain_timeout_s)
        await self._drain_letters(deadline - time.monotonic(), only)

    def _may_resume(self, tp: TopicPartition) -> bool:
        return super()._may_resume(tp) and not self._full and not self._halted()

    async def on_revoked(self, revoked: list[TopicPartition]) -> None:
        """Finish (bounded) what is in flight for the revoked partitions, commit, forget them."""
        gone = set(revoked)
        await self._drain_all(gone)
        await self._commit_now(gone)
        await self._close_transactions(gone)
        self.held.forget(gone)
        self.tracker.forget(gone)
        self.lag.forget(gone)
        self.recent.forget(gone)
        self._stop_learning(gone)

    def on_assigned(self, assigned: list[TopicPartition]) -> None:
        consumer = self._consumer
        assert consumer is not None
        topic = self.settings.topics.requests_topic
        owned = self._owned_count()
        total = len(consumer.partitions_for_topic(topic) or ()) or self.settings.topics.partitions
        self.bucket.set_rate(partition_share(self.s.rate_cap, owned, total))
        if self._halted():
            consumer.pause(*assigned)
        log.info("%s owns %d/%d partitions, rate %.2f/s", self.group_id, owned, total, self.bucket.rate)
        fresh = [tp for tp in assigned if tp.topic == topic]
        if fresh and (self.recent.enabled or self._txn is not None):
            self._learn_then_fetch(fresh, lambda: self._learn(fresh), self._took_over)
        else:
            self._took_over()

    def _owned_count(self) -> int:
        consumer = self._consumer
        topic = self.settings.topics.requests_topic
        return sum(1 for tp in consumer.assignment() if tp.topic == topic) if consumer else 0

    def _took_over(self) -> None:
        """The member now works the partitions it owns at this moment (none: a standby): it is ready."""
        self.assigned.set()
        self.health.member(self.group_id, self._owned_count())

    async def _learn(self, partitions: list[TopicPartition]) -> None:
        """Before newly owned partitions fetch: with exactly-once, take over their transactional
        producers; then read what this candidate replayed on them within the TTL (by any member)
        from the results topic: a retried request's copy is then not replayed again."""
        await self._open_transactions(partitions)
        if not self.recent.enabled:
            return
        since = time.time_ns() // 1_000_000 - self.recent.ttl_ms
        found = await read_since(
            self._kwargs,
            self.settings.topics.shadow_results_topic,
            [tp.partition for tp in partitions],
            since,
            replayed_by(self.candidate.name),
        )
        for tp in partitions:
            if tp in self._learning:
                self.stats.learned += self.recent.learn(tp, found.get(tp.partition, ()))
