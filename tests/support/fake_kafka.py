"""In-memory stand-ins for aiokafka's producer and its batches (no broker, no network)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Sent:
    topic: str
    value: bytes
    key: bytes | None
    partition: int | None = None
    headers: Any = None


@dataclass
class FakeBatch:
    """Stand-in for aiokafka's ``BatchBuilder``: ``append`` returns None once ``max_bytes`` is hit."""

    max_bytes: int
    records: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    headers: list[Any] = field(default_factory=list)  # each record's headers, in order
    size: int = 0
    closed: bool = False

    def append(
        self, *, key: bytes | None, value: bytes, timestamp: int | None = None, headers: Any = None
    ) -> object | None:
        if self.closed:
            raise RuntimeError("append to a closed batch")
        size = len(value) + len(key or b"")
        if self.records and self.size + size > self.max_bytes:
            return None
        self.records.append((key, value))
        self.headers.append(headers)
        self.size += size
        return object()

    def close(self) -> None:
        self.closed = True

    def record_count(self) -> int:
        return len(self.records)


def _resolved(result: object) -> asyncio.Future[Any]:
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    fut.set_result(result)
    return fut


@dataclass
class FakeProducer:
    """In-memory stand-in for ``AIOKafkaProducer``.

    Supports both ``send()`` and the batch API (``partitions_for`` / ``create_batch`` /
    ``send_batch``); every send returns an already-resolved future.
    """

    sink: list[Sent]
    fail_start: bool = False
    partitions: int = 6
    batch_bytes: int = 1 << 20
    started: bool = False
    stopped: int = 0
    flushed: int = 0

    async def start(self) -> None:
        if self.fail_start:
            raise ConnectionError("broker down (fake)")
        self.started = True

    async def stop(self) -> None:
        self.stopped += 1

    async def flush(self) -> None:
        self.flushed += 1

    async def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Any = None,
    ) -> asyncio.Future[Any]:
        self.sink.append(Sent(topic, value, key, partition, headers))
        return _resolved({"topic": topic, "offset": len(self.sink) - 1})

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.batch_bytes)

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> asyncio.Future[Any]:
        for (key, value), headers in zip(batch.records, batch.headers, strict=True):
            self.sink.append(Sent(topic, value, key, partition, headers))
        return _resolved({"topic": topic, "partition": partition})


@dataclass
class FakeProducerFactory:
    """Callable producer factory that records every producer it made."""

    fail_start: bool = False
    partitions: int = 6
    sink: list[Sent] = field(default_factory=list)
    made: list[FakeProducer] = field(default_factory=list)

    def __call__(self) -> FakeProducer:
        producer = FakeProducer(self.sink, fail_start=self.fail_start, partitions=self.partitions)
        self.made.append(producer)
        return producer
