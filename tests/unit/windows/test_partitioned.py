"""Windows per input partition: each partition's summaries, state that rebuilds them exactly, and
alerts judged on the merge of a member's partials."""

from __future__ import annotations

import random

from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.window_state import WindowState
from shadowlane.windows.partitioned import PartitionedWindows
from tests.support.summaries import comparison

KEYLESS = {"summary_id", "member", "partitions"}


def _at(i: int, rng: random.Random, ts_ms: int):  # type: ignore[no-untyped-def]
    return comparison(i, rng).model_copy(update={"ts_ms": ts_ms})


def test_each_partition_has_its_own_windows_and_summaries() -> None:
    rng = random.Random(3)
    windows = PartitionedWindows(1_000, 0, member="m")
    windows.add_many(0, [_at(i, rng, 10 * i) for i in range(50)])
    windows.add_many(1, [_at(i, rng, 10 * i) for i in range(50, 80)])
    closed = windows.advance(1_000)
    assert [(p, s.partitions, s.count) for p, s in closed] == [(0, (0,), 50), (1, (1,), 30)]
    assert windows.open_windows == 0


def test_a_window_the_watermark_passed_is_closed_on_every_partition() -> None:
    rng = random.Random(5)
    windows = PartitionedWindows(1_000, 500)
    windows.add_many(0, [_at(0, rng, 100)])
    assert len(windows.advance(1_500)) == 1
    # partition 3 never had data in [0, 1000): its comparison for that window is late all the same
    assert windows.add_many(3, [_at(1, rng, 200)]) == 1
    assert windows.add_many(3, [_at(2, rng, 1_200)]) == 0  # [1000, 2000) is still open
    assert windows.late_total == 1
    windows.add_many(0, [_at(3, rng, 1_300)])
    closed = windows.advance(2_500)
    assert sorted(p for p, _s in closed) == [0, 3]
    assert sum(s.late for _p, s in closed) == 1  # reported once, by the key's next summary


def test_state_restored_elsewhere_closes_the_same_summary_as_an_uninterrupted_run() -> None:
    rng = random.Random(7)
    items = [_at(i, rng, 5 * i) for i in range(180)]  # 0 .. 895 ms: one window
    whole = PartitionedWindows(1_000, 0, member="a")
    whole.add_many(2, items)
    expected = whole.advance(2_000)

    before = PartitionedWindows(1_000, 0, member="a")
    before.add_many(2, items[:120])
    open_windows, closed_until, late = before.state(2)
    state = WindowState(group="g", partition=2, written_ms=1, open_windows=open_windows,
                        closed_until=closed_until, late=late)  # fmt: skip
    state = decode(encode(state), WindowState)  # through the wire, as the next owner reads it
    after = PartitionedWindows(1_000, 0, member="b")
    after.restore(2, state.open_windows, state.closed_until, state.late)
    after.add_many(2, items[120:])
    got = after.advance(2_000)
    assert len(got) == len(expected) == 1
    mine = got[0][1].model_dump(exclude=KEYLESS)
    assert mine == expected[0][1].model_dump(exclude=KEYLESS)
    assert got[0][1].count == 180


def test_closed_windows_and_late_counts_survive_a_restore() -> None:
    rng = random.Random(9)
    before = PartitionedWindows(1_000, 0)
    before.add_many(0, [_at(0, rng, 100)])
    assert len(before.advance(1_000)) == 1
    assert before.add_many(0, [_at(1, rng, 200)]) == 1  # late: its window is out
    after = PartitionedWindows(1_000, 0)
    after.restore(0, *before.state(0))
    assert after.add_many(0, [_at(2, rng, 300)]) == 1  # still closed after the move
    after.add_many(0, [_at(3, rng, 1_100)])
    (summary,) = [s for _p, s in after.advance(2_000)]
    assert summary.late == 2  # both late ones ride on the key's next summary


def test_alerts_are_judged_on_the_merge_of_the_partials_closed_together() -> None:
    rng = random.Random(11)
    windows = PartitionedWindows(1_000, 0)
    for partition in (3, 1, 2):
        windows.add_many(partition, [_at(i, rng, 10 * i) for i in range(10)])
    closed = windows.advance(1_000)
    assert len(closed) == 3
    ((partition, merged),) = PartitionedWindows.alertable(closed)
    assert partition == 1  # the lowest: its transaction carries the alert
    assert merged.count == 30
    assert merged.partitions == (1, 2, 3)
