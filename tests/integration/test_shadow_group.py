"""Two shadow worker processes in one consumer group share the partitions and the rate cap."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.shadow_result import ShadowResult
from shadowlane.demo.procs import WorkerProcess
from shadowlane.settings import Settings
from tests.support.factories import envelope
from tests.support.kafka_io import produce, read_topic

pytestmark = pytest.mark.integration


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exposed")


@pytest.mark.timeout(240)
async def test_two_processes_share_partitions_and_hold_the_group_cap(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    cap, n = 20.0, 240
    settings = it_settings.model_copy(
        update={"shadow": it_settings.shadow.model_copy(update={"rate_cap": cap, "concurrency": 4})}
    )
    args = (
        "shadow",
        "--candidate",
        "cand",
        "--callable",
        "tests.support.candidates:echo",
        "--metrics-port",
        "0",
    )
    members = [await WorkerProcess.start(settings, *args) for _ in range(2)]
    try:
        ports = [(await m.wait_event("assigned", timeout_s=90))["metrics_port"] for m in members]
        envs = [envelope(i, tag="grp") for i in range(n)]
        await produce(
            kafka_kwargs, settings.topics.requests_topic, [(e.req_hash.encode(), encode(e)) for e in envs]
        )
        records = await read_topic(kafka_kwargs, settings.topics.shadow_results_topic, want=n, timeout_s=120)
        async with httpx.AsyncClient() as client:
            scraped = [(await client.get(f"http://127.0.0.1:{port}/metrics")).text for port in ports]
    finally:
        stats = [await m.terminate() for m in members]
    results = [decode(r.value, ShadowResult) for r in records]
    assert {r.req_hash for r in results} == {e.req_hash for e in envs}
    assert all(s["replayed"] > 0 for s in stats), stats  # both members did work
    assert sum(s["replayed"] for s in stats) >= n
    replayed = [_sample(text, "shadowlane_shadow_replayed_total") for text in scraped]
    assert all(value > 0 for value in replayed), replayed
    assert all("shadowlane_shadow_rate_limit{" in text for text in scraped)
    stamps = sorted(r.ts_ms for r in results)
    # steady state: drop the first and last 10 % (start-up, rebalance, tail)
    lo, hi = stamps[n // 10], stamps[n - n // 10 - 1]
    rate = (n - 2 * (n // 10) - 1) / ((hi - lo) / 1000)
    assert 0.85 * cap <= rate <= 1.10 * cap, rate
