"""Reads every partition of some topics between two timestamps, without a consumer group.

Start offsets come from ``offsets_for_times(start_ms)``; the stop offset of each partition is
``offsets_for_times(end_ms)`` (or the end of the log when nothing is that recent), fixed when the
read starts, so a live topic still gives a finite, repeatable read. Used by ``rescore`` (and by
anything else that re-reads history: reports, gates).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from shadowlane.kafka.admin import partition_ids


async def read_range(
    client_kwargs: dict[str, Any],
    topics: Sequence[str],
    start_ms: int,
    end_ms: int,
    *,
    poll_timeout_ms: int = 500,
) -> AsyncIterator[dict[TopicPartition, list[Any]]]:
    """Yield ``getmany`` batches (records in ``[start, stop)`` of each partition) until all are read."""
    ids = await partition_ids(client_kwargs, list(topics))
    partitions = [TopicPartition(topic, p) for topic in topics for p in ids.get(topic, ())]
    if not partitions:
        return
    consumer = AIOKafkaConsumer(
        **client_kwargs,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.offsets_for_times({tp: max(0, start_ms) for tp in partitions})
        stops = await consumer.offsets_for_times({tp: max(0, end_ms) for tp in partitions})
        firsts = {tp: starts[tp].offset if starts[tp] is not None else ends[tp] for tp in partitions}
        todo = {tp: stops[tp].offset if stops[tp] is not None else ends[tp] for tp in partitions}
        todo = {tp: stop for tp, stop in todo.items() if firsts[tp] < stop}
        if not todo:
            return
        consumer.assign(list(todo))
        for tp in todo:
            consumer.seek(tp, firsts[tp])
        while todo:
            batches = await consumer.getmany(*todo, timeout_ms=poll_timeout_ms)
            out: dict[TopicPartition, list[Any]] = {}
            for tp, records in batches.items():
                stop = todo.get(tp)
                if stop is None:
                    continue
                kept = [r for r in records if r.offset < stop]
                if kept:
                    out[tp] = kept
                if records and records[-1].offset >= stop - 1:
                    del todo[tp]
            for tp in list(todo):
                if await consumer.position(tp) >= todo[tp]:
                    del todo[tp]
            if out:
                yield out
    finally:
        # aiokafka's group-less coordinator raises CancelledError from stop() when its helper task
        # never got to run (a stop right after start): give it one loop turn first
        await asyncio.sleep(0)
        await consumer.stop()
