"""The FastStream compare reader, exercised on FastStream's in-memory test broker."""

from __future__ import annotations

import contextlib

from faststream.kafka import TestKafkaBroker

from shadowlane.contracts.codec import encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.reader import compare_reader
from shadowlane.settings import Settings


def _comparison(i: int) -> Comparison:
    return Comparison(
        comparison_id=f"c{i}",
        req_hash=f"{i:032x}",
        candidate="b",
        ts_ms=1,
        complete=True,
        outcome="joined",
        delta_s=0.1 * i,
        exact_match=i == 0,
    )


async def test_reader_hands_typed_comparisons_to_the_handler() -> None:
    settings = Settings(bootstrap_servers="127.0.0.1:1")
    seen: list[Comparison] = []

    async def handle(c: Comparison) -> None:
        seen.append(c)

    broker = compare_reader(settings, "127.0.0.1:1", handle)
    async with TestKafkaBroker(broker) as test_broker:
        for i in range(3):
            await test_broker.publish(encode(_comparison(i)), settings.topics.compare_topic)
    assert [c.comparison_id for c in seen] == ["c0", "c1", "c2"]
    assert isinstance(seen[0], Comparison)
    assert seen[2].delta_s is not None
    assert abs(seen[2].delta_s - 0.2) < 1e-9


async def test_reader_rejects_a_record_that_breaks_the_contract() -> None:
    settings = Settings(bootstrap_servers="127.0.0.1:1")
    seen: list[Comparison] = []

    async def handle(c: Comparison) -> None:
        seen.append(c)

    broker = compare_reader(settings, "127.0.0.1:1", handle)
    async with TestKafkaBroker(broker) as test_broker:
        # FastStream surfaces the validation error to the in-memory publisher; the handler never runs
        with contextlib.suppress(Exception):
            await test_broker.publish(
                b'{"schema_version": 1, "candidate": "b"}', settings.topics.compare_topic
            )
        await test_broker.publish(encode(_comparison(5)), settings.topics.compare_topic)
    assert [c.comparison_id for c in seen] == ["c5"]
