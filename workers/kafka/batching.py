"""Per-partition record batches for producers that key everything by ``req_hash``.

aiokafka's ``send()`` costs ~25 µs per message in Python (partitioner, accumulator bookkeeping);
appending to a ``BatchBuilder`` and shipping it with ``send_batch`` costs a fraction of that.
:class:`PartitionBatcher` groups values by :func:`~workers.hashing.partition_for` and ships a
batch when it is full or on :meth:`flush`, returning each shipped batch's delivery future and
record count so the caller can count acknowledgements.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer

from workers.hashing import partition_for

Shipped = tuple["asyncio.Future[Any]", int]


class RecordTooLarge(ValueError):
    """A single record does not fit in an empty batch (``max_batch_size``)."""


class PartitionBatcher:
    def __init__(self, producer: AIOKafkaProducer, topic: str, partitions: int) -> None:
        self._producer = producer
        self._topic = topic
        self._partitions = partitions
        self._open: dict[int, Any] = {}

    async def add(self, req_hash: str, value: bytes) -> list[Shipped]:
        """Append one record; returns the batch shipped to make room, if any."""
        partition = partition_for(req_hash, self._partitions)
        key = req_hash.encode()
        batch = self._open.get(partition)
        if batch is None:
            batch = self._open[partition] = self._producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is not None:
            return []
        shipped = await self._ship(partition, batch)
        batch = self._open[partition] = self._producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:
            del self._open[partition]
            raise RecordTooLarge(f"record of {len(value)} bytes exceeds the producer's max_batch_size")
        return shipped

    async def flush(self) -> list[Shipped]:
        """Ship every open batch."""
        shipped: list[Shipped] = []
        for partition, batch in list(self._open.items()):
            shipped.extend(await self._ship(partition, batch))
        self._open.clear()
        return shipped

    async def _ship(self, partition: int, batch: Any) -> list[Shipped]:
        batch.close()
        count = int(batch.record_count())
        if not count:
            return []
        fut = await self._producer.send_batch(batch, self._topic, partition=partition)
        return [(fut, count)]


async def partition_count(producer: AIOKafkaProducer, topic: str) -> int:
    return len(await producer.partitions_for(topic))
