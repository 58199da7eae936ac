"""Held results leave in offset order, only inside the committed prefix, and only once committed."""

from __future__ import annotations

from aiokafka import TopicPartition

from shadowlane.shadow.held_results import HeldResults

TP = TopicPartition("requests", 2)


def _result(offset: int) -> tuple[str, bytes | None, bytes, int | None]:
    return ("shadow-results", b"k", f"r{offset}".encode(), 2)


def test_only_results_inside_the_prefix_leave_and_only_once_settled() -> None:
    held = HeldResults()
    for offset in (7, 5, 9, 6):  # replays finish in any order
        held.hold(TP, offset, _result(offset))
    records, settle = held.inside(TP, 8)
    assert [record[2] for record in records] == [b"r5", b"r6", b"r7"]  # the values
    assert len(held) == 4  # an aborted transaction leaves them here for the next try
    settle()
    assert len(held) == 1
    assert held.inside(TP, None)[0] == []  # nothing committable: nothing leaves
    held.forget([TP])
    assert len(held) == 0
