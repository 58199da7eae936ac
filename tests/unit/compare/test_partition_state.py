"""The comparator's exactly-once bookkeeping: each output's partition, the input positions a state
carries, the records a new owner skips on the re-read, and the pairs that left unpaired."""

from __future__ import annotations

import time

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from shadowlane.compare.join import Expired, Output
from shadowlane.compare.partition_state import (
    ReReadFilter,
    UnpairedLedger,
    partitions_of,
    positions,
    state_record,
)
from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.window_state import WindowState
from shadowlane.kafka.offsets import OffsetTracker
from shadowlane.windows.partitioned import PartitionedWindows

H1, H2 = "1" * 32, "2" * 32
REQ = TopicPartition("requests", 4)


def _comparison(req_hash: str, candidate: str, outcome: str = "shadow_timeout") -> Comparison:
    return Comparison(
        comparison_id=f"{req_hash}-{candidate}",
        req_hash=req_hash,
        candidate=candidate,
        ts_ms=0,
        complete=outcome == "joined",
        outcome=outcome,  # type: ignore[arg-type]
        prod_latency_ms=1.0,
        prod_status="200",
    )


def _out(req_hash: str, candidate: str, release: list[tuple[str, int, int]]) -> Output:
    return Expired("shadow_timeout", candidate, req_hash, None, None, release)


def _record(offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("requests", 4, offset, 0, 0, None, b"", None, 0, 0, ())


def test_a_requests_outputs_take_the_partition_of_its_last_one() -> None:
    outputs = [
        _out(H1, "a", []),
        _out(H1, "b", [("requests", 4, 17), ("shadow-results", 4, 30)]),
        _out(H2, "a", [("shadow-results", 1, 5)]),  # a result whose request never came
    ]
    comparisons = [_comparison(H1, "a"), _comparison(H1, "b"), _comparison(H2, "a")]
    assert partitions_of(outputs, comparisons) == [4, 4, 1]


def test_a_position_says_how_far_a_topic_was_read_and_what_still_waits() -> None:
    tracker = OffsetTracker()
    tracker.partition(REQ).add_many(range(10, 20))
    for offset in (10, 11, 13, 14, 15, 18):  # 12, 16, 17 and 19 wait for their pairs
        tracker.done(REQ, offset)
    (where,) = positions(tracker, {"requests": REQ}, {"requests": 12})
    assert (where.committed, where.read_until, where.waiting) == (12, 20, (12, 4, 1, 2))
    # never committed by this member: it started at its first record, which still waits
    fresh = OffsetTracker()
    fresh.partition(REQ).add_many([5, 6, 7])
    fresh.done(REQ, 6)
    (where,) = positions(fresh, {"requests": REQ}, {"requests": None})
    assert (where.committed, where.read_until, where.waiting) == (5, 8, (5, 2))


def test_the_next_owner_skips_what_was_compared_and_reads_what_was_waiting() -> None:
    tracker = OffsetTracker()
    tracker.partition(REQ).add_many(range(10, 20))
    for offset in (10, 11, 13, 14, 15, 18):
        tracker.done(REQ, offset)
    (where,) = positions(tracker, {"requests": REQ}, {"requests": 12})
    rereads = ReReadFilter()
    rereads.expect(REQ, where)
    kept, compared = rereads.keep(REQ, [_record(o) for o in range(12, 18)])
    assert [r.offset for r in kept] == [12, 16, 17]
    assert compared == [13, 14, 15]
    kept, compared = rereads.keep(REQ, [_record(o) for o in range(18, 23)])
    assert [r.offset for r in kept] == [19, 20, 21, 22]  # past read_until: everything is new
    assert compared == [18]
    kept, compared = rereads.keep(REQ, [_record(23)])
    assert ([r.offset for r in kept], compared) == ([23], [])


def test_unpaired_outcomes_travel_in_the_state_for_their_retention() -> None:
    now = time.time_ns() // 1_000_000
    ledger = UnpairedLedger(retention_ms=60_000)
    ledger.record(0, _comparison(H1, "a", "joined"), now)  # joined: both sides were read
    ledger.record(0, _comparison(H1, "b"), now - 70_000)
    ledger.record(0, _comparison(H2, "a", "request_missing"), now - 1_000)
    assert len(ledger) == 2
    assert [e.req_hash for e in ledger.entries(0, now)] == [H2]  # H1/b is past its retention
    state = decode(encode(state_record("g", 0, PartitionedWindows(1_000, 0), (), ledger)), WindowState)
    assert (state.group, state.partition) == ("g", 0)
    heir = UnpairedLedger(retention_ms=60_000)
    assert heir.restore(0, state.unpaired) == [(H2, "a")]
    heir.drop([0])
    assert len(heir) == 0
