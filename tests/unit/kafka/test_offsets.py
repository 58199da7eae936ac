"""shadowlane/kafka/offsets.py: only the contiguous done prefix of each partition is committable."""

from __future__ import annotations

import random

import pytest
from aiokafka import TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowlane.kafka.offsets import OffsetTracker

TP0 = TopicPartition("t", 0)
TP1 = TopicPartition("t", 1)
TP2 = TopicPartition("u", 0)


def test_nothing_is_committable_before_anything_is_done() -> None:
    tracker = OffsetTracker()
    for off in range(3):
        tracker.add(TP0, off)
    assert tracker.committable() == {}
    assert tracker.pending() == 3
    assert tracker.oldest_pending(TP0) == 0


def test_out_of_order_completion_commits_only_the_contiguous_prefix() -> None:
    tracker = OffsetTracker()
    for off in range(10, 15):
        tracker.add(TP0, off)
    tracker.done(TP0, 12)
    tracker.done(TP0, 11)
    assert tracker.committable() == {}  # 10 still in flight
    assert tracker.oldest_pending(TP0) == 10
    tracker.done(TP0, 10)
    assert tracker.committable() == {TP0: 13}  # 10, 11, 12 done; 13 not
    assert tracker.oldest_pending(TP0) == 13
    tracker.done(TP0, 14)
    assert tracker.committable() == {TP0: 13}
    tracker.done(TP0, 13)
    assert tracker.committable() == {TP0: 15}
    assert tracker.oldest_pending(TP0) is None


def test_done_for_an_unknown_offset_or_partition_is_ignored() -> None:
    tracker = OffsetTracker()
    tracker.add(TP0, 5)
    tracker.done(TP0, 99)
    tracker.done(TP1, 5)
    assert tracker.committable() == {}
    assert tracker.pending(TP0) == 1
    assert tracker.pending(TP1) == 0


def test_adding_an_offset_twice_does_not_duplicate_it() -> None:
    tracker = OffsetTracker()
    tracker.add(TP0, 0)
    tracker.add(TP0, 0)
    assert tracker.pending(TP0) == 1
    tracker.done(TP0, 0)
    assert tracker.committable() == {TP0: 1}
    assert tracker.pending(TP0) == 0


def test_committable_returns_only_partitions_that_advanced() -> None:
    tracker = OffsetTracker()
    for tp in (TP0, TP1, TP2):
        for off in range(3):
            tracker.add(tp, off)
    tracker.done(TP0, 0)
    tracker.done(TP1, 1)  # not a prefix
    assert tracker.committable() == {TP0: 1}

    tracker.mark_committed({TP0: 1})
    assert tracker.committable() == {}  # nothing advanced since the commit

    tracker.done(TP1, 0)
    tracker.done(TP2, 0)
    assert tracker.committable() == {TP1: 2, TP2: 1}
    assert tracker.committable(only=[TP1]) == {TP1: 2}
    assert tracker.committable(only=[TopicPartition("zzz", 9)]) == {}


def test_mark_committed_never_moves_backwards() -> None:
    tracker = OffsetTracker()
    for off in range(4):
        tracker.add(TP0, off)
        tracker.done(TP0, off)
    assert tracker.committable() == {TP0: 4}
    tracker.mark_committed({TP0: 4})
    tracker.mark_committed({TP0: 2})  # a stale, late commit ack
    assert tracker.committable() == {}
    tracker.add(TP0, 4)
    tracker.done(TP0, 4)
    assert tracker.committable() == {TP0: 5}


def test_forget_drops_partition_state() -> None:
    tracker = OffsetTracker()
    tracker.add(TP0, 0)
    tracker.add(TP0, 1)
    tracker.add(TP1, 0)
    tracker.done(TP0, 0)
    tracker.mark_committed({TP0: 1})
    tracker.forget([TP0])
    assert tracker.pending(TP0) == 0
    assert tracker.pending() == 1
    assert tracker.oldest_pending(TP0) is None
    assert tracker.committable() == {}
    # re-assigned later: starts from scratch, the old committed mark is gone too
    tracker.add(TP0, 0)
    tracker.done(TP0, 0)
    assert tracker.committable() == {TP0: 1}


def test_pending_counts_unfinished_records() -> None:
    tracker = OffsetTracker()
    for off in range(5):
        tracker.add(TP0, off)
    for off in range(2):
        tracker.add(TP1, off)
    assert tracker.pending() == 7
    tracker.done(TP0, 3)  # done but behind an unfinished prefix
    assert tracker.pending(TP0) == 4
    assert tracker.pending() == 6
    tracker.done(TP1, 0)
    tracker.done(TP1, 1)
    assert tracker.pending(TP1) == 0
    assert tracker.pending() == 4
    assert tracker.pending(TopicPartition("nope", 0)) == 0


@pytest.mark.parametrize("seed", range(40))
def test_random_completion_order_never_commits_past_an_unfinished_offset(seed: int) -> None:
    rng = random.Random(seed)
    tracker = OffsetTracker()
    parts = [TP0, TP1, TP2]
    offsets: dict[TopicPartition, list[int]] = {}
    for tp in parts:
        start = rng.randrange(0, 1000)
        offsets[tp] = list(range(start, start + rng.randrange(1, 60)))
        for off in offsets[tp]:
            tracker.add(tp, off)
    finished: dict[TopicPartition, set[int]] = {tp: set() for tp in parts}
    committed: dict[TopicPartition, int] = {}
    order = [(tp, off) for tp in parts for off in offsets[tp]]
    rng.shuffle(order)
    for tp, off in order:
        tracker.done(tp, off)
        finished[tp].add(off)
        if rng.random() < 0.3:
            continue  # do not look every time
        for ctp, nxt in tracker.committable().items():
            # every offset below the commit point is finished, and the point is the longest prefix
            assert all(o in finished[ctp] for o in offsets[ctp] if o < nxt)
            assert nxt == offsets[ctp][0] + _prefix_len(offsets[ctp], finished[ctp])
            assert nxt > committed.get(ctp, -1)
            committed[ctp] = nxt
            tracker.mark_committed({ctp: nxt})
        for tp2 in parts:
            expected_pending = len(offsets[tp2]) - len(finished[tp2])
            assert tracker.pending(tp2) == expected_pending
    # at the end everything is done: the final commit is just past the last offset
    final = {**committed, **tracker.committable()}
    assert final == {tp: offsets[tp][-1] + 1 for tp in parts}
    assert tracker.pending() == 0


def _prefix_len(offsets: list[int], finished: set[int]) -> int:
    n = 0
    for off in offsets:
        if off not in finished:
            break
        n += 1
    return n


def test_done_refs_marks_records_of_several_partitions_like_done_one_by_one() -> None:
    one_by_one, batched = OffsetTracker(), OffsetTracker()
    refs = [("t", 0, 2), ("u", 0, 0), ("t", 0, 0), ("t", 1, 5), ("t", 0, 1), ("x", 3, 0)]
    for tracker in (one_by_one, batched):
        for tp, offsets in ((TP0, range(4)), (TP1, range(5, 7)), (TP2, range(2))):
            for off in offsets:
                tracker.add(tp, off)
    for topic, partition, offset in refs:
        one_by_one.done(TopicPartition(topic, partition), offset)
    batched.done_refs(refs)  # ("x", 3) is not tracked: ignored, as done() ignores it
    assert batched.committable() == one_by_one.committable() == {TP0: 3, TP1: 6, TP2: 1}
    assert batched.pending() == one_by_one.pending() == 3


@settings(max_examples=300, deadline=None)
@given(
    registered=st.lists(st.integers(0, 12), max_size=14),
    refs=st.lists(
        st.tuples(st.sampled_from([("t", 0), ("t", 1), ("u", 0)]), st.integers(0, 14)), max_size=40
    ),
    cut=st.integers(0, 40),
)
def test_done_refs_equals_done_one_by_one(
    registered: list[int], refs: list[tuple[tuple[str, int], int]], cut: int
) -> None:
    """Generated: refs in any order, repeated, unknown or behind the head, in one or two calls."""
    one_by_one, batched = OffsetTracker(), OffsetTracker()
    for tp in (TP0, TP1):
        for offset in registered:
            one_by_one.add(tp, offset)
        batched.partition(tp).add_many(registered)  # as the comparator registers a poll
    flat = [(topic, partition, offset) for (topic, partition), offset in refs]
    for topic, partition, offset in flat:
        one_by_one.done(TopicPartition(topic, partition), offset)
    batched.done_refs(flat[:cut])
    batched.done_refs(flat[cut:])
    for tp in (TP0, TP1):
        mine, theirs = batched.partition(tp), one_by_one.partition(tp)
        assert (mine.head, mine.next_commit, list(mine.pending.items())) == (
            theirs.head,
            theirs.next_commit,
            list(theirs.pending.items()),
        )


class _Reference:
    """The contiguous-done-prefix rule spelled out plainly: offsets in the order first added."""

    def __init__(self) -> None:
        self.order: list[int] = []
        self.finished: set[int] = set()
        self.next_commit: int | None = None

    def add(self, offset: int) -> None:
        if offset not in self.order:
            self.order.append(offset)

    def done(self, offset: int) -> None:
        if offset in self.order:
            self.finished.add(offset)
        while self.order and self.order[0] in self.finished:
            first = self.order.pop(0)
            self.finished.discard(first)
            self.next_commit = first + 1


@given(st.lists(st.tuples(st.booleans(), st.integers(min_value=0, max_value=12)), max_size=60))
@settings(max_examples=400, deadline=None)
def test_adds_and_dones_interleaved_in_any_order_match_the_plain_rule(steps: list[tuple[bool, int]]) -> None:
    # adds after the prefix drained, offsets added out of order, done twice, done before added
    tracker, reference = OffsetTracker(), _Reference()
    for is_add, offset in steps:
        if is_add:
            tracker.add(TP0, offset)
            reference.add(offset)
        else:
            tracker.done(TP0, offset)
            reference.done(offset)
        assert tracker.pending(TP0) == len(reference.order) - len(reference.finished)
        assert tracker.oldest_pending(TP0) == (reference.order[0] if reference.order else None)
        expected = {} if reference.next_commit is None else {TP0: reference.next_commit}
        assert tracker.committable() == expected
