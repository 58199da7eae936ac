"""Shadow results waiting for their offsets: what exactly-once commits, and when.

A result is kept here from the end of its replay until its record is inside its partition's
done prefix; the partition's next transaction then writes it with that prefix. So every result on
the topic has its offset committed with it, and a crash loses only results whose records the
partition's next owner replays again: never one twice on the topic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from aiokafka import TopicPartition

from shadowlane.kafka.transactions import OutRecord


class HeldResults:
    def __init__(self) -> None:
        self._parts: dict[TopicPartition, dict[int, OutRecord]] = {}

    def __len__(self) -> int:
        return sum(len(held) for held in self._parts.values())

    def hold(self, tp: TopicPartition, offset: int, record: OutRecord) -> None:
        self._parts.setdefault(tp, {})[offset] = record

    def inside(self, tp: TopicPartition, upto: int | None) -> tuple[list[OutRecord], Callable[[], None]]:
        """The results of ``tp``'s records before ``upto`` in offset order, and what forgets them
        once they are committed."""
        held = self._parts.get(tp, {})
        offsets = sorted(offset for offset in held if upto is not None and offset < upto)

        def settle() -> None:
            for offset in offsets:
                held.pop(offset, None)

        return [held[offset] for offset in offsets], settle

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self._parts.pop(tp, None)
