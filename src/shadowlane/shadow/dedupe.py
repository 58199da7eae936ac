"""Retry storms replay once: which requests a shadow member replayed lately, per partition.

A prod client that retries sends the same request again, and the hook mirrors every copy under
the same ``req_hash``. Requests are partitioned by ``req_hash``, so every copy reaches the member
that owns its partition: :class:`RecentReplays` lets it replay the first copy and skip the others
whose prod timestamps lie within ``dedupe_ttl_s`` of it (counted ``duplicates_skipped``). A copy
that arrives while the first is still replaying is skipped too; should the first never finish
(the member dies), neither offset is committed past it, and the next owner replays the first.

A partition's new owner learns what its previous owner replayed from the shadow-results topic,
which is co-partitioned with the requests topic: the member reads that partition's results of
its candidate from the last TTL (:func:`shadowlane.kafka.history.read_since` with
:func:`replayed_by`) before it fetches any request of it.
Results still being produced when the partition moved are not there to read: re-replays after a
rebalance or a crash are bounded by the in-flight window.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from aiokafka import TopicPartition

MAX_PER_PARTITION = 500_000
"""Entries kept per partition, whatever the TTL (oldest dropped first): ~60 MB at most."""


class RecentReplays:
    """Per partition: ``req_hash`` → the prod timestamp of the copy replayed, within the TTL."""

    def __init__(self, ttl_ms: int, *, max_per_partition: int = MAX_PER_PARTITION) -> None:
        self.ttl_ms = ttl_ms
        self._max = max_per_partition
        self._seen: dict[TopicPartition, OrderedDict[str, int]] = {}
        self._newest: dict[TopicPartition, int] = {}

    @property
    def enabled(self) -> bool:
        return self.ttl_ms > 0

    def first(self, tp: TopicPartition, req_hash: str, ts_ms: int) -> bool:
        """True for the first copy of ``req_hash`` within the TTL (and remember it), else False."""
        if self.ttl_ms <= 0:
            return True
        seen = self._seen.setdefault(tp, OrderedDict())
        newest = max(self._newest.get(tp, ts_ms), ts_ms)
        self._newest[tp] = newest
        self._evict(seen, newest - self.ttl_ms)
        stamp = seen.get(req_hash)
        if stamp is not None and abs(ts_ms - stamp) <= self.ttl_ms:
            return False
        seen[req_hash] = ts_ms
        seen.move_to_end(req_hash)
        if len(seen) > self._max:
            seen.popitem(last=False)
        return True

    def _evict(self, seen: OrderedDict[str, int], horizon: int) -> None:
        while seen:
            oldest = next(iter(seen))
            if seen[oldest] >= horizon:
                return
            del seen[oldest]

    def learn(self, tp: TopicPartition, entries: Iterable[tuple[str, int]]) -> int:
        """Remember copies another member replayed (``req_hash``, timestamp); returns how many."""
        seen = self._seen.setdefault(tp, OrderedDict())
        count = 0
        for req_hash, ts_ms in sorted(entries, key=lambda entry: entry[1]):
            seen[req_hash] = ts_ms
            seen.move_to_end(req_hash)
            self._newest[tp] = max(self._newest.get(tp, ts_ms), ts_ms)
            count += 1
        while len(seen) > self._max:
            seen.popitem(last=False)
        return count

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self._seen.pop(tp, None)
            self._newest.pop(tp, None)

    def __len__(self) -> int:
        return sum(len(seen) for seen in self._seen.values())


def replayed_by(candidate: str) -> Callable[[bytes | None], list[str]]:
    """Picks the ``req_hash`` of a shadow result of ``candidate`` (nothing from another candidate's
    result, or from a record that is no result: that is the comparator's to dead-letter)."""

    def pick(value: bytes | None) -> list[str]:
        try:
            data: Any = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            return []
        if not isinstance(data, dict) or data.get("candidate") != candidate:
            return []
        req_hash = data.get("req_hash")
        return [req_hash] if isinstance(req_hash, str) else []

    return pick
