"""Prometheus ``/metrics`` of running worker processes (and of a hook host) contain the #4 series."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any, get_args

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shadowlane.contracts.codec import encode
from shadowlane.contracts.comparison import Outcome
from shadowlane.contracts.shadow_result import ErrorClass
from shadowlane.demo.procs import WorkerProcess
from shadowlane.hook.publisher import ShadowPublisher
from shadowlane.metrics import serve_metrics
from shadowlane.settings import Settings
from tests.support.factories import envelope
from tests.support.kafka_io import produce, read_topic

pytestmark = pytest.mark.integration

SHADOW_SERIES = (
    "shadowlane_shadow_consumed_total",
    "shadowlane_shadow_replayed_total",
    "shadowlane_shadow_throttled_total",
    "shadowlane_shadow_paused_total",
    "shadowlane_shadow_candidate_errors_total",
    "shadowlane_shadow_tools_stubbed_total",
    "shadowlane_shadow_tools_blocked_total",
    "shadowlane_shadow_lambda_replays_total",
    "shadowlane_shadow_transactions_total",
    "shadowlane_shadow_transactions_aborted_total",
    "shadowlane_shadow_fenced_total",
    "shadowlane_consumer_lag",
)
COMPARE_SERIES = (
    "shadowlane_compare_joined_total",
    "shadowlane_compare_transactions_total",
    "shadowlane_compare_transactions_aborted_total",
    "shadowlane_compare_restored_total",
    "shadowlane_compare_shadow_timeouts_total",
    "shadowlane_compare_late_total",
    "shadowlane_compare_results_total",
    "shadowlane_compare_late_results_total",
    "shadowlane_compare_duplicate_results_total",
    "shadowlane_compare_window_delta_s_samples",
    "shadowlane_compare_dead_lettered_total",
    "shadowlane_compare_delta_s_bucket",
    "shadowlane_compare_latency_seconds_bucket",
    "shadowlane_compare_comparisons_total",
    "shadowlane_compare_window_delta_s_mean",
    "shadowlane_consumer_lag",
)
HOOK_SERIES = (
    "shadowlane_hook_published_total",
    "shadowlane_hook_sampled_out_total",
    "shadowlane_hook_dropped_queue_full_total",
    "shadowlane_hook_sanitized_fields_total",
)


def _samples(text: str, name: str, **labels: str) -> list[float]:
    """The samples of ``name`` whose labels include ``labels``."""
    out = []
    for match in re.finditer(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", text, re.MULTILINE):
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            out.append(float(match.group(2)))
    return out


def _value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(_samples(text, name, **labels))


async def _scrape(port: int) -> str:
    async with httpx.AsyncClient() as client:
        resp = await client.get(f"http://127.0.0.1:{port}/metrics")
        resp.raise_for_status()
        return resp.text


@pytest.mark.timeout(240)
async def test_worker_processes_expose_the_series(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    settings = it_settings.model_copy(
        update={
            "compare": it_settings.compare.model_copy(
                update={
                    "embedder": "minilm",
                    "window_s": 2.0,
                    "summary_window_s": 1.0,
                    "summary_grace_s": 0.0,
                }
            )
        }
    )
    n = 12
    shadow = await WorkerProcess.start(
        settings, "shadow", "--candidate", "cand", "--callable", "tests.support.candidates:grammar_b",
        "--metrics-port", "0",
    )  # fmt: skip
    compare = await WorkerProcess.start(settings, "compare", "--metrics-port", "0")
    try:
        shadow_port = (await shadow.wait_event("assigned", timeout_s=90))["metrics_port"]
        compare_port = (await compare.wait_event("assigned", timeout_s=90))["metrics_port"]
        # before any event: every labelled counter already has its series, at 0
        fresh_shadow, fresh_compare = await _scrape(shadow_port), await _scrape(compare_port)
        for cls in get_args(ErrorClass):
            errors = "shadowlane_shadow_candidate_errors_total"
            assert _samples(fresh_shadow, errors, candidate="cand", error_class=cls) == [0.0], cls
        for outcome in get_args(Outcome):
            comparisons = "shadowlane_compare_comparisons_total"
            assert _samples(fresh_compare, comparisons, candidate="cand", outcome=outcome) == [0.0], outcome
        assert _samples(fresh_compare, "shadowlane_compare_shadow_errors_total", candidate="cand") == [0.0]
        envs = [envelope(i, tag="prom") for i in range(n)]
        await produce(
            kafka_kwargs, settings.topics.requests_topic, [(e.req_hash.encode(), encode(e)) for e in envs]
        )
        await read_topic(kafka_kwargs, settings.topics.compare_topic, want=n, timeout_s=120)
        await read_topic(kafka_kwargs, settings.topics.summary_topic, want=1, timeout_s=60)
        deadline = time.monotonic() + 30
        compare_text = await _scrape(compare_port)
        while (
            _value(compare_text, "shadowlane_compare_comparisons_total") < n and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.5)
            compare_text = await _scrape(compare_port)
        shadow_text = await _scrape(shadow_port)
    finally:
        await shadow.terminate()
        await compare.terminate()
    for name in SHADOW_SERIES:
        assert name in shadow_text, name
    for name in COMPARE_SERIES:
        assert name in compare_text, name
    assert _value(shadow_text, "shadowlane_shadow_replayed_total", candidate="cand") == n
    assert _value(shadow_text, "shadowlane_shadow_tools_blocked_total") == n  # save_progress, every time
    assert _value(compare_text, "shadowlane_compare_joined_total") == n
    # exactly-once is the default: the comparator only saw results the shadow worker had committed
    assert _value(shadow_text, "shadowlane_shadow_transactions_total") >= 1
    assert (
        _value(compare_text, "shadowlane_compare_comparisons_total", candidate="cand", outcome="joined") == n
    )
    assert (
        _value(compare_text, "shadowlane_compare_delta_s_count", candidate="cand", traffic_arm="shadow") == n
    )
    for arm in ("prod", "shadow"):
        count = _value(
            compare_text, "shadowlane_compare_latency_seconds_count", candidate="cand", traffic_arm=arm
        )
        assert count == n, arm
    assert _value(compare_text, "shadowlane_consumer_lag") == 0  # caught up
    assert _value(compare_text, "shadowlane_compare_results_total") == n
    assert _value(compare_text, "shadowlane_compare_late_results_total") == 0
    assert _value(compare_text, "shadowlane_compare_duplicate_results_total") == 0
    # the closed windows' samples, which the rules' 20-sample guard reads: every pair was in one
    assert _value(compare_text, "shadowlane_compare_window_delta_s_samples", candidate="cand") >= 1


async def test_hook_host_exposes_the_series(it_settings: Settings, kafka_kwargs: dict[str, Any]) -> None:
    publisher = ShadowPublisher(
        it_settings.hook.model_copy(update={"sample_ratio": 0.5}),
        topic=it_settings.topics.requests_topic,
        producer_factory=lambda: AIOKafkaProducer(**kafka_kwargs, acks="all", linger_ms=1),
    )
    await publisher.start()
    server = serve_metrics([publisher.collector(service="tutor")])
    try:
        for i in range(200):
            sampled, _bucket = publisher.should_sample(f"req-{i}")
            if not sampled:
                publisher.count_sampled_out()
        text = await _scrape(server.port)
    finally:
        server.close()
        await publisher.stop()
    for name in HOOK_SERIES:
        assert name in text, name
    assert 60 < _value(text, "shadowlane_hook_sampled_out_total", service="tutor") < 140
