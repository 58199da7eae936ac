"""The comparator on the real broker: joins, timeouts, orphans, and a crash mid-stream.

Every test runs twice, as a whole worker on each hot path: ``native`` (the ``shadowlane_native``
extension, which ``make`` builds; its absence fails these runs) and ``python``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from shadowlane.compare.worker import Comparator
from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.demo.procs import WorkerProcess
from shadowlane.settings import Settings
from tests.support.factories import envelope, result
from tests.support.kafka_io import produce, read_topic

pytestmark = pytest.mark.integration


@pytest.fixture(params=["native", "python"])
def it_settings(it_settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The suite's settings with the comparator forced onto one hot path."""
    compare = it_settings.compare.model_copy(update={"native_path": request.param})
    return it_settings.model_copy(update={"compare": compare})


def _started(comparator: Comparator, settings: Settings) -> Comparator:
    """The comparator, checked to run the path its settings force."""
    assert comparator.builder.native == (settings.compare.native_path == "native")
    assert type(comparator.join).__name__ == (
        "NativeJoinBuffer" if comparator.builder.native else "JoinBuffer"
    )
    return comparator


async def test_joins_and_emits_timed_out_pairs(it_settings: Settings, kafka_kwargs: dict[str, Any]) -> None:
    settings = it_settings.model_copy(
        update={"compare": it_settings.compare.model_copy(update={"window_s": 2.0})}
    )
    envs = [envelope(i, tag="cmp") for i in range(10)]
    t = settings.topics
    await produce(kafka_kwargs, t.requests_topic, [(e.req_hash.encode(), encode(e)) for e in envs])
    results = [
        result(e, answer=e.prod.answer if i % 2 else "something else entirely")
        for i, e in enumerate(envs[:7])
    ]
    orphan = result(envelope(99, tag="orphan"))
    await produce(
        kafka_kwargs, t.shadow_results_topic, [(r.req_hash.encode(), encode(r)) for r in [*results, orphan]]
    )
    comparator = _started(Comparator(settings, None, kafka_kwargs), settings)
    task = asyncio.create_task(comparator.run())
    try:
        records = await read_topic(kafka_kwargs, t.compare_topic, want=11, timeout_s=60, settle_s=1.0)
    finally:
        comparator.stop()
        await asyncio.wait_for(task, 30)
    comps = [decode(r.value, Comparison) for r in records]
    outcomes = sorted(c.outcome for c in comps)
    assert outcomes == ["joined"] * 7 + ["request_missing"] + ["shadow_timeout"] * 3
    joined = {c.req_hash: c for c in comps if c.outcome == "joined"}
    assert set(joined) == {e.req_hash for e in envs[:7]}
    assert all(
        c.complete and c.status_pair == "200/ok" and c.latency_delta_ms == 10.0 for c in joined.values()
    )
    assert [joined[e.req_hash].exact_match for e in envs[:7]] == [
        False,
        True,
        False,
        True,
        False,
        True,
        False,
    ]
    timed_out = {c.req_hash for c in comps if c.outcome == "shadow_timeout"}
    assert timed_out == {e.req_hash for e in envs[7:]}
    missing = next(c for c in comps if c.outcome == "request_missing")
    assert missing.req_hash == orphan.req_hash
    assert not missing.complete
    assert all(r.key == c.req_hash.encode() for r, c in zip(records, comps, strict=True))


@pytest.mark.timeout(240)
async def test_killed_comparator_restarts_without_losing_a_request(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    n = 600
    settings = it_settings.model_copy(
        update={"compare": it_settings.compare.model_copy(update={"window_s": 120.0})}
    )
    t = settings.topics
    envs = [envelope(i, tag="crash") for i in range(n)]
    args = ("compare", "--embedder", "none")
    first = await WorkerProcess.start(settings, *args)
    starting = await first.wait_event("starting", timeout_s=60)
    assert starting["hot_path"] == settings.compare.native_path
    await first.wait_event("assigned", timeout_s=90)
    # requests first, their results later and in chunks, so pairs are waiting when the kill lands
    await produce(kafka_kwargs, t.requests_topic, [(e.req_hash.encode(), encode(e)) for e in envs])
    for start in range(0, n, 100):
        chunk = [result(e) for e in envs[start : start + 100]]
        await produce(kafka_kwargs, t.shadow_results_topic, [(r.req_hash.encode(), encode(r)) for r in chunk])
        if start == 200:
            deadline = time.monotonic() + 60
            while len(await read_topic(kafka_kwargs, t.compare_topic, want=1, timeout_s=2)) < 1:
                assert time.monotonic() < deadline
            await first.kill()  # SIGKILL: no revoke, no final commit
    second = await WorkerProcess.start(settings, *args)
    try:
        records = await read_topic(
            kafka_kwargs, t.compare_topic, want=n, timeout_s=120, settle_s=2.0, distinct_keys=True
        )
        comps = [decode(r.value, Comparison) for r in records]
        assert {c.req_hash for c in comps if c.outcome == "joined"} == {e.req_hash for e in envs}
        assert all(c.outcome == "joined" for c in comps)  # nothing timed out or went missing
    finally:
        await second.terminate()


@pytest.mark.timeout(180)
async def test_three_comparator_members_still_join_every_pair(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    """Requests and results of partition p must meet on one member (range assignment)."""
    settings = it_settings.model_copy(
        update={"compare": it_settings.compare.model_copy(update={"window_s": 120.0})}
    )
    t = settings.topics
    members = [_started(Comparator(settings, None, kafka_kwargs), settings) for _ in range(3)]
    tasks = [asyncio.create_task(m.run()) for m in members]
    try:
        for member in members:
            await asyncio.wait_for(member.assigned.wait(), 60)
        envs = [envelope(i, tag="two") for i in range(200)]
        await produce(kafka_kwargs, t.requests_topic, [(e.req_hash.encode(), encode(e)) for e in envs])
        await produce(
            kafka_kwargs, t.shadow_results_topic, [(e.req_hash.encode(), encode(result(e))) for e in envs]
        )
        records = await read_topic(kafka_kwargs, t.compare_topic, want=200, timeout_s=90, distinct_keys=True)
    finally:
        for member in members:
            member.stop()
        await asyncio.gather(*tasks)
    comps = [decode(r.value, Comparison) for r in records]
    assert {c.req_hash for c in comps} == {e.req_hash for e in envs}
    assert all(c.outcome == "joined" for c in comps)
    assert all(m.stats.emitted > 0 for m in members)  # every member owned partitions and joined
