"""The FastStream compare reader on the real broker: typed records, committed after handling."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shadowlane.contracts.codec import encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.reader import compare_reader
from shadowlane.settings import Settings
from tests.support.kafka_io import produce

pytestmark = pytest.mark.integration


async def test_reader_reads_the_compare_topic(it_settings: Settings, kafka_kwargs: dict[str, Any]) -> None:
    comps = [
        Comparison(
            comparison_id=f"c{i}",
            req_hash=f"{i:032x}",
            candidate="cand",
            ts_ms=1,
            complete=True,
            outcome="joined",
            exact_match=True,
            delta_s=0.0,
        )
        for i in range(25)
    ]
    await produce(
        kafka_kwargs, it_settings.topics.compare_topic, [(c.req_hash.encode(), encode(c)) for c in comps]
    )
    seen: list[Comparison] = []
    all_seen = asyncio.Event()

    async def handle(c: Comparison) -> None:
        seen.append(c)
        if len(seen) >= len(comps):
            all_seen.set()

    broker = compare_reader(
        it_settings,
        kafka_kwargs["bootstrap_servers"],
        handle,
        group_id=it_settings.compare.group_id + ".reader",
    )
    await broker.start()
    try:
        await asyncio.wait_for(all_seen.wait(), 60)
    finally:
        await broker.stop()
    assert sorted(c.comparison_id for c in seen) == sorted(c.comparison_id for c in comps)
