"""The rate cap is a promise to the candidate, measured where it is made: at the candidate server.

A real HTTP model server (the demo's grammar tutor: a tool round before each answer) fails 30 % of
its calls with 503, so replays retry; one consumer group of 1, 2 and 4 shadow worker members
replays a backlog against it. After warm-up, the calls the server receives in every 1 s window
stay within the group cap × 1.05, and the backlog keeps the group at the cap (so the bound could be
broken: one token per replay, as before, let through about three calls per token).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import pytest

from shadowlane.contracts.codec import encode
from shadowlane.demo.model_server import ModelBehaviour, model_app
from shadowlane.demo.serve import serve
from shadowlane.settings import Settings
from shadowlane.shadow.candidates import OpenAICandidate
from shadowlane.shadow.worker import ShadowWorker
from tests.support.factories import envelope
from tests.support.kafka_io import produce
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

CAP = 20.0
WARM_UP_S = 2.0
MEASURED_S = 6.0
Scope = MutableMapping[str, Any]
ASGI = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def _stamping(app: ASGI, stamps: list[float]) -> ASGI:
    """``app``, noting the arrival time of every chat call."""

    async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/chat/completions":
            stamps.append(time.monotonic())
        await app(scope, receive, send)

    return wrapped


def _windows(stamps: list[float], start: float, seconds: float) -> list[int]:
    """Calls in each 1 s window [start + k, start + k + 1)."""
    counts = [0] * int(seconds)
    for stamp in stamps:
        k = int(stamp - start)
        if stamp - start >= 0 and k < len(counts):
            counts[k] += 1
    return counts


@pytest.mark.timeout(240)
@pytest.mark.parametrize("members", [1, 2, 4])
async def test_calls_at_the_candidate_stay_within_the_cap(
    members: int, it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    settings = it_settings.model_copy(
        update={
            "shadow": it_settings.shadow.model_copy(
                update={"rate_cap": CAP, "concurrency": 8, "max_attempts": 4, "backoff_base_s": 0.01}
            )
        }
    )
    stamps: list[float] = []
    behaviour = ModelBehaviour("grammar-b", latency_ms=2.0, error_rate=0.3, seed=7)
    server = await serve(_stamping(model_app(behaviour), stamps))
    workers = [
        ShadowWorker(settings, OpenAICandidate("cand", server.url, timeout_s=5.0), kafka_kwargs)
        for _ in range(members)
    ]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        share = CAP / members
        assert await wait_until(lambda: all(w.bucket.rate == pytest.approx(share) for w in workers), 90)
        n = int(CAP * (WARM_UP_S + MEASURED_S + 2))  # ~2 calls per replay: a backlog past the window
        envs = [envelope(i, tag=f"cap{members}") for i in range(n)]
        await produce(
            kafka_kwargs, settings.topics.requests_topic, [(e.req_hash.encode(), encode(e)) for e in envs]
        )
        assert await wait_until(lambda: len(stamps) > 0, 60)
        start = stamps[0] + WARM_UP_S
        await asyncio.sleep(max(start + MEASURED_S - time.monotonic(), 0.0))
        assert not any(task.done() for task in tasks), "a member stopped"
    finally:
        for w in workers:
            w.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        await server.stop()
    counts = _windows(stamps, start, MEASURED_S)
    retried = sum(w.stats.replayed for w in workers)
    assert max(counts) <= CAP * 1.05, counts
    assert sum(counts) >= 0.8 * CAP * MEASURED_S, counts  # saturated: the cap was what held it
    assert behaviour.calls > retried  # retries and tool rounds were calls too
