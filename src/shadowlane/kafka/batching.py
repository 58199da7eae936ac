"""Per-partition record batches for producers that key everything by ``req_hash``.

aiokafka's ``send()`` costs ~25 µs per message in Python (partitioner, accumulator bookkeeping);
appending to a ``BatchBuilder`` and shipping it with ``send_batch`` costs a fraction of that.
:class:`PartitionBatcher` groups values by :func:`~shadowlane.hashing.partition_for` and ships a
batch when it is full or on :meth:`flush`, returning each shipped batch's delivery future and
record count so the caller can count acknowledgements. A record may carry headers (a third
item: the trace context, :mod:`shadowlane.tracing`). When shipping fails midway,
:class:`ShipFailed` still hands over what the same call had shipped, so nothing is counted twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from shadowlane.hashing import partition_for

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

Shipped = tuple["asyncio.Future[Any]", int]
Headers = Sequence[tuple[str, bytes]]
Record = tuple[str, bytes] | tuple[str, bytes, Headers | None]
"""(req_hash, value) or (req_hash, value, headers): one record to append."""


class RecordTooLarge(ValueError):
    """A single record does not fit in an empty batch (``max_batch_size``).

    ``shipped`` holds the batches the same call shipped before it met that record; the record's
    partition keeps its open batch, which the next call or :meth:`PartitionBatcher.flush` ships.
    """

    def __init__(self, message: str, shipped: list[Shipped]) -> None:
        super().__init__(message)
        self.shipped = shipped


class ShipFailed(Exception):
    """The producer refused a batch (broker gone, timeout, closed producer).

    ``shipped`` holds the batches the same call shipped before; the refused batch is lost, and
    so are the open batches of a :meth:`PartitionBatcher.flush` that had not been shipped yet.
    """

    def __init__(self, cause: Exception, shipped: list[Shipped]) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.shipped = shipped


class PartitionBatcher:
    def __init__(self, producer: AIOKafkaProducer, topic: str, partitions: int) -> None:
        self._producer = producer
        self._topic = topic
        self._partitions = partitions
        self._open: dict[int, Any] = {}

    async def add(self, req_hash: str, value: bytes, headers: Headers | None = None) -> list[Shipped]:
        """Append one record; returns the batch shipped to make room, if any."""
        return await self.add_many(((req_hash, value, headers),))

    async def add_many(self, records: Iterable[Record]) -> list[Shipped]:
        """Append records in order; returns the batches shipped to make room. Appending is
        synchronous, so a poll's records cost no coroutine each: only a full batch awaits."""
        shipped: list[Shipped] = []
        open_batches = self._open
        partitions = self._partitions
        for record in records:
            req_hash, value = record[0], record[1]
            headers = record[2] if len(record) > 2 else None
            partition = partition_for(req_hash, partitions)
            key = req_hash.encode()
            batch = open_batches.get(partition)
            if batch is None:
                batch = open_batches[partition] = self._producer.create_batch()
            if append_record(batch, key, value, headers) is not None:
                continue
            # the open batch is full: the record goes into a fresh one, which it must fit
            fresh = self._producer.create_batch()
            if append_record(fresh, key, value, headers) is None:
                raise RecordTooLarge(
                    f"record of {len(value)} bytes exceeds the producer's max_batch_size", shipped
                )
            open_batches[partition] = fresh
            try:
                shipped.extend(await self._ship(partition, batch))
            except Exception as exc:
                raise ShipFailed(exc, shipped) from exc
        return shipped

    async def flush(self) -> list[Shipped]:
        """Ship every open batch."""
        shipped: list[Shipped] = []
        for partition in list(self._open):
            batch = self._open.pop(partition)
            try:
                shipped.extend(await self._ship(partition, batch))
            except Exception as exc:
                self._open.clear()
                raise ShipFailed(exc, shipped) from exc
        return shipped

    async def _ship(self, partition: int, batch: Any) -> list[Shipped]:
        batch.close()
        count = int(batch.record_count())
        if not count:
            return []
        fut = await self._producer.send_batch(batch, self._topic, partition=partition)
        return [(fut, count)]


def append_record(batch: Any, key: bytes | None, value: bytes, headers: Headers | None) -> Any:
    """``batch.append`` of one record (the headers passed only when there are any); None: full."""
    if headers:
        return batch.append(key=key, value=value, timestamp=None, headers=headers)
    return batch.append(key=key, value=value, timestamp=None)


async def partition_count(producer: AIOKafkaProducer, topic: str) -> int:
    return len(await producer.partitions_for(topic))
