"""The publish hook against the real broker: mirroring, sampling accuracy, no leaked secrets."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shadowlane.contracts.codec import decode
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.demo.grammar import eval_set
from shadowlane.demo.model_server import PREFIX, TOOLS, ModelBehaviour, model_app
from shadowlane.demo.prod_service import Gradebook, prod_app
from shadowlane.demo.serve import serve
from shadowlane.hook.asgi import ShadowMirrorMiddleware
from shadowlane.hook.publisher import ShadowPublisher
from shadowlane.settings import HookSettings, Settings
from tests.support.kafka_io import read_topic

pytestmark = pytest.mark.integration


def _publisher(settings: Settings, kwargs: dict[str, Any], hook: HookSettings) -> ShadowPublisher:
    return ShadowPublisher(
        hook,
        topic=settings.topics.requests_topic,
        producer_factory=lambda: AIOKafkaProducer(**kwargs, acks="all", linger_ms=5),
        pins={"model_rev": "grammar-a@1"},
    )


async def test_middleware_mirrors_prod_requests(it_settings: Settings, kafka_kwargs: dict[str, Any]) -> None:
    publisher = _publisher(it_settings, kafka_kwargs, HookSettings())
    await publisher.start()
    model = await serve(model_app(ModelBehaviour("grammar-a", latency_ms=0)))
    prod = await serve(ShadowMirrorMiddleware(prod_app(model.url, Gradebook()), publisher))
    items = eval_set(20)
    try:
        async with httpx.AsyncClient(base_url=prod.url) as client:
            for i, item in enumerate(items):
                body = {"messages": [{"role": "user", "content": PREFIX + item.sentence}], "tools": TOOLS}
                resp = await client.post("/v1/chat/completions", json=body, headers={"x-request-id": f"r{i}"})
                assert resp.status_code == 200
            other = await client.get("/healthz")
            assert other.status_code == 404  # not mirrored, passes through
        await publisher.stop()
    finally:
        await prod.stop()
        await model.stop()
    assert publisher.stats.published == 20
    records = await read_topic(kafka_kwargs, it_settings.topics.requests_topic, want=20, settle_s=1.0)
    assert len(records) == 20
    envs = {decode(r.value, RequestEnvelope).req_id: (r, decode(r.value, RequestEnvelope)) for r in records}
    assert set(envs) == {f"r{i}" for i in range(20)}
    record, env = envs["r3"]
    assert record.key == env.req_hash.encode()
    assert env.prod.status == 200
    assert env.prod.answer
    assert env.prod.answer.startswith("Correct")
    assert {t.name for t in env.tool_io} == {"lookup_conjugation", "save_progress"}
    assert env.pins == {"model_rev": "grammar-a@1"}
    assert env.request.messages[-1].content == PREFIX + items[3].sentence


@pytest.mark.timeout(180)
async def test_sampling_ratio_within_two_percent(it_settings: Settings, kafka_kwargs: dict[str, Any]) -> None:
    ratio, n = 0.3, 20_000
    publisher = _publisher(it_settings, kafka_kwargs, HookSettings(sample_ratio=ratio, queue_size=n))
    await publisher.start()
    body = {"messages": [{"role": "user", "content": "hi"}]}
    resp = {"choices": [{"message": {"role": "assistant", "content": "hello"}}]}
    accepted = sum(
        publisher.publish(
            req_id=f"id-{i}",
            endpoint="/v1/chat/completions",
            request=body,
            response=resp,
            status=200,
            latency_ms=1.0,
        )
        for i in range(n)
    )
    await publisher.stop(drain_timeout_s=60)
    assert publisher.stats.published == accepted
    records = await read_topic(kafka_kwargs, it_settings.topics.requests_topic, want=accepted, settle_s=1.0)
    observed = len(records) / n
    assert abs(observed - ratio) <= 0.02 * ratio, observed


async def test_no_planted_secret_reaches_the_topic(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    secrets = [
        "sk-proj-Zq8TESTSECRET0123456789abcd",
        "AKIAIOSFODNN7EXAMPLE",
        "hunter2-password-value",
        "alice.w@example.com",
        "+44 20 7946 0958",
        "4111 1111 1111 1111",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlMTIz",
        "bearer-token-in-header-XYZ",
    ]
    publisher = _publisher(it_settings, kafka_kwargs, HookSettings(drop_fields=("internal_note",)))
    await publisher.start()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send(
            {
                "type": "http.response.body",
                "body": b'{"choices":[{"message":{"role":"assistant","content":'
                b'"mail alice.w@example.com"}}]}',
            }
        )

    prod = await serve(ShadowMirrorMiddleware(app, publisher))
    body = {
        "api_key": secrets[0],
        "internal_note": "keep out",
        "metadata": {"aws": {"password": secrets[2]}, "key": secrets[1]},
        "messages": [
            {"role": "user", "content": f"I am {secrets[3]}, call {secrets[4]}, card {secrets[5]}"},
            {"role": "user", "content": f"my token {secrets[6]} and {secrets[7]}"},
        ],
    }
    try:
        async with httpx.AsyncClient(base_url=prod.url) as client:
            r = await client.post(
                "/v1/chat/completions",
                json=body,
                headers={"authorization": f"Bearer {secrets[8]}", "cookie": "session=abc"},
            )
            assert r.status_code == 200
        await publisher.stop()
    finally:
        await prod.stop()
    records = await read_topic(kafka_kwargs, it_settings.topics.requests_topic, want=1, settle_s=1.0)
    assert len(records) == 1
    raw = records[0].value
    for secret in [*secrets, "keep out", "session=abc"]:
        assert secret.encode() not in raw, secret
    env = decode(raw, RequestEnvelope)
    assert env.sanitized_fields >= 9
    assert "<email>" in str(env.request.messages[0].content)
    assert env.prod.answer == "mail <email>"
