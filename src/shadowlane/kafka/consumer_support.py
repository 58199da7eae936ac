"""What every Shadowlane consumer loop shares: rebalance hooks, committing the done prefix, and
dead-lettering that never holds up the loop. :class:`CommittingWorker` bundles the last two for
the shadow worker and the comparator.

A dead letter is sent by a task of its own; its record is marked done (so the offset can be
committed) only once the DLQ acknowledged it. While the DLQ refuses it (broker trouble, a
missing ACL), that task retries with backoff up to ``DLQ_RETRY_MAX_S`` and only the record's
partition is paused: the worker's other partitions go on, ``dlq_failures`` counts every refusal
and the ``dlq_blocked_partitions`` gauge says how many partitions wait (an alert rule watches
it). A letter is never too large to send (:mod:`shadowlane.kafka.dlq`). At shutdown or on
revocation, letters still unsent after the drain timeout are given up: their offsets stay
uncommitted, so the partition's next owner reads the records again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from shadowlane.kafka.dlq import send_dead_letter
from shadowlane.kafka.offsets import OffsetTracker
from shadowlane.kafka.transactions import Fenced, OutRecord, PartitionTransactions

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


def _nothing() -> None:
    return None


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("commit task crashed", exc_info=task.exception())


LEARN_TIMEOUT_S = 45.0
DLQ_RETRY_FIRST_S = 1.0
DLQ_RETRY_MAX_S = 30.0


class WorkerCounters(Protocol):
    dead_lettered: int
    dlq_failures: int
    commits: int


async def wait_bounded(tasks: Iterable[asyncio.Task[Any]], timeout_s: float) -> int:
    """Wait up to ``timeout_s`` for ``tasks``, then cancel the rest; returns how many were cancelled."""
    pending = [task for task in tasks if not task.done()]
    if not pending:
        return 0
    _done, late = await asyncio.wait(pending, timeout=max(timeout_s, 0.0))
    for task in late:
        task.cancel()
    if late:
        await asyncio.gather(*late, return_exceptions=True)
    return len(late)


class CommittingWorker:
    """Base of the consumer loops: dead-letter a record, commit the done prefix, count both.

    Subclasses set ``worker_id``, ``dlq_topic``, ``tracker``, ``stats`` and, once running,
    ``_consumer`` / ``_producer``; they call :meth:`_init_consumer_state` in ``__init__``.

    It also holds newly assigned partitions while the worker learns what their previous owner
    did (:meth:`_learn_then_fetch`): paused before their first fetch, resumed once learnt."""

    worker_id: str
    dlq_topic: str
    tracker: OffsetTracker
    stats: WorkerCounters
    _consumer: AIOKafkaConsumer | None
    _producer: AIOKafkaProducer | None
    _letters: dict[asyncio.Task[None], TopicPartition]
    _blocked: dict[TopicPartition, int]
    _learning: set[TopicPartition]
    _learners: set[asyncio.Task[None]]
    _txn: PartitionTransactions | None
    _lost: set[int]

    def _init_consumer_state(self, transactions: PartitionTransactions | None = None) -> None:
        self._letters = {}
        self._blocked = {}  # partition -> letters of it the DLQ is refusing right now
        self._learning = set()  # newly assigned, paused until what happened on them is learnt
        self._learners = set()
        self._txn = transactions  # exactly-once: outputs and offsets commit in a transaction per partition
        self._lost = set()  # partition numbers fenced by another member: paused until revoked
        self._committing: dict[int, asyncio.Lock] = {}
        self._committer: asyncio.Task[None] | None = None

    def _learn_then_fetch(
        self, partitions: list[TopicPartition], learn: Callable[[], Awaitable[None]], then: Callable[[], None]
    ) -> None:
        """Pause ``partitions`` (call it from the assignment callback, before their first fetch)
        while ``learn()`` runs; then resume them and call ``then()``. A failing ``learn`` is
        logged: the partitions fetch all the same. A learner cancelled at shutdown
        (:meth:`_stop_learning`) does not call ``then()``; one that outlives a revocation does, so
        ``then()`` reads what the member owns when it runs, not when it was assigned."""
        consumer = self._consumer
        assert consumer is not None
        consumer.pause(*partitions)
        self._learning.update(partitions)
        task = asyncio.create_task(self._learning_run(partitions, learn, then))
        self._learners.add(task)
        task.add_done_callback(self._learners.discard)

    async def _learning_run(
        self, partitions: list[TopicPartition], learn: Callable[[], Awaitable[None]], then: Callable[[], None]
    ) -> None:
        try:
            async with asyncio.timeout(LEARN_TIMEOUT_S):  # a partition is never held longer than this
                await learn()
        except Exception as exc:
            log.warning("could not learn what the previous owner of %s did: %s", partitions, exc)
        finally:
            done = [tp for tp in partitions if tp in self._learning]
            self._learning.difference_update(done)
            consumer = self._consumer
            if consumer is not None:
                consumer.resume(*self.resumable(tp for tp in done if tp in consumer.assignment()))
        then()  # not when cancelled (stopping): the worker is not taking anything over then

    def _stop_learning(self, only: Iterable[TopicPartition] | None = None) -> None:
        """Forget partitions still learning (revoked; all at shutdown, when the learners stop too)."""
        if only is None:
            for task in list(self._learners):
                task.cancel()
            self._learning.clear()
        else:
            self._learning.difference_update(only)

    def _dead_letter(self, tp: TopicPartition, record: Any, reason: str, detail: str) -> None:
        """Dead-letter ``record`` (of ``tp``) in the background; it is marked done once the DLQ has it."""
        task = asyncio.create_task(self._deliver_letter(tp, record, reason, detail))
        self._letters[task] = tp
        task.add_done_callback(self._letter_done)

    def _letter_done(self, task: asyncio.Task[None]) -> None:
        self._letters.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("dead-letter task crashed", exc_info=task.exception())

    async def _deliver_letter(self, tp: TopicPartition, record: Any, reason: str, detail: str) -> None:
        producer = self._producer
        assert producer is not None
        delay = DLQ_RETRY_FIRST_S
        blocking = False
        try:
            while True:
                try:
                    await send_dead_letter(
                        producer, self.dlq_topic, record, reason=reason, detail=detail, worker=self.worker_id
                    )
                    break
                except Exception as exc:  # the DLQ refuses: hold this partition only, and retry
                    self.stats.dlq_failures += 1
                    if not blocking:
                        blocking = True
                        self._block(tp)
                    log.warning(
                        "DLQ refused the letter of %s[%d]@%d (%s: %s); %s[%d] paused, retrying in %.0fs",
                        record.topic, record.partition, record.offset, type(exc).__name__, exc,
                        tp.topic, tp.partition, delay,
                    )  # fmt: skip
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, DLQ_RETRY_MAX_S)
        finally:
            if blocking:
                self._unblock(tp)
        self.tracker.done(tp, record.offset)
        self.stats.dead_lettered += 1

    def _block(self, tp: TopicPartition) -> None:
        self._blocked[tp] = self._blocked.get(tp, 0) + 1
        consumer = self._consumer
        if consumer is not None and tp in consumer.assignment():
            consumer.pause(tp)

    def _unblock(self, tp: TopicPartition) -> None:
        left = self._blocked.get(tp, 0) - 1
        if left > 0:
            self._blocked[tp] = left
            return
        self._blocked.pop(tp, None)
        consumer = self._consumer
        if consumer is not None and tp in consumer.assignment() and self._may_resume(tp):
            consumer.resume(tp)

    def _may_resume(self, tp: TopicPartition) -> bool:
        """Whether ``tp`` may fetch again: not while it is learning, nor once another member fenced
        it (subclasses add their holds, say a kill switch)."""
        return tp not in self._learning and tp.partition not in self._lost

    def resumable(self, partitions: Iterable[TopicPartition]) -> list[TopicPartition]:
        """``partitions`` without those a refused dead letter holds (and those the subclass holds)."""
        return [tp for tp in partitions if tp not in self._blocked and self._may_resume(tp)]

    def transaction_counters(self) -> dict[str, int]:
        """With exactly-once: transactions committed and aborted, and partitions lost to fencing."""
        txn = self._txn
        if txn is None:
            return {}
        return {"transactions": txn.commits, "transactions_aborted": txn.aborts, "fenced": txn.fenced}

    @property
    def dlq_blocked_partitions(self) -> int:
        return len(self._blocked)

    async def _drain_letters(self, timeout_s: float, only: Iterable[TopicPartition] | None = None) -> None:
        """Wait (bounded) for the letters of ``only`` (default: all); unsent ones are given up,
        their records stay uncommitted."""
        wanted = None if only is None else set(only)
        tasks = [t for t, tp in self._letters.items() if wanted is None or tp in wanted]
        given_up = await wait_bounded(tasks, timeout_s)
        if given_up:
            log.warning(
                "%d dead letters unsent after %.0fs; their records stay uncommitted", given_up, timeout_s
            )

    async def _commit(self, only: Iterable[TopicPartition] | None = None) -> None:
        """Commit the done prefix of ``only`` (default: every owned partition): with exactly-once,
        in one transaction per partition number, with what :meth:`_transaction_records` gives."""
        if self._txn is None:
            if await commit_done(self._consumer, self.tracker, only):
                self.stats.commits += 1
            return
        consumer = self._consumer
        owned = consumer.assignment() if consumer is not None else set()
        wanted = set(owned) if only is None else set(owned) & set(only)
        numbers = sorted({tp.partition for tp in wanted} - self._lost)
        # each partition has its own producer: their transactions run side by side
        await asyncio.gather(
            *(self._commit_partition(p, [tp for tp in wanted if tp.partition == p]) for p in numbers)
        )

    def _commit_soon(self) -> None:
        """Exactly-once: start the periodic commit as a task of its own (unless the last one still
        runs), so polling goes on during the transactions' round trips; without it, nothing."""
        if self._txn is not None and (self._committer is None or self._committer.done()):
            self._committer = asyncio.create_task(self._commit())
            self._committer.add_done_callback(_log_crash)

    async def _commit_now(self, only: Iterable[TopicPartition] | None = None) -> None:
        """Commit, after the periodic commit still running (if any) has finished."""
        running = self._committer
        if running is not None and not running.done():
            await asyncio.wait([running])
        await self._commit(only)

    async def _commit_partition(self, partition: int, tps: list[TopicPartition]) -> None:
        """One transaction of ``partition``: its records and the done prefix of ``tps``. One at a
        time per partition (the loop's periodic commit and a revocation's may overlap)."""
        assert self._txn is not None
        lock = self._committing.setdefault(partition, asyncio.Lock())
        async with lock:
            if not self._txn.owns(partition) or partition in self._lost:
                return  # never reopened here: the assignment seen may be stale
            offsets = self.tracker.committable(tps)
            records, settle = self._transaction_records(partition, offsets)
            if not records and not offsets:
                return
            try:
                await self._txn.commit(partition, records, offsets)
            except Fenced as exc:
                self._fenced(partition, exc)
                return
            except Exception as exc:  # aborted: the records stay here for the next try
                log.warning("transaction of partition %d aborted (will retry): %s", partition, exc)
                return
            settle()
            self.tracker.mark_committed(offsets)
            self.stats.commits += 1

    def _transaction_records(
        self, partition: int, offsets: dict[TopicPartition, int]
    ) -> tuple[list[OutRecord], Callable[[], None]]:
        """What partition ``partition``'s next transaction writes next to ``offsets``, and what to
        do once it committed (subclasses with exactly-once output override it)."""
        return [], _nothing

    def _fenced(self, partition: int, exc: Exception) -> None:
        """Another member took partition ``partition`` over: stop reading it here until the group
        revokes it (what this member did on it since its last commit is void)."""
        log.warning("%s: lost partition %d to another member: %s", self.worker_id, partition, exc)
        self._lost.add(partition)
        consumer = self._consumer
        if consumer is not None:
            consumer.pause(*(tp for tp in consumer.assignment() if tp.partition == partition))

    async def _open_transactions(self, partitions: list[TopicPartition]) -> None:
        """Exactly-once: take over the producers of newly owned ``partitions`` (fencing their
        previous owner), then start each from its committed offset as of now: an offset the
        previous owner committed while this member was joining is not skipped."""
        consumer = self._consumer
        if self._txn is None or consumer is None:
            return
        numbers = {tp.partition for tp in partitions}
        self._lost.difference_update(numbers)
        delay = 0.5
        while True:  # bounded by the learning timeout; then the partitions stay paused (lost)
            try:
                await self._txn.open(numbers)
                break
            except asyncio.CancelledError:
                self._lost.update(p for p in numbers if not self._txn.owns(p))
                raise
            except Exception as exc:
                log.warning("opening the transactional producers of %s failed (%s); retrying", numbers, exc)
                await asyncio.sleep(delay)
                delay = min(2 * delay, 5.0)
        for tp in partitions:
            committed = await consumer.committed(tp)
            if committed is not None and tp in consumer.assignment():
                consumer.seek(tp, committed)

    async def _close_transactions(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        if self._txn is not None:
            await self._txn.close(None if partitions is None else {tp.partition for tp in partitions})
