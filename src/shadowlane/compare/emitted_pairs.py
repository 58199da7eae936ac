"""What was already compared on a partition: the pairs the compare topic holds since a time.

A partition's new owner reads them (``compare.dedupe_ttl_s``) into the join's finished pairs, so a
retried request's copy read there gets no second comparison, whichever member compared the first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from shadowlane.hashing import partition_for
from shadowlane.kafka.batching import partition_count
from shadowlane.kafka.history import read_since
from shadowlane.settings import TopicSettings

Pair = tuple[str, str]  # (req_hash, candidate)


def emitted_pair(value: bytes | None) -> list[Pair]:
    """The (``req_hash``, candidate) of a comparison record (nothing for anything else)."""
    try:
        data: Any = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return []
    if not isinstance(data, dict):
        return []
    req_hash, candidate = data.get("req_hash"), data.get("candidate")
    return [(req_hash, candidate)] if isinstance(req_hash, str) and isinstance(candidate, str) else []


async def emitted_since(
    client_kwargs: dict[str, Any],
    producer: AIOKafkaProducer,
    topics: TopicSettings,
    owned: Iterable[int],
    since_ms: int,
) -> list[Pair]:
    """The pairs of the requests partitions ``owned`` whose comparisons were written since
    ``since_ms`` (by any member)."""
    mine = set(owned)
    compare_count = await partition_count(producer, topics.compare_topic)
    request_count = await partition_count(producer, topics.requests_topic)
    # comparisons are keyed by req_hash like requests: the same partition numbers when the topics
    # have as many partitions, else every partition, filtered
    partitions = sorted(mine) if compare_count == request_count else list(range(compare_count))
    found = await read_since(client_kwargs, topics.compare_topic, partitions, since_ms, emitted_pair)
    return [
        pair
        for entries in found.values()
        for pair, _ts in entries
        if partition_for(pair[0], request_count) in mine
    ]
