"""Test helpers: produce raw records and read a topic back, against the real broker."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord


async def produce(kwargs: dict[str, Any], topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(**kwargs, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        for fut in futures:
            await fut
    finally:
        await producer.stop()


async def read_topic(
    kwargs: dict[str, Any],
    topic: str,
    *,
    want: int,
    timeout_s: float = 60.0,
    settle_s: float = 0.0,
    distinct_keys: bool = False,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read from the beginning until ``want`` records (or distinct keys), then ``settle_s`` more,
    or until the timeout."""
    consumer = AIOKafkaConsumer(topic, **kwargs, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            count = len({r.key for r in out}) if distinct_keys else len(out)
            if count >= want:
                if settle_s <= 0:
                    break
                deadline = min(deadline, time.monotonic() + settle_s)
                settle_s = 0
            batches = await consumer.getmany(timeout_ms=300)
            for records in batches.values():
                out.extend(records)
    finally:
        await consumer.stop()
    return out
