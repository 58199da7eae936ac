"""Tracks in-flight offsets per partition and yields only the contiguous done prefix to commit.

Records of one partition are registered in fetch order; they may finish in any order (concurrent
handlers, joins waiting for their pair). ``committable()`` returns, per partition, the offset
just past the longest prefix that is done, so a commit never skips an unfinished record.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from aiokafka import TopicPartition


class _Partition:
    """One partition's registered offsets in fetch order (True once done) and the first of them.

    Invariant after every call: the first registered offset (``head``) is not done; a done
    prefix is dropped at once and ``next_commit`` moves past it. So marking any offset but the
    head is one dict write, and only the head's completion walks the prefix.
    """

    __slots__ = ("head", "next_commit", "pending")

    def __init__(self) -> None:
        self.pending: OrderedDict[int, bool] = OrderedDict()
        self.next_commit: int | None = None
        self.head: int | None = None

    def add(self, offset: int) -> None:
        pending = self.pending
        if offset not in pending:
            if not pending:
                self.head = offset
            pending[offset] = False

    def add_many(self, offsets: Iterable[int]) -> None:
        """:meth:`add` for offsets in fetch order."""
        pending = self.pending
        for offset in offsets:
            if offset not in pending:
                if not pending:
                    self.head = offset
                pending[offset] = False

    def done(self, offset: int) -> None:
        pending = self.pending
        if pending.get(offset) is not False:  # unknown, or done already: nothing changes
            return
        if offset != self.head:
            pending[offset] = True
            return
        pending.popitem(last=False)
        self.next_commit = offset + 1
        while pending:
            first = next(iter(pending))
            if not pending[first]:
                self.head = first
                return
            pending.popitem(last=False)
            self.next_commit = first + 1
        self.head = None


class OffsetTracker:
    """Per-partition contiguous-done-prefix bookkeeping; remembers what was already committed."""

    def __init__(self) -> None:
        self._parts: dict[TopicPartition, _Partition] = {}
        self._committed: dict[TopicPartition, int] = {}

    def add(self, tp: TopicPartition, offset: int) -> None:
        self.partition(tp).add(offset)

    def partition(self, tp: TopicPartition) -> _Partition:
        """The bookkeeping of one partition (``add`` / ``done`` on it skip the lookup per record)."""
        part = self._parts.get(tp)
        if part is None:
            part = self._parts[tp] = _Partition()
        return part

    def done(self, tp: TopicPartition, offset: int) -> None:
        part = self._parts.get(tp)
        if part is not None:
            part.done(offset)

    def done_refs(self, refs: Iterable[tuple[str, int, int]]) -> None:
        """:meth:`done` for many ``(topic, partition, offset)`` records: one lookup per run of one
        partition's records, and a record behind its partition's head (most of them, as pairs
        complete out of order) is marked in place without a call."""
        seen: dict[tuple[str, int], _Partition | None] = {}
        last_topic, last_partition, part = "", -1, None
        for topic, partition, offset in refs:
            if partition != last_partition or topic != last_topic:
                key = (topic, partition)
                if key in seen:
                    part = seen[key]
                else:
                    part = seen[key] = self._parts.get(TopicPartition(topic, partition))
                last_topic, last_partition = topic, partition
            if part is None:
                continue
            if offset != part.head and part.pending.get(offset) is False:
                part.pending[offset] = True  # _Partition.done's common case, inlined
            else:
                part.done(offset)

    def pending(self, tp: TopicPartition | None = None) -> int:
        if tp is not None:
            part = self._parts.get(tp)
            return sum(1 for v in part.pending.values() if not v) if part else 0
        return sum(self.pending(t) for t in self._parts)

    def oldest_pending(self, tp: TopicPartition) -> int | None:
        part = self._parts.get(tp)
        if part is None:
            return None
        for offset, finished in part.pending.items():
            if not finished:
                return offset
        return None

    def committable(self, only: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Offsets that advanced since the last :meth:`mark_committed`, ready for ``commit()``."""
        tps = self._parts.keys() if only is None else [t for t in only if t in self._parts]
        out: dict[TopicPartition, int] = {}
        for tp in tps:
            nxt = self._parts[tp].next_commit
            if nxt is not None and nxt > self._committed.get(tp, -1):
                out[tp] = nxt
        return out

    def position(self, tp: TopicPartition) -> tuple[int, list[int]] | None:
        """(the offset after the last registered one, the registered offsets not done yet, in
        order) of ``tp``; None when nothing of it is registered."""
        part = self._parts.get(tp)
        if part is None:
            return None
        if not part.pending:
            return (part.next_commit, []) if part.next_commit is not None else None
        waiting = [offset for offset, finished in part.pending.items() if not finished]
        return next(reversed(part.pending)) + 1, waiting

    def committed(self, tp: TopicPartition) -> int | None:
        """The last offset :meth:`mark_committed` recorded for ``tp`` (None: none yet)."""
        return self._committed.get(tp)

    def mark_committed(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, off in offsets.items():
            self._committed[tp] = max(off, self._committed.get(tp, -1))

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        """Drop partitions we no longer own (after revoke)."""
        for tp in tps:
            self._parts.pop(tp, None)
            self._committed.pop(tp, None)
