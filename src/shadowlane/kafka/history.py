"""What a topic recorded lately, per partition: how a partition's new owner learns what its
previous owner already did (the shadow worker's recent replays, the comparator's emitted pairs).

:func:`read_since` reads the given partitions from the first record at or after ``since_ms`` up to
the end offsets of when it started, with a consumer of its own (no group, nothing committed), and
hands each record's value to ``pick``, which returns the keys it finds in it (none for a record
it does not want or cannot read). It is bounded by ``timeout_s``: what it could not read in time
is logged, and the caller proceeds with what it has.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger(__name__)

T = TypeVar("T")
READ_TIMEOUT_S = 30.0


async def read_since(
    client_kwargs: dict[str, Any],
    topic: str,
    partitions: Iterable[int],
    since_ms: int,
    pick: Callable[[bytes | None], list[T]],
    *,
    timeout_s: float = READ_TIMEOUT_S,
) -> dict[int, list[tuple[T, int]]]:
    """Per partition: (what ``pick`` found, record timestamp) for the records since ``since_ms``."""
    tps = [TopicPartition(topic, p) for p in partitions]
    found: dict[int, list[tuple[T, int]]] = {tp.partition: [] for tp in tps}
    if not tps:
        return found
    consumer = AIOKafkaConsumer(
        **client_kwargs, enable_auto_commit=False, group_id=None, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        starts = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
        ends = await consumer.end_offsets(tps)
        pending: set[TopicPartition] = set()
        for tp in tps:
            start = starts.get(tp)
            if start is not None and start.offset < ends[tp]:
                consumer.seek(tp, start.offset)
                pending.add(tp)
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            batches = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < ends[tp]:
                        found[tp.partition].extend((item, record.timestamp) for item in pick(record.value))
            for tp in list(pending):  # transaction markers take offsets: the position says when it is read
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        if pending:
            log.warning("reading %s timed out (%.0fs, %d partitions left)", topic, timeout_s, len(pending))
    finally:
        await consumer.stop()
    return found


async def read_latest(
    client_kwargs: dict[str, Any],
    topic: str,
    partition: int,
    key: bytes,
    *,
    timeout_s: float = READ_TIMEOUT_S,
) -> bytes | None:
    """The value of the newest committed record with ``key`` in one partition (None: there is
    none), read backwards from the end in growing steps: on a compacted state topic the newest
    record is almost always among the last few."""
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(
        **client_kwargs, enable_auto_commit=False, group_id=None, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        first = (await consumer.beginning_offsets([tp]))[tp]
        high = (await consumer.end_offsets([tp]))[tp]
        step = 32
        deadline = time.monotonic() + timeout_s
        while high > first:
            low = max(first, high - step)
            consumer.seek(tp, low)
            found: bytes | None = None
            while await consumer.position(tp) < high:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {topic}[{partition}] took over {timeout_s:.0f}s")
                batches = await consumer.getmany(tp, timeout_ms=500)
                for record in batches.get(tp, ()):
                    if record.offset < high and record.key == key:
                        found = record.value
            if found is not None:
                return found
            high, step = low, step * 4
        return None
    finally:
        await consumer.stop()
