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
    or until the timeout; what a ``read_committed`` reader sees (aborted transactions left out)."""
    consumer = AIOKafkaConsumer(
        topic,
        **kwargs,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
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


async def delete_topics_with_prefix(kwargs: dict[str, Any], prefix: str) -> None:
    """Delete every topic whose name starts with ``prefix`` (a test's own topics), best effort.

    A test run creates thousands of partitions; a local broker that kept them all would run out
    of memory maps after a few runs of the suite."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**kwargs)
    try:
        await admin.start()
        names = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    except Exception:  # cleanup only: a leftover topic is harmless to the next test (unique names)
        pass
    finally:
        await admin.close()
