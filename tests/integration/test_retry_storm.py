"""Retry storms replay once, on the real broker, across a change of members.

200 requests each arrive 10 times (the same ``req_hash``, prod timestamps 0.1 s apart), as a prod
client's retries would be mirrored. Five copies of each reach a shadow member and a comparator
while they run; then both are replaced by new members of their groups, which learn what their
predecessors did from the results and compare topics (the comparator's read-back is set on, as
for a group that is its compare topic's only writer), and the other five copies arrive. The
candidate replays each request once, ≥ 99.9 % of the copies are counted ``duplicates_skipped``,
and the compare topic holds one joined comparison per request.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shadowlane.compare.embedder import build_embedder
from shadowlane.compare.worker import Comparator
from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.contracts.shadow_result import ShadowResult
from shadowlane.settings import Settings
from shadowlane.shadow.candidates import CallableCandidate
from shadowlane.shadow.worker import ShadowWorker
from tests.support.factories import envelope
from tests.support.kafka_io import produce, read_topic
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

N = 200
COPIES = 10


def _copies(envs: list[RequestEnvelope], first: int, last: int) -> list[tuple[bytes, bytes]]:
    """Copies ``first``..``last - 1`` of every request, interleaved as retries would come."""
    return [
        (env.req_hash.encode(), encode(env.model_copy(update={"ts_ms": env.ts_ms + 100 * k})))
        for k in range(first, last)
        for env in envs
    ]


async def _phase(
    settings: Settings,
    kafka_kwargs: dict[str, Any],
    candidate: CallableCandidate,
    copies: list[tuple[bytes, bytes]],
) -> tuple[ShadowWorker, Comparator]:
    """A shadow member and a comparator read ``copies`` and a window passes; then both stop."""
    worker = ShadowWorker(settings, candidate, kafka_kwargs)
    comparator = Comparator(settings, build_embedder(settings.compare), kafka_kwargs)
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(comparator.run())]
    try:
        assert await wait_until(lambda: worker.assigned.is_set() and comparator.assigned.is_set(), 90)
        await produce(kafka_kwargs, settings.topics.requests_topic, copies)
        assert await wait_until(lambda: worker.stats.consumed >= len(copies), 120)
        assert await wait_until(lambda: comparator.join.stats.requests >= len(copies), 120)
        await asyncio.sleep(settings.compare.window_s + 2)  # nothing left to time out
    finally:
        worker.stop()
        comparator.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    return worker, comparator


@pytest.mark.timeout(300)
async def test_a_retry_storm_replays_and_compares_each_request_once(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    topics = it_settings.topics
    # this comparator group is its compare topic's only writer: it may read the pairs back
    it_settings = it_settings.model_copy(
        update={"compare": it_settings.compare.model_copy(update={"dedupe_ttl_s": 120.0})}
    )
    calls: list[str] = []

    def answer(body: dict[str, Any]) -> str:
        calls.append(body["messages"][-1]["content"])
        return "Corrected."

    envs = [envelope(i, tag="storm") for i in range(N)]
    half = COPIES // 2
    members = [
        await _phase(it_settings, kafka_kwargs, CallableCandidate("cand", answer), _copies(envs, 0, half)),
        await _phase(
            it_settings, kafka_kwargs, CallableCandidate("cand", answer), _copies(envs, half, COPIES)
        ),
    ]

    results = [
        decode(r.value, ShadowResult)
        for r in await read_topic(kafka_kwargs, topics.shadow_results_topic, want=N, settle_s=2.0)
    ]
    compared = [
        decode(r.value, Comparison)
        for r in await read_topic(kafka_kwargs, topics.compare_topic, want=N, settle_s=2.0)
    ]
    assert len(calls) == N  # the candidate saw each request once
    assert sorted(r.req_hash for r in results) == sorted(e.req_hash for e in envs)
    assert sorted(c.req_hash for c in compared) == sorted(e.req_hash for e in envs)
    assert {c.outcome for c in compared} == {"joined"}
    skipped = sum(worker.stats.duplicates_skipped for worker, _ in members)
    assert skipped >= 0.999 * N * (COPIES - 1), skipped
    second_worker, second_comparator = members[1]
    assert second_worker.stats.learned == N  # what the first member replayed, read back
    assert second_comparator.stats.learned == N
