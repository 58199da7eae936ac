"""PartitionBatcher: records land in their req_hash partition's batch, in order, and every
record appended is shipped exactly once (when its batch fills or on flush)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from shadowlane.hashing import partition_for, req_hash
from shadowlane.kafka.batching import PartitionBatcher, RecordTooLarge, ShipFailed

PARTITIONS = 4


class FakeProducer:
    """aiokafka's own batch builder; send_batch records what was shipped and acks at once."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.sent: list[tuple[int, list[tuple[bytes, bytes]]]] = []

    def create_batch(self) -> Any:
        return BatchBuilder(self.batch_size, 0)

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[None]:
        records = DefaultRecordBatch(bytes(batch._build()))
        self.sent.append((partition, [(bytes(r.key), bytes(r.value)) for r in records]))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class PickyBatch:
    """A batch that refuses any record over ``limit`` bytes, even when empty."""

    def __init__(self, limit: int) -> None:
        self.limit, self.records = limit, 0

    def append(self, *, key: bytes, value: bytes, timestamp: None) -> object | None:
        if len(value) > self.limit:
            return None
        self.records += 1
        return object()

    def close(self) -> None:
        pass

    def record_count(self) -> int:
        return self.records


def _records(n: int, size: int = 100) -> list[tuple[str, bytes]]:
    return [(req_hash(f"r{i}", b"{}"), f"{i:06d}".encode().ljust(size, b".")) for i in range(n)]


async def _ship_all(batcher: PartitionBatcher, records: list[tuple[str, bytes]]) -> int:
    shipped = await batcher.add_many(records)
    shipped += await batcher.flush()
    return sum(count for _fut, count in shipped)


@pytest.mark.parametrize("batch_size", [300, 2_000, 1_000_000])
async def test_every_record_ships_once_in_its_partition_in_order(batch_size: int) -> None:
    producer = FakeProducer(batch_size)
    records = _records(200)
    batcher = PartitionBatcher(producer, "t", PARTITIONS)
    assert await _ship_all(batcher, records) == len(records)
    for partition in range(PARTITIONS):
        expected = [(k.encode(), v) for k, v in records if partition_for(k, PARTITIONS) == partition]
        got = [kv for p, batch in producer.sent if p == partition for kv in batch]
        assert got == expected
    if batch_size == 1_000_000:  # nothing filled: one batch per partition, shipped by flush
        assert len(producer.sent) == PARTITIONS
    else:
        assert len(producer.sent) > PARTITIONS


async def test_add_one_at_a_time_equals_add_many() -> None:
    records = _records(120)
    one, many = FakeProducer(700), FakeProducer(700)
    single = PartitionBatcher(one, "t", PARTITIONS)
    counted = 0
    for key, value in records:
        counted += sum(c for _f, c in await single.add(key, value))
    counted += sum(c for _f, c in await single.flush())
    assert counted == len(records)
    assert await _ship_all(PartitionBatcher(many, "t", PARTITIONS), records) == len(records)
    assert one.sent == many.sent


async def test_a_record_no_batch_can_hold_is_refused_without_shipping_the_open_batch() -> None:
    class Picky(FakeProducer):
        def create_batch(self) -> Any:
            return PickyBatch(limit=200)

        async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[None]:
            self.sent.append((partition, [(b"", b"")] * batch.record_count()))
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

    producer = Picky(0)
    key = req_hash("r1", b"{}")
    batcher = PartitionBatcher(producer, "t", 1)
    assert await batcher.add_many([(key, b"x" * 10), (key, b"y" * 10)]) == []
    with pytest.raises(RecordTooLarge, match="1000 bytes") as caught:
        await batcher.add(key, b"z" * 1000)
    assert caught.value.shipped == []
    assert producer.sent == []  # the open batch was not shipped for a record that cannot go anywhere
    flushed = await batcher.flush()
    assert [count for _f, count in flushed] == [2]
    assert [(p, len(batch)) for p, batch in producer.sent] == [(0, 2)]


async def test_a_refused_batch_hands_over_what_the_same_flush_had_shipped() -> None:
    class Refusing(FakeProducer):
        async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[None]:
            if len(self.sent) == 2:
                raise ConnectionError("broker gone (fake)")
            return await super().send_batch(batch, topic, partition=partition)

    producer = Refusing(1_000_000)
    batcher = PartitionBatcher(producer, "t", PARTITIONS)
    await batcher.add_many(_records(40))
    with pytest.raises(ShipFailed) as failed:
        await batcher.flush()
    assert len(failed.value.shipped) == len(producer.sent) == 2
    assert sum(count for _f, count in failed.value.shipped) == sum(len(b) for _p, b in producer.sent)
    assert await batcher.flush() == []  # the rest was abandoned with the failure, never re-shipped


async def test_a_refused_full_batch_keeps_the_record_that_opened_the_next_one() -> None:
    class Refusing(FakeProducer):
        async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[None]:
            raise ConnectionError("broker gone (fake)")

    batcher = PartitionBatcher(Refusing(300), "t", 1)
    with pytest.raises(ShipFailed) as failed:
        await batcher.add_many(_records(5))  # 100-byte records: the third one needs a new batch
    assert failed.value.shipped == []
    batcher._producer = FakeProducer(300)
    assert sum(count for _f, count in await batcher.flush()) == 1  # the record that opened it
