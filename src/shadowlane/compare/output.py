"""How the comparator's records leave: acknowledged (at-least-once) or in transactions (exactly-once).

:class:`ComparatorOutput` is the comparator's base. Without exactly-once, a poll's comparisons,
closed summaries and alerts are shipped at once and a task waits for their acks before the
records they release are marked done (at most ``MAX_UNACKED_POLLS`` such tasks); open windows
are shipped as partial summaries at shutdown and revocation. With exactly-once, a poll's records
are staged per input partition, and each partition's next transaction writes them with its
:class:`~shadowlane.contracts.window_state.WindowState` and its consumed offsets
(:mod:`shadowlane.kafka.transactions`); a partition's new owner fences the old one, then
restores that state (:meth:`ComparatorOutput._restore`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from aiokafka import TopicPartition

from shadowlane.compare.join import RecordRef
from shadowlane.compare.native.join import Join
from shadowlane.compare.partition_state import (
    ReReadFilter,
    UnpairedLedger,
    positions,
    state_key,
    state_record,
)
from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.window_state import WindowState
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.hashing import partition_for
from shadowlane.kafka.batching import Headers, PartitionBatcher, Record, partition_count
from shadowlane.kafka.consumer_support import CommittingWorker, wait_bounded
from shadowlane.kafka.history import read_latest
from shadowlane.kafka.offsets import OffsetTracker
from shadowlane.kafka.transactions import MAX_RECORD_BYTES, OutRecord
from shadowlane.settings import CompareSettings, Settings
from shadowlane.windows.partitioned import PartitionedWindows

log = logging.getLogger(__name__)

MAX_UNACKED_POLLS = 8
SHIP_BATCH_BYTES = 512 * 1024  # under the broker's default message.max.bytes (1 MiB)
MAX_OUTPUT_BYTES = SHIP_BATCH_BYTES - 1024  # one record with its batch and record headers
Outbox = dict[str, list[Record]]  # topic -> (key, value[, headers]) records, in order
Derived = list[tuple[int, str, str, bytes]]  # (input partition, topic, key, value) of window records


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
    restored: int = 0  # partitions whose window state a newly owned partition's last transaction left
    state_too_large: int = 0  # states written without their emitted pairs (over the record limit)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _records_in(outbox: Outbox) -> int:
    return sum(len(records) for records in outbox.values())


class ComparatorOutput(CommittingWorker):
    """The comparator's output paths; :class:`~shadowlane.compare.worker.Comparator` is the loop."""

    settings: Settings
    c: CompareSettings
    stats: CompareStats
    tracker: OffsetTracker
    windows: PartitionedWindows
    unpaired: UnpairedLedger
    rereads: ReReadFilter
    join: Join
    _kwargs: dict[str, Any]
    _staged: dict[int, list[OutRecord]]
    _partition_counts: dict[str, int]
    _acks: set[asyncio.Task[None]]

    def _window_records(self, closed: list[tuple[int, WindowSummary]]) -> Derived:
        raise NotImplementedError

    async def _partitions_of(self, topic: str) -> int:
        if topic not in self._partition_counts:
            assert self._producer is not None
            self._partition_counts[topic] = await partition_count(self._producer, topic)
        return self._partition_counts[topic]

    # ------------------------------------------------------------------ at-least-once
    async def _flush_windows(self, timeout_s: float, partitions: list[int]) -> None:
        """Without exactly-once, on shutdown or revocation: ship what the open windows of
        ``partitions`` hold (partials; a later owner adds the rest)."""
        outbox: Outbox = {}
        for _partition, topic, key, value in self._window_records(self.windows.flush(partitions)):
            outbox.setdefault(topic, []).append((key, value))
        if not outbox:
            return
        try:
            await asyncio.wait_for(asyncio.gather(*await self._ship(outbox)), max(timeout_s, 0.1))
        except Exception as exc:  # derived data: rescore rebuilds it from the compare topic
            log.warning("shipping %d window records at shutdown failed: %s", _records_in(outbox), exc)

    async def _ship(self, outbox: Outbox) -> list[asyncio.Future[Any]]:
        producer = self._producer
        assert producer is not None
        shipped = []
        for topic, records in outbox.items():
            if topic not in self._partition_counts:
                self._partition_counts[topic] = await partition_count(producer, topic)
            batcher = PartitionBatcher(producer, topic, self._partition_counts[topic])
            if any(len(record[1]) > MAX_OUTPUT_BYTES for record in records):
                records = self._fitting(topic, records)
            shipped.extend(await batcher.add_many(records))
            shipped.extend(await batcher.flush())
        return [fut for fut, _count in shipped]

    def _fitting(self, topic: str, records: list[Record]) -> list[Record]:
        """``records`` without those no batch can hold (counted ``too_large``, logged): a derived
        record that big (kilobytes of pins or breakdown labels) could never be produced."""
        fitting = [record for record in records if len(record[1]) <= MAX_OUTPUT_BYTES]
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
                log.warning("producing %d records failed: %s; retrying", _records_in(outbox), exc)
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

    # ------------------------------------------------------------------ exactly-once
    async def _stage(
        self,
        comparisons: list[Comparison],
        encoded: list[bytes],
        places: list[int],
        derived: Derived,
        headers: Sequence[Headers | None] | None = None,
    ) -> None:
        """Exactly-once: queue a poll's records for their input partitions' next transactions
        (``headers``: each comparison's record headers, the trace context)."""
        t = self.settings.topics
        for topic in (t.compare_topic, t.summary_topic, t.alerts_topic, t.compare_state_topic):
            await self._partitions_of(topic)  # known since the take-over: returns without waiting
        counts = self._partition_counts
        compare_count = counts[t.compare_topic]
        staged = self._staged
        traced = headers if headers is not None else [None] * len(comparisons)
        for c, value, partition, trace in zip(comparisons, encoded, places, traced, strict=True):
            if len(value) > MAX_OUTPUT_BYTES:
                self._fitting(t.compare_topic, [(c.req_hash, value)])
                continue
            key = c.req_hash
            staged.setdefault(partition, []).append(
                (t.compare_topic, key.encode(), value, partition_for(key, compare_count), trace)
            )
        for partition, topic, key, value in derived:
            if len(value) > MAX_OUTPUT_BYTES:
                self._fitting(topic, [(key, value)])
                continue
            staged.setdefault(partition, []).append(
                (topic, key.encode(), value, partition_for(key, counts[topic]))
            )

    def _transaction_records(
        self, partition: int, offsets: dict[TopicPartition, int]
    ) -> tuple[list[OutRecord], Callable[[], None]]:
        """The partition's staged records and its state, as of now (nothing awaits in between)."""
        t = self.settings.topics
        staged = self._staged.get(partition, [])
        records = list(staged)
        if records or offsets:
            records.append(self._state(partition, offsets))
        taken = len(staged)

        def settle() -> None:
            del staged[:taken]
            self.stats.emitted += sum(1 for r in records if r[0] == t.compare_topic)

        return records, settle

    def _inputs(self, partition: int) -> dict[str, TopicPartition]:
        t = self.settings.topics
        return {
            "requests": TopicPartition(t.requests_topic, partition),
            "shadow-results": TopicPartition(t.shadow_results_topic, partition),
        }

    def _state(self, partition: int, offsets: dict[TopicPartition, int]) -> OutRecord:
        """Partition ``partition``'s ``WindowState`` record, with the offsets this transaction commits."""
        t = self.settings.topics
        inputs = self._inputs(partition)
        committed = {name: offsets.get(tp, self.tracker.committed(tp)) for name, tp in inputs.items()}
        state = state_record(
            self.c.group_id,
            partition,
            self.windows,
            positions(self.tracker, inputs, committed),
            self.unpaired,
        )
        value = encode(state)
        if len(value) > MAX_RECORD_BYTES:  # never seen: it would take ~300,000 records waiting
            self.stats.state_too_large += 1
            log.error(
                "window state of partition %d is %d bytes: written without what was read past the "
                "committed offsets (after a crash those records may be compared again)",
                partition,
                len(value),
            )
            value = encode(state.model_copy(update={"positions": (), "unpaired": ()}))
        target = partition % self._partition_counts.get(t.compare_state_topic, 1)
        return (t.compare_state_topic, state_key(self.c.group_id, partition), value, target)

    async def _restore_or_hold(self, assigned: list[TopicPartition]) -> None:
        """:meth:`_restore`, retried until it succeeds; a partition whose state could not be
        restored within the learning bound stays paused (lost) until the group assigns it again:
        read without its state, its windows would miss counts and its re-read records be compared
        twice."""
        delay = 0.5
        try:
            while True:
                try:
                    await self._restore(assigned)
                    return
                except Exception as exc:
                    log.warning("restoring the state of %s failed (%s); retrying", assigned, exc)
                    await asyncio.sleep(delay)
                    delay = min(2 * delay, 5.0)
        except asyncio.CancelledError:
            numbers = {tp.partition for tp in assigned}
            self._lost.update(numbers)
            log.error(
                "state of partitions %s not restored in time: they stay paused until reassigned",
                sorted(numbers),
            )
            raise

    async def _restore(self, assigned: list[TopicPartition]) -> None:
        """Exactly-once: take over the newly owned partitions' producers (fencing their previous
        owner), then their window state as of its last committed transaction."""
        await self._open_transactions(assigned)
        t = self.settings.topics
        # the output topics' partition counts, now: staging a poll's records must not await (a
        # commit running meanwhile would take windows that count comparisons it does not write)
        for topic in (t.compare_topic, t.summary_topic, t.alerts_topic):
            await self._partitions_of(topic)
        count = await self._partitions_of(t.compare_state_topic)
        for partition in sorted({tp.partition for tp in assigned if tp.topic == t.requests_topic}):
            raw = await read_latest(
                self._kwargs, t.compare_state_topic, partition % count, state_key(self.c.group_id, partition)
            )
            # whatever this member held of the partition before (an earlier ownership) is stale
            self.windows.drop([partition])
            self.unpaired.drop([partition])
            self._staged.pop(partition, None)
            if raw is None:
                continue
            state = decode(raw, WindowState)
            self.windows.restore(partition, state.open_windows, state.closed_until, state.late)
            self.join.mark_finished(self.unpaired.restore(partition, state.unpaired))
            inputs = self._inputs(partition)
            for where in state.positions:
                tp = inputs[where.topic]
                self.rereads.expect(tp, where)
                if self._consumer is not None and tp in self._consumer.assignment():
                    self._consumer.seek(tp, where.committed)  # the offset committed with this state
            self.stats.restored += 1
