"""Exactly-once output: one transactional producer per owned input partition.

A worker with ``exactly_once`` on writes what it derived from input partition *p* (its output
records and, for the comparator, the partition's state) in a Kafka transaction of *p*'s own
producer, together with the consumed offsets of *p* (``send_offsets_to_transaction``). Outputs and
offsets commit or abort together: a ``read_committed`` reader sees each output once, and a crash
before the commit leaves neither, so the partition's next owner redoes exactly that work.

Fencing is per partition (Kafka's original EOS design): *p*'s producer has the transactional id
``<group>.<p>``. When *p* moves to another member, the new owner first initialises a producer with
that same id (:meth:`PartitionTransactions.open`): the broker bumps the id's epoch, aborts any
transaction the previous owner left open, and from then on refuses with ``ProducerFenced``
whatever the previous owner (a zombie that has not yet noticed it lost *p*) still sends or
commits. aiokafka commits offsets in a transaction without the group's generation
(TxnOffsetCommit v0), so it is the per-partition id, not the group, that fences; a group-wide
producer id could not. A worker fenced on *p* never reopens *p*'s producer by itself (that would
fence the rightful owner back): it drops *p* until the group assigns it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import InvalidProducerEpoch, ProducerFenced

from shadowlane.kafka.batching import Headers, append_record

log = logging.getLogger(__name__)

OutRecord = (
    tuple[str, bytes | None, bytes, int | None] | tuple[str, bytes | None, bytes, int | None, Headers | None]
)
"""An output record: topic, key, value, partition (None: the producer's partitioner picks) and,
optionally, its headers (the trace context, :mod:`shadowlane.tracing`)."""

BATCH_BYTES = 512 * 1024  # under the broker's default message.max.bytes (1 MiB)
MAX_RECORD_BYTES = 1_040_000
"""The largest key + value written in a transaction: with its batch's headers under the broker's
default ``message.max.bytes`` (1 MiB) and the producer's ``max_request_size``. A bigger record
would abort its transaction on every try; the workers dead-letter or drop it first."""


class Fenced(Exception):
    """Another producer now holds the partition's transactional id: this member lost the partition."""


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def _write(producer: AIOKafkaProducer, records: Sequence[OutRecord]) -> None:
    """Append ``records`` to the open transaction: into batches per topic and partition, in order
    (a coroutine per batch, not per record); a record without a partition goes through ``send``."""
    batches: dict[tuple[str, int], Any] = {}
    sent: list[asyncio.Future[Any]] = []
    for record in records:
        topic, key, value, target = record[0], record[1], record[2], record[3]
        headers = record[4] if len(record) > 4 else None
        if target is None:
            extra = {"headers": headers} if headers else {}
            sent.append(await producer.send(topic, value, key=key, **extra))
            continue
        batch = batches.get((topic, target))
        if batch is None:
            batch = batches[(topic, target)] = producer.create_batch()
        if append_record(batch, key, value, headers) is not None:
            continue
        sent.append(await _ship(producer, batch, topic, target))
        batch = batches[(topic, target)] = producer.create_batch()
        if append_record(batch, key, value, headers) is None:
            raise ValueError(f"a record of {len(value)} bytes does not fit in a batch")
    for (topic, target), batch in batches.items():
        sent.append(await _ship(producer, batch, topic, target))
    for future in sent:
        future.add_done_callback(_retrieve)  # an aborted batch's error is the commit's


async def _ship(producer: AIOKafkaProducer, batch: Any, topic: str, partition: int) -> asyncio.Future[Any]:
    batch.close()
    future: asyncio.Future[Any] = await producer.send_batch(batch, topic, partition=partition)
    return future


def transactional_id(group_id: str, partition: int) -> str:
    """The transactional id of ``group_id``'s producer for input partition ``partition``."""
    return f"{group_id}.{partition}"


class PartitionTransactions:
    """The transactional producers of the input partitions a member owns, one per partition."""

    def __init__(self, client_kwargs: dict[str, Any], group_id: str, *, linger_ms: int = 2) -> None:
        self._kwargs = client_kwargs
        self.group_id = group_id
        self._linger_ms = linger_ms
        self._producers: dict[int, AIOKafkaProducer] = {}
        self._opening = asyncio.Lock()
        self.commits = 0
        self.aborts = 0
        self.fenced = 0

    def owns(self, partition: int) -> bool:
        return partition in self._producers

    @property
    def partitions(self) -> list[int]:
        return sorted(self._producers)

    async def open(self, partitions: Iterable[int]) -> None:
        """Start a producer per partition (not open yet): each start fences the partition's previous
        owner and waits until the transaction it left open is aborted or committed."""
        async with self._opening:  # one start per id: a second would fence the first
            fresh = {
                p: AIOKafkaProducer(
                    **self._kwargs,
                    transactional_id=transactional_id(self.group_id, p),
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=self._linger_ms,
                    max_batch_size=BATCH_BYTES,
                )
                for p in set(partitions)
                if p not in self._producers
            }
            started = await asyncio.gather(
                *(producer.start() for producer in fresh.values()), return_exceptions=True
            )
            failed = None
            for (p, producer), outcome in zip(fresh.items(), started, strict=True):
                if isinstance(outcome, BaseException):
                    failed = outcome
                    await producer.stop()
                else:
                    self._producers[p] = producer
            if failed is not None:
                raise failed

    async def close(self, partitions: Iterable[int] | None = None) -> None:
        """Stop the producers of ``partitions`` (default: all); an open transaction is aborted.
        They leave the table before any await: a revocation and a shutdown may close at once."""
        chosen = list(self._producers) if partitions is None else list(partitions)
        leaving = [(p, self._producers.pop(p)) for p in chosen if p in self._producers]
        for p, producer in leaving:
            try:
                await producer.stop()
            except Exception as exc:  # a fenced or broken producer: nothing of it can commit anyway
                log.warning("stopping the transactional producer of partition %d: %s", p, exc)

    async def commit(
        self, partition: int, records: Sequence[OutRecord], offsets: dict[TopicPartition, int]
    ) -> None:
        """Write ``records`` and commit ``offsets`` for the group, atomically, with ``partition``'s
        producer. Raises :class:`Fenced` when the partition was taken over (its producer is then
        closed), or the broker's error after aborting (retriable: the caller keeps the records)."""
        producer = self._producers.get(partition)
        if producer is None:
            raise Fenced(f"partition {partition} has no producer here")
        try:
            await producer.begin_transaction()
            try:
                await _write(producer, records)
                if offsets:
                    await producer.send_offsets_to_transaction(offsets, self.group_id)
                await producer.commit_transaction()
            except (ProducerFenced, InvalidProducerEpoch):
                raise
            except Exception:
                self.aborts += 1
                await self._abort(partition, producer)
                raise
        except (ProducerFenced, InvalidProducerEpoch) as exc:
            self.fenced += 1
            await self.close([partition])
            raise Fenced(f"{transactional_id(self.group_id, partition)} fenced: {exc}") from exc
        self.commits += 1

    async def _abort(self, partition: int, producer: AIOKafkaProducer) -> None:
        """Abort the open transaction; a producer that cannot abort (a fatal error) is replaced,
        which aborts the transaction broker-side."""
        try:
            await producer.abort_transaction()
        except (ProducerFenced, InvalidProducerEpoch):
            raise
        except Exception as exc:
            log.warning(
                "aborting the transaction of partition %d failed (%s): reopening its producer", partition, exc
            )
            await self.close([partition])
            await self.open([partition])
