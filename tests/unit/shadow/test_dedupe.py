"""shadowlane/shadow/dedupe.py: copies of a request within the TTL replay once per partition
owner; what another member replayed can be learnt; memory stays bounded."""

from __future__ import annotations

import orjson
from aiokafka import TopicPartition

from shadowlane.contracts.codec import encode
from shadowlane.shadow.dedupe import RecentReplays, replayed_by
from tests.support.factories import envelope, result

TP = TopicPartition("requests", 0)
OTHER = TopicPartition("requests", 1)


def test_copies_within_the_ttl_are_not_first() -> None:
    recent = RecentReplays(1_000)
    assert recent.first(TP, "h1", 10_000)
    assert not recent.first(TP, "h1", 10_000)  # a retry, same prod time
    assert not recent.first(TP, "h1", 10_900)  # a retry 0.9 s later
    assert recent.first(TP, "h2", 10_900)
    assert recent.first(OTHER, "h1", 10_000)  # per partition (a request lives on one)


def test_a_copy_past_the_ttl_replays_again() -> None:
    recent = RecentReplays(1_000)
    assert recent.first(TP, "h1", 10_000)
    assert recent.first(TP, "h1", 11_001)


def test_entries_older_than_the_ttl_are_evicted() -> None:
    recent = RecentReplays(1_000)
    for i in range(100):
        recent.first(TP, f"h{i}", 10_000 + i)
    recent.first(TP, "late", 20_000)
    assert len(recent) == 1


def test_memory_is_capped_per_partition() -> None:
    recent = RecentReplays(10**9, max_per_partition=10)
    for i in range(50):
        recent.first(TP, f"h{i}", i)
    assert len(recent) == 10
    assert recent.first(TP, "h0", 50)  # the oldest went first
    assert not recent.first(TP, "h49", 50)


def test_a_zero_ttl_turns_it_off() -> None:
    recent = RecentReplays(0)
    assert not recent.enabled
    assert recent.first(TP, "h1", 1)
    assert recent.first(TP, "h1", 1)


def test_learnt_replays_are_copies_and_forget_drops_them() -> None:
    recent = RecentReplays(60_000)
    assert recent.learn(TP, [("h1", 5_000), ("h2", 4_000)]) == 2
    assert not recent.first(TP, "h1", 5_100)
    assert not recent.first(TP, "h2", 5_100)
    recent.forget([TP])
    assert recent.first(TP, "h1", 5_100)


def test_replayed_by_reads_its_candidates_results_only() -> None:
    env = envelope(1)
    pick = replayed_by("cand")
    assert pick(encode(result(env, "cand"))) == [env.req_hash]
    assert pick(encode(result(env, "other"))) == []
    assert pick(b"\x00not json") == []
    assert pick(None) == []
    assert pick(orjson.dumps({"candidate": "cand", "req_hash": 7})) == []
    assert pick(orjson.dumps([1, 2])) == []
