"""W3C trace context end to end on the real broker: a prod request's ``traceparent`` goes through
the hook (requests-topic headers), the shadow worker (the candidate's HTTP request headers, the
shadow-results headers and field) and the comparator (the compare-topic headers and the
``Comparison`` field), every hop a span of the same trace under the previous one (OpenTelemetry
SDK, in-memory exporter), with exactly-once output and without it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id, format_trace_id

from shadowlane.compare.worker import Comparator
from shadowlane.contracts.codec import decode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.contracts.shadow_result import ShadowResult
from shadowlane.demo.asgi_util import read_body, send_json
from shadowlane.demo.serve import serve
from shadowlane.hook.asgi import ShadowMirrorMiddleware
from shadowlane.hook.publisher import ShadowPublisher
from shadowlane.settings import Settings
from shadowlane.shadow.candidates import OpenAICandidate
from shadowlane.shadow.worker import ShadowWorker
from shadowlane.tracing import COMPARE_SPAN, PUBLISH_SPAN, REPLAY_SPAN, TraceParent, Tracing
from tests.support.kafka_io import read_topic

pytestmark = pytest.mark.integration

ANSWER = {"model": "m", "choices": [{"message": {"role": "assistant", "content": "Answer."}}]}
STATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
TRACES = {  # request id -> the traceparent prod received (None: none, or one that is not W3C)
    "traced-1": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "traced-2": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "untraced": None,
    "not-w3c": "00-abc-def-01",
}
Headers = dict[str, str]


@pytest.fixture
def spans() -> Iterator[tuple[Tracing, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Tracing(provider), exporter
    provider.shutdown()


@pytest.fixture(params=[True, False], ids=["exactly-once", "at-least-once"])
def settings(it_settings: Settings, request: pytest.FixtureRequest) -> Settings:
    once = {"exactly_once": request.param}
    return it_settings.model_copy(
        update={
            "shadow": it_settings.shadow.model_copy(update=once),
            "compare": it_settings.compare.model_copy(update=once),
        }
    )


async def _answer(receive: Any, send: Any) -> None:
    await read_body(receive)
    await send_json(send, 200, ANSWER)


def _candidate(seen: dict[str, Headers]) -> Any:
    """A candidate model server that answers like prod and keeps each request's trace headers
    (by the question it was asked)."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        question = orjson.loads(await read_body(receive))["messages"][-1]["content"]
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        seen[question] = {k: v for k, v in headers.items() if k in ("traceparent", "tracestate")}
        await send_json(send, 200, ANSWER)

    return app


async def _prod_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await _answer(receive, send)


def _record_headers(record: Any) -> Headers:
    return {name: value.decode() for name, value in record.headers}


def _ids(span: ReadableSpan) -> tuple[str, str, str | None]:
    ctx = span.get_span_context()
    assert ctx is not None
    parent = format_span_id(span.parent.span_id) if span.parent is not None else None
    return format_trace_id(ctx.trace_id), format_span_id(ctx.span_id), parent


async def _mirror(settings: Settings, kwargs: dict[str, Any], tracing: Tracing) -> None:
    """Prod serves one request per entry of ``TRACES`` behind the hook, which mirrors them."""
    publisher = ShadowPublisher(
        settings.hook,
        topic=settings.topics.requests_topic,
        producer_factory=lambda: AIOKafkaProducer(**kwargs, acks="all", linger_ms=5),
        tracing=tracing,
    )
    await publisher.start()
    prod = await serve(ShadowMirrorMiddleware(_prod_app, publisher))
    try:
        async with httpx.AsyncClient(base_url=prod.url) as client:
            for rid, traceparent in TRACES.items():
                headers = {"x-request-id": rid}
                if traceparent is not None:
                    headers |= {"traceparent": traceparent, "tracestate": STATE}
                body = {"model": "m", "messages": [{"role": "user", "content": f"question {rid}"}]}
                resp = await client.post("/v1/chat/completions", json=body, headers=headers)
                assert resp.status_code == 200
        await publisher.stop()
    finally:
        await prod.stop()
    assert publisher.stats.published == len(TRACES)


async def _shadow_and_compare(
    settings: Settings, kwargs: dict[str, Any], candidate_url: str, tracing: Tracing
) -> list[Any]:
    """Run a shadow worker (on the candidate's URL) and the comparator until every request has its
    comparison; returns the compare records."""
    worker = ShadowWorker(settings, OpenAICandidate("cand", candidate_url, timeout_s=5.0), kwargs)
    worker.replayer.tracing = tracing
    comparator = Comparator(settings, None, kwargs)
    comparator.builder.trace.tracing = tracing
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(comparator.run())]
    try:
        records = await read_topic(kwargs, settings.topics.compare_topic, want=len(TRACES), timeout_s=90)
        for task in tasks:
            assert not task.done(), task.exception()
    finally:
        worker.stop()
        comparator.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    return records


@pytest.mark.timeout(180)
async def test_traceparent_travels_hook_to_comparison_under_one_trace(
    settings: Settings,
    kafka_kwargs: dict[str, Any],
    spans: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = spans
    seen: dict[str, Headers] = {}
    candidate = await serve(_candidate(seen))
    try:
        await _mirror(settings, kafka_kwargs, tracing)
        compared = await _shadow_and_compare(settings, kafka_kwargs, candidate.url, tracing)
    finally:
        await candidate.stop()
    t = settings.topics
    requests = await read_topic(kafka_kwargs, t.requests_topic, want=len(TRACES))
    results = await read_topic(kafka_kwargs, t.shadow_results_topic, want=len(TRACES))

    by_rid = {decode(r.value, RequestEnvelope).req_id: r for r in requests}
    envs = {rid: decode(r.value, RequestEnvelope) for rid, r in by_rid.items()}
    hashes = {env.req_hash: rid for rid, env in envs.items()}
    result_records = {hashes[decode(r.value, ShadowResult).req_hash]: r for r in results}
    compare_records = {hashes[decode(r.value, Comparison).req_hash]: r for r in compared}
    assert set(by_rid) == set(result_records) == set(compare_records) == set(TRACES)

    named: dict[str, dict[str, ReadableSpan]] = {PUBLISH_SPAN: {}, REPLAY_SPAN: {}, COMPARE_SPAN: {}}
    for span in exporter.get_finished_spans():
        named[span.name][_ids(span)[0]] = span  # one span per hop and trace
    traced = {rid: TraceParent.parse(tp) for rid, tp in TRACES.items()}

    for rid, prod_tp in TRACES.items():
        env = envs[rid]
        assert env.trace_id == prod_tp  # the envelope keeps what prod received, as it was
        assert STATE.encode() not in by_rid[rid].value  # tracestate travels in headers only
        hook_headers = _record_headers(by_rid[rid])
        result = decode(result_records[rid].value, ShadowResult)
        result_headers = _record_headers(result_records[rid])
        comparison = decode(compare_records[rid].value, Comparison)
        compare_headers = _record_headers(compare_records[rid])
        parent = traced[rid]
        if parent is None:  # no valid traceparent: nothing traced, nothing invented
            assert hook_headers == seen[f"question {rid}"] == result_headers == compare_headers == {}
            assert result.traceparent is None
            assert comparison.traceparent is None
            continue
        trace = parent.trace_id
        publish, replay, compare = (named[name][trace] for name in (PUBLISH_SPAN, REPLAY_SPAN, COMPARE_SPAN))
        publish_trace, publish_id, publish_parent = _ids(publish)
        replay_trace, replay_id, replay_parent = _ids(replay)
        compare_trace, compare_id, compare_parent = _ids(compare)
        assert publish_trace == replay_trace == compare_trace == trace
        # hook: a producer span under prod's request; the requests record names it
        assert publish_parent == parent.parent_id
        assert hook_headers == {"traceparent": f"00-{trace}-{publish_id}-01", "tracestate": STATE}
        # shadow worker: a replay span under the publish span; the candidate's HTTP request names it
        assert replay_parent == publish_id
        sent = f"00-{trace}-{replay_id}-01"
        assert seen[f"question {rid}"] == {"traceparent": sent, "tracestate": STATE}
        assert result.traceparent == sent
        assert result_headers == {"traceparent": sent, "tracestate": STATE}
        assert dict(replay.attributes or {}) == {
            "shadowlane.candidate": "cand",
            "shadowlane.req_hash": env.req_hash,
            "shadowlane.status": "ok",
        }
        # comparator: a compare span under the replay span; the record names it, the field copies
        assert compare_parent == replay_id
        assert comparison.traceparent == sent
        assert comparison.outcome == "joined"
        assert compare_headers == {"traceparent": f"00-{trace}-{compare_id}-01"}
    assert {name: len(found) for name, found in named.items()} == dict.fromkeys(named, 2)
