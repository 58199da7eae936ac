"""docs/hook.md's examples, run as written against the real broker: the FastAPI quickstart under
uvicorn (the README's quickstart is the same code), the ``openai`` SDK wrapper and the LiteLLM
callback against the demo model."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from shadowlane.contracts.codec import decode
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.demo.model_server import NO_SENTENCE, ModelBehaviour, answer
from shadowlane.demo.serve import serve
from shadowlane.settings import Settings
from tests.support.docs_examples import examples, run_examples
from tests.support.hook_capture import first_turn, model_server, offline_litellm
from tests.support.kafka_io import read_topic
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

PAGE = "docs/hook.md"
CAPTURE_POINTS = ("fastapi", "openai", "litellm")


@pytest.fixture
def hook_env(monkeypatch: pytest.MonkeyPatch, it_settings: Settings, kafka_kwargs: dict[str, Any]) -> None:
    """The environment the examples read: this test's broker and topics, nothing else."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", it_settings.bootstrap_servers or "")
    monkeypatch.setenv("SHADOWLANE_TOPICS__PREFIX", it_settings.topics.prefix)
    monkeypatch.delenv("SHADOWLANE_KAFKA__BOOTSTRAP_SERVERS", raising=False)


async def mirrored(settings: Settings, kafka_kwargs: dict[str, Any]) -> RequestEnvelope:
    records = await read_topic(kafka_kwargs, settings.topics.requests_topic, want=1, settle_s=1.0)
    assert len(records) == 1
    return decode(records[0].value, RequestEnvelope)


def test_the_readme_quickstart_is_the_fastapi_example_run_here() -> None:
    assert examples("README.md") == {"fastapi": examples(PAGE)["fastapi"]}


def test_every_capture_point_has_an_example_of_at_most_15_lines() -> None:
    found = examples(PAGE)
    assert set(found) == {"publisher", *CAPTURE_POINTS}
    for name in CAPTURE_POINTS:
        assert len(found[name].splitlines()) <= 15, name


@pytest.mark.usefixtures("hook_env")
async def test_the_fastapi_quickstart_mirrors_and_exposes_its_counters(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    ns = run_examples(PAGE, "fastapi")
    app: FastAPI = ns["app"]
    behaviour = ModelBehaviour("grammar-a", latency_ms=0)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict[str, Any]:  # the service's own handler
        body = await request.json()
        return {
            "object": "chat.completion",
            "choices": [{"index": 0, "message": answer(behaviour, body["messages"])}],
        }

    server = await serve(app)  # its lifespan starts the publisher
    try:
        async with httpx.AsyncClient(base_url=server.url, follow_redirects=True) as client:
            body = {"model": "tutor", "messages": first_turn()}
            resp = await client.post(
                "/v1/chat/completions", json=body, headers={"x-request-id": "docs-fastapi"}
            )
            assert resp.status_code == 200
            metrics = (await client.get("/metrics")).text
    finally:
        await server.stop()  # its lifespan stops the publisher, draining the queue
    assert 'shadowlane_hook_seen_total{service="my-llm-api"} 1.0' in metrics
    assert 'shadowlane_hook_skipped_shadow_total{service="my-llm-api"} 0.0' in metrics
    env = await mirrored(it_settings, kafka_kwargs)
    assert env.req_id == "docs-fastapi"
    assert [t.function.name for t in env.prod.tool_calls] == ["lookup_conjugation", "save_progress"]


@pytest.mark.usefixtures("hook_env")
async def test_the_openai_example_mirrors_its_calls(
    monkeypatch: pytest.MonkeyPatch, it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    async with model_server() as model:
        monkeypatch.setenv("OPENAI_BASE_URL", model.url + "/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "x")
        ns = run_examples(PAGE, "publisher", "openai")
        await ns["publisher"].start()
        try:
            assert await ns["answer"]("Hello there") == NO_SENTENCE
        finally:
            await ns["publisher"].stop()
    env = await mirrored(it_settings, kafka_kwargs)
    assert env.prod.answer == NO_SENTENCE
    assert env.request.messages[0].content == "Hello there"
    assert env.pins == {"prompt_ver": "tutor-v3"}


@pytest.mark.usefixtures("hook_env")
async def test_the_litellm_example_mirrors_its_calls(
    monkeypatch: pytest.MonkeyPatch, it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    litellm = offline_litellm()
    async with model_server() as model:
        monkeypatch.setenv("OPENAI_BASE_URL", model.url + "/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "x")
        ns = run_examples(PAGE, "publisher", "litellm")
        [callback] = litellm.callbacks
        publisher = ns["publisher"]
        await publisher.start()
        try:
            assert await ns["answer"]("Hello there") == NO_SENTENCE
            # LiteLLM runs the callback in a task after the call returns
            assert await wait_until(lambda: publisher.stats.seen == 1, timeout_s=10)
        finally:
            litellm.logging_callback_manager.remove_callback_from_all_lists(callback)
            await publisher.stop()
    env = await mirrored(it_settings, kafka_kwargs)
    assert env.prod.answer == NO_SENTENCE
    assert env.request.model == "gpt-4o-mini"
