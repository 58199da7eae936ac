"""The planted corpus through the real pipeline on the real broker: the hook's middleware in a
prod app, a shadow worker whose candidate repeats what it is given, and the comparator. Then the
raw bytes of every topic (keys, values, headers) are scanned: no 8-character piece of a planted
secret may be anywhere, and harmless look-alikes in the user's message reach the topic unchanged.

The secret rides in the user's message, in a header, in prod's answer, in a tool output the
handler records and in a retrieved passage it records (``set_retrieved``); every placement inside
a request is covered by ``tests/unit/sanitize``."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from shadowlane.compare.embedder import build_embedder
from shadowlane.compare.worker import Comparator
from shadowlane.hook.asgi import ShadowMirrorMiddleware
from shadowlane.hook.context import record_tool_call, set_retrieved
from shadowlane.hook.publisher import ShadowPublisher
from shadowlane.settings import HookSettings, Settings
from shadowlane.shadow.candidates import CallableCandidate
from shadowlane.shadow.worker import ShadowWorker
from tests.support.kafka_io import read_topic
from tests.support.secret_corpus import harmless, json_escaped, leaked_in_json, secrets

pytestmark = pytest.mark.integration

PLANTED = list(secrets(seed=7, per_format=1))
HARMLESS = list(harmless(seed=7, variants=1))


def _prod_app(texts: dict[str, str]) -> Any:
    """Answers with the request's planted text, and records a tool output carrying it."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        rid = dict(scope["headers"]).get(b"x-request-id", b"").decode()
        text = texts.get(rid, "ok")
        record_tool_call("lookup_conjugation", {"q": "x"}, text)
        set_retrieved([(f"doc-{rid}", f"Snippet: {text}")])  # a retrieved passage quoting it
        answer = orjson.dumps(
            {"choices": [{"message": {"role": "assistant", "content": f"You said: {text}"}}]}
        )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    return app


def _echo(body: dict[str, Any]) -> dict[str, Any]:
    """The candidate: repeats the last user message and every tool output it was given, in its
    answer and as the passage it says it retrieved."""
    parts = [
        str(m.get("content") or "") for m in body.get("messages", []) if m.get("role") in ("user", "tool")
    ]
    text = " | ".join(parts)
    return {
        "choices": [{"message": {"role": "assistant", "content": text}}],
        "retrieved": [{"id": "echo", "text": text}],
    }


@pytest.mark.timeout(240)
async def test_no_planted_secret_reaches_any_topic(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    texts = {f"p{i}": item.text for i, item in enumerate(PLANTED)}
    texts |= {f"h{i}": text for i, text in enumerate(HARMLESS)}
    publisher = ShadowPublisher(
        HookSettings(queue_size=len(texts)),
        topic=it_settings.topics.requests_topic,
        producer_factory=lambda: AIOKafkaProducer(**kafka_kwargs, acks="all", linger_ms=5),
    )
    await publisher.start()
    app = ShadowMirrorMiddleware(_prod_app(texts), publisher)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://prod") as client:
        for rid, text in texts.items():
            secret = next((p.secret for p in PLANTED if p.text == text), "no-secret-here")
            body = {"model": "m", "messages": [{"role": "user", "content": text}]}
            in_header = secret.replace("\n", " ").encode()  # a header holds one line, in bytes
            headers = [(b"x-request-id", rid.encode()), (b"authorization", b"Bearer " + in_header)]
            headers.append((b"x-api-key", in_header))
            resp = await client.post("/v1/chat/completions", json=body, headers=headers)
            assert resp.status_code == 200
    await publisher.stop(drain_timeout_s=60)
    assert publisher.stats.published == len(texts), publisher.stats

    worker = ShadowWorker(it_settings, CallableCandidate("cand", _echo), kafka_kwargs)
    comparator = Comparator(it_settings, build_embedder(it_settings.compare), kafka_kwargs)
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(comparator.run())]
    try:
        compared = await read_topic(
            kafka_kwargs, it_settings.topics.compare_topic, want=len(texts), timeout_s=150
        )
        assert len(compared) == len(texts)
    finally:
        worker.stop()
        comparator.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)

    raw: list[str] = []
    where: list[str] = []  # the topic of each raw record (for the failure message)
    for topic in it_settings.topics.all_topics():
        records = await read_topic(kafka_kwargs, topic, want=10**9, timeout_s=4)
        for r in records:
            parts = [r.key or b"", r.value or b"", *(v or b"" for _, v in (r.headers or ()))]
            raw.append(b"\x00".join(parts).decode(errors="replace"))
            where.append(topic)
    everything = "\n".join(raw)
    assert len(raw) >= 3 * len(texts)  # requests, shadow results and comparisons at least
    found = [p for p in PLANTED if leaked_in_json(p.secret, everything)]
    # on failure, say where: the records that hold a piece of each leaked secret
    detail = {
        f"{p.kind}/{p.form}": [
            (where[i], record[:300]) for i, record in enumerate(raw) if leaked_in_json(p.secret, record)
        ][:3]
        for p in found
    }
    assert [f"{p.kind}/{p.form}" for p in found] == [], detail
    altered = [t for t in HARMLESS if json_escaped(t) not in everything]
    assert len(altered) <= len(HARMLESS) // 100, altered
