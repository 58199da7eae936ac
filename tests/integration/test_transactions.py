"""Exactly-once output on the real broker: a partition's outputs and offsets commit together, its
next owner fences the previous one and aborts what it left open, and ``read_latest`` finds a
partition's newest committed state."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shadowlane.kafka.history import read_latest
from shadowlane.kafka.transactions import Fenced, PartitionTransactions, transactional_id
from shadowlane.settings import Settings

pytestmark = pytest.mark.integration


async def _committed_values(kwargs: dict[str, Any], topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        **kwargs, enable_auto_commit=False, isolation_level="read_committed", auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        values: list[bytes] = []
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(tp, timeout_ms=500)).values():
                values.extend(r.value for r in records if r.value is not None)
        return values
    finally:
        await consumer.stop()


async def _group_offset(kwargs: dict[str, Any], group: str, tp: TopicPartition) -> int | None:
    consumer = AIOKafkaConsumer(**kwargs, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(tp)
        return offset
    finally:
        await consumer.stop()


@pytest.mark.timeout(120)
async def test_outputs_and_offsets_commit_together_and_the_next_owner_fences_the_last(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    t = it_settings.topics
    group = f"it-txn-{uuid.uuid4().hex[:8]}"
    source = TopicPartition(t.requests_topic, 0)
    old, new = PartitionTransactions(kafka_kwargs, group), PartitionTransactions(kafka_kwargs, group)
    try:
        await old.open([0])
        await old.commit(0, [(t.compare_topic, b"k", b"first", 0)], {source: 5})
        assert await _group_offset(kafka_kwargs, group, source) == 5

        await new.open([0])  # the partition moved: the old owner is a zombie from here on
        with pytest.raises(Fenced):
            await old.commit(0, [(t.compare_topic, b"k", b"zombie", 0)], {source: 9})
        assert not old.owns(0)
        await new.commit(0, [(t.compare_topic, b"k", b"second", 0)], {source: 7})
    finally:
        await old.close()
        await new.close()
    assert await _committed_values(kafka_kwargs, t.compare_topic) == [b"first", b"second"]
    assert await _group_offset(kafka_kwargs, group, source) == 7
    assert (old.fenced, new.commits) == (1, 1)


@pytest.mark.timeout(120)
async def test_a_transaction_left_open_by_a_crash_is_aborted_when_the_partition_is_taken_over(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    t = it_settings.topics
    group = f"it-txn-{uuid.uuid4().hex[:8]}"
    crashed = AIOKafkaProducer(**kafka_kwargs, transactional_id=transactional_id(group, 0))
    await crashed.start()
    await crashed.begin_transaction()
    await crashed.send_and_wait(t.compare_topic, b"half-done", key=b"k", partition=0)
    # no commit, no abort: the process died here (its producer is simply never used again)
    heir = PartitionTransactions(kafka_kwargs, group)
    try:
        await heir.open([0])  # aborts the open transaction instead of waiting for its timeout
        await heir.commit(0, [(t.compare_topic, b"k", b"redone", 0)], {})
    finally:
        await heir.close()
        await crashed.stop()
    assert await _committed_values(kafka_kwargs, t.compare_topic) == [b"redone"]


@pytest.mark.timeout(120)
async def test_read_latest_finds_the_newest_committed_record_of_a_key(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    topic = it_settings.topics.compare_state_topic
    group = f"it-txn-{uuid.uuid4().hex[:8]}"
    writer = PartitionTransactions(kafka_kwargs, group)
    try:
        await writer.open([0])
        for i in range(150):  # k1's newest is far back from the end: the read steps back further
            key = b"k1" if i < 20 else b"k2"
            await writer.commit(0, [(topic, key, f"{key.decode()}-{i}".encode(), 0)], {})
        loser = AIOKafkaProducer(**kafka_kwargs, transactional_id=transactional_id(group, 1))
        await loser.start()
        await loser.begin_transaction()
        await loser.send_and_wait(topic, b"k1-aborted", key=b"k1", partition=0)
        await loser.abort_transaction()
        await loser.stop()
    finally:
        await writer.close()
    assert await read_latest(kafka_kwargs, topic, 0, b"k1") == b"k1-19"
    assert await read_latest(kafka_kwargs, topic, 0, b"k2") == b"k2-149"
    assert await read_latest(kafka_kwargs, topic, 0, b"nobody") is None
