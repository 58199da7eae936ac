"""What the comparator keeps per input partition for exactly-once, and how a new owner takes it over.

A comparison is emitted as soon as its pair is complete, but its records are committed only once
every earlier record of their partitions is done too (a request may wait up to the join window
for its result). Each transaction of partition *p* therefore also writes, as *p*'s
:class:`~shadowlane.contracts.window_state.WindowState`:

- how far each input topic of *p* was read and which of those records were still waiting
  (:func:`positions`): the next owner reads again from the committed offsets, and skips every
  record before ``read_until`` that was not waiting (:class:`ReReadFilter`): its comparison is
  already out, and counted in the restored windows;
- the pairs that left without their other side (:class:`UnpairedLedger`): should that side turn
  up later, the join takes it for a duplicate instead of a second comparison;
- the open windows (:mod:`shadowlane.windows.partitioned`).

The state stays small: it grows with the records waiting for their pair, not with the pairs done.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from itertools import accumulate
from typing import Any

from aiokafka import TopicPartition

from shadowlane.compare.join import Output
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.window_state import InputPosition, UnpairedOutcome, WindowState
from shadowlane.kafka.offsets import OffsetTracker
from shadowlane.windows.partitioned import PartitionedWindows

INPUTS = ("requests", "shadow-results")


def partitions_of(outputs: Sequence[Output], comparisons: Sequence[Comparison]) -> list[int]:
    """The input partition of each comparison of a poll's outputs (aligned with them). A request's
    outputs leave together and only the last carries the records they release; the others take
    its partition."""
    refs: dict[str, int] = {}
    for out, comparison in zip(outputs, comparisons, strict=True):
        if out.release:
            refs[comparison.req_hash] = out.release[0][1]
    return [refs[comparison.req_hash] for comparison in comparisons]


def _deltas(offsets: list[int]) -> tuple[int, ...]:
    return tuple(b - a for a, b in zip([0, *offsets], offsets, strict=False))


def positions(
    tracker: OffsetTracker, inputs: dict[str, TopicPartition], committed: dict[str, int | None]
) -> tuple[InputPosition, ...]:
    """Per input topic (by its logical name in ``inputs``): the committed offset, how far it was
    read and the offsets still waiting, as the tracker has them now."""
    out = []
    for name, tp in inputs.items():
        where = tracker.position(tp)
        if where is None:
            continue
        read_until, waiting = where
        done = committed.get(name)
        if done is None and waiting:
            # nothing committed by this member yet: it started at its first record, still waiting
            done = waiting[0]
        if done is None:
            continue
        out.append(
            InputPosition(
                topic=name,  # type: ignore[arg-type]
                committed=done,
                read_until=max(read_until, done),
                waiting=_deltas([o for o in waiting if o >= done]),
            )
        )
    return tuple(out)


class ReReadFilter:
    """After a take-over: which records read again were compared already (skip them)."""

    def __init__(self) -> None:
        self._skip: dict[TopicPartition, tuple[int, set[int]]] = {}

    def expect(self, tp: TopicPartition, position: InputPosition) -> None:
        waiting = set(accumulate(position.waiting))
        if position.read_until > position.committed:
            self._skip[tp] = (position.read_until, waiting)

    def keep(self, tp: TopicPartition, records: list[Any]) -> tuple[list[Any], list[int]]:
        """(the records to ingest, the offsets to mark done at once)."""
        skip = self._skip.get(tp)
        if skip is None:
            return records, []
        until, waiting = skip
        if records and records[-1].offset + 1 >= until:
            del self._skip[tp]  # past the re-read: nothing further is skipped
        kept = [r for r in records if r.offset >= until or r.offset in waiting]
        if len(kept) == len(records):
            return records, []
        kept_offsets = {r.offset for r in kept}
        return kept, [r.offset for r in records if r.offset not in kept_offsets]

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self._skip.pop(tp, None)


class UnpairedLedger:
    """Per input partition: the pairs emitted without their other side, kept ``retention_ms``."""

    def __init__(self, retention_ms: int) -> None:
        self.retention_ms = retention_ms
        self._parts: dict[int, dict[tuple[str, str], int]] = {}

    def __len__(self) -> int:
        return sum(len(pairs) for pairs in self._parts.values())

    def record(self, partition: int, comparison: Comparison, now_ms: int) -> None:
        if comparison.outcome != "joined":
            self._parts.setdefault(partition, {})[(comparison.req_hash, comparison.candidate)] = now_ms

    def entries(self, partition: int, now_ms: int) -> tuple[UnpairedOutcome, ...]:
        pairs = self._parts.get(partition, {})
        horizon = now_ms - self.retention_ms
        for key in [key for key, at in pairs.items() if at < horizon]:
            del pairs[key]
        return tuple(UnpairedOutcome(req_hash=h, candidate=c, emitted_ms=at) for (h, c), at in pairs.items())

    def restore(self, partition: int, entries: Iterable[UnpairedOutcome]) -> list[tuple[str, str]]:
        """Take over a state's pairs; returns them as (req_hash, candidate) for the join."""
        pairs = self._parts.setdefault(partition, {})
        for entry in entries:
            pairs[(entry.req_hash, entry.candidate)] = entry.emitted_ms
        return [(entry.req_hash, entry.candidate) for entry in entries]

    def drop(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self._parts.pop(p, None)


def state_record(
    group: str,
    partition: int,
    windows: PartitionedWindows,
    where: tuple[InputPosition, ...],
    unpaired: UnpairedLedger,
) -> WindowState:
    now_ms = time.time_ns() // 1_000_000
    open_windows, closed_until, late = windows.state(partition)
    return WindowState(
        group=group,
        partition=partition,
        written_ms=now_ms,
        open_windows=open_windows,
        closed_until=closed_until,
        late=late,
        positions=where,
        unpaired=unpaired.entries(partition, now_ms),
    )


def state_key(group: str, partition: int) -> bytes:
    return f"{group}/{partition}".encode()
