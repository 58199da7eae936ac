"""The comparator when ΔS is slower than arrival, on the real broker: it applies counted
backpressure (fetching paused, never the loop), keeps committing, never holds more than its
backlog bound, and emits every pair exactly once with its ΔS."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from shadowlane.compare.worker import Comparator
from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.settings import Settings
from tests.support.bag_of_words import SlowBagOfWords
from tests.support.factories import envelope, result
from tests.support.kafka_io import produce, read_topic

pytestmark = pytest.mark.integration

N = 240
BACKLOG = 24


@pytest.mark.timeout(180)
async def test_slow_delta_s_pauses_fetching_counted_and_loses_nothing(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    compare = it_settings.compare.model_copy(
        update={"window_s": 120.0, "delta_s_backlog_max": BACKLOG, "commit_interval_s": 0.2}
    )
    settings = it_settings.model_copy(update={"compare": compare})
    t = settings.topics
    envs = [envelope(i, tag="slow") for i in range(N)]
    # a burst: every request and a differing answer for each, far faster than the 20 texts/s it embeds
    await produce(kafka_kwargs, t.requests_topic, [(e.req_hash.encode(), encode(e)) for e in envs])
    results = [result(e, answer=f"another answer, number {i}") for i, e in enumerate(envs)]
    await produce(kafka_kwargs, t.shadow_results_topic, [(r.req_hash.encode(), encode(r)) for r in results])

    comparator = Comparator(settings, SlowBagOfWords(per_text_s=0.05), kafka_kwargs)
    seen = {"backlog": 0, "gap_s": 0.0, "commits_while_paused": 0, "poll_idle_s": 0.0}

    async def watch() -> None:
        """The loop stays responsive, commits go on and the consumer keeps polling (or it would
        leave its group after max_poll_interval_ms) while fetching is paused."""
        last = time.monotonic()
        commits_at_pause: int | None = None
        while True:
            await asyncio.sleep(0.02)
            now = time.monotonic()
            seen["gap_s"] = max(seen["gap_s"], now - last)
            last = now
            seen["backlog"] = max(seen["backlog"], comparator.stage.backlog)
            consumer = comparator._consumer
            if comparator.stage.paused and consumer is not None:
                if commits_at_pause is None:
                    commits_at_pause = comparator.stats.commits
                more = comparator.stats.commits - commits_at_pause
                seen["commits_while_paused"] = max(seen["commits_while_paused"], more)
                idle = consumer._subscription.fetcher_idle_time  # what max_poll_interval_ms judges
                seen["poll_idle_s"] = max(seen["poll_idle_s"], idle)
            else:
                commits_at_pause = None

    task = asyncio.create_task(comparator.run())
    watcher = asyncio.create_task(watch())
    try:
        records = await read_topic(kafka_kwargs, t.compare_topic, want=N, timeout_s=120, settle_s=2.0)
    finally:
        watcher.cancel()
        comparator.stop()
        await asyncio.wait_for(task, 30)
    comps = [decode(r.value, Comparison) for r in records]
    assert len(comps) == N  # exactly once: nothing lost, nothing emitted twice
    assert {c.req_hash for c in comps} == {e.req_hash for e in envs}
    assert all(c.outcome == "joined" and c.delta_s is not None and c.delta_s > 0 for c in comps)
    counted = comparator.stage.counters()
    assert counted["intake_pauses"] >= 1
    assert counted["intake_paused_seconds"] > 0.5
    assert seen["backlog"] <= BACKLOG  # bounded: a poll takes no more than the room left
    assert seen["commits_while_paused"] >= 1  # paused fetching, not a stalled loop
    assert seen["gap_s"] < 1.0  # ΔS runs in a worker thread: the event loop never waits for it
    assert seen["poll_idle_s"] < 0.6  # paused partitions, still polled: the member stays in its group
