"""shadowlane/hook/litellm_logger.py: the real ``litellm`` package calling the demo model on
loopback with the callback registered, captured into a real publisher (fake producer)."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from shadowlane.contracts.codec import decode
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.demo.model_server import TOOLS
from shadowlane.demo.serve import RunningServer
from shadowlane.hook.context import SHADOW_HEADER, recording, replaying, set_pins
from shadowlane.settings import HookSettings
from shadowlane.shadow.candidates import CallableCandidate
from tests.support.hook_capture import (
    SpyPublisher,
    first_turn,
    litellm_callback,
    model_server,
    offline_litellm,
    second_turn,
)
from tests.support.waiting import wait_until

if TYPE_CHECKING:
    from shadowlane.hook.litellm_logger import ShadowLiteLLMLogger

Logger = Callable[..., "ShadowLiteLLMLogger"]


@pytest.fixture(scope="module")
def litellm() -> ModuleType:
    return offline_litellm()


@pytest.fixture(scope="module")
def logger_class(litellm: ModuleType) -> Logger:
    from shadowlane.hook.litellm_logger import ShadowLiteLLMLogger

    return ShadowLiteLLMLogger


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    async with model_server() as running:
        yield running


@pytest.fixture
async def publisher(litellm: ModuleType, logger_class: Logger) -> AsyncIterator[SpyPublisher]:
    pub = SpyPublisher()
    await pub.start()
    with litellm_callback(litellm, logger_class(pub)):
        yield pub
    await pub.stop(drain_timeout_s=2.0)


def call_args(server: RunningServer, **kwargs: Any) -> dict[str, Any]:
    return {"model": "openai/tutor", "api_base": server.url + "/v1", "api_key": "x", **kwargs}


def envelopes(pub: SpyPublisher) -> list[RequestEnvelope]:
    return [decode(sent.value, RequestEnvelope) for sent in pub.factory.sink]


async def test_a_sync_completion_is_mirrored_with_its_tool_calls(
    litellm: ModuleType, publisher: SpyPublisher, server: RunningServer
) -> None:
    headers = {"x-request-id": "ll-1", "x-tenant-id": "acme"}
    args = call_args(server, messages=first_turn(), tools=TOOLS, temperature=0, extra_headers=headers)
    resp = await asyncio.to_thread(litellm.completion, **args)
    assert await wait_until(lambda: publisher.stats.published == 1, timeout_s=10)
    [call] = publisher.calls
    assert (call["req_id"], call["tenant"], call["status"]) == ("ll-1", "acme", 200)
    request = orjson.loads(call["request"])
    assert (request["model"], request["messages"], request["tools"]) == ("tutor", first_turn(), TOOLS)
    assert request["temperature"] == 0
    assert "extra_headers" not in request
    assert call["latency_ms"] > 0
    [env] = envelopes(publisher)
    assert [tc.function.name for tc in env.prod.tool_calls] == ["lookup_conjugation", "save_progress"]
    assert [tc.id for tc in env.prod.tool_calls] == [tc.id for tc in resp.choices[0].message.tool_calls]


async def test_an_async_completion_is_mirrored_with_what_was_recorded(
    litellm: ModuleType, publisher: SpyPublisher, server: RunningServer
) -> None:
    first = first_turn()
    ask = await litellm.acompletion(**call_args(server, messages=first, tools=TOOLS))
    assistant = ask.choices[0].message.model_dump(mode="json", exclude_none=True)
    with recording():
        set_pins({"router": "r1"})
        final = await litellm.acompletion(**call_args(server, messages=second_turn(first, assistant)))
    assert await wait_until(lambda: publisher.stats.published == 2, timeout_s=10)
    answered = next(env for env in envelopes(publisher) if env.prod.answer)
    assert answered.prod.answer == final.choices[0].message.content
    assert answered.pins == {"router": "r1"}
    assert answered.req_id == publisher.calls[1]["req_id"]  # the litellm_call_id, without a header
    assert [t.name for t in answered.tool_io] == ["lookup_conjugation", "save_progress"]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_a_stream_is_mirrored_once_reassembled(
    litellm: ModuleType, publisher: SpyPublisher, server: RunningServer, is_async: bool
) -> None:
    args = call_args(server, messages=first_turn(), tools=TOOLS, stream=True)
    if is_async:
        stream = await litellm.acompletion(**args)
        chunks = [chunk async for chunk in stream]
    else:
        chunks = await asyncio.to_thread(lambda: list(litellm.completion(**args)))
    assert len(chunks) > 3
    assert await wait_until(lambda: publisher.stats.published == 1, timeout_s=10)
    await asyncio.sleep(0.2)
    assert len(publisher.calls) == 1  # once per call, not per chunk
    [env] = envelopes(publisher)
    assert [tc.function.name for tc in env.prod.tool_calls] == ["lookup_conjugation", "save_progress"]
    assert orjson.loads(env.prod.tool_calls[0].function.arguments)["verb"] == "go"


async def test_a_router_call_is_mirrored(
    litellm: ModuleType, publisher: SpyPublisher, server: RunningServer
) -> None:
    deployment = {"model": "openai/grammar-a", "api_base": server.url + "/v1", "api_key": "x"}
    router = litellm.Router(model_list=[{"model_name": "tutor", "litellm_params": deployment}])
    await router.acompletion(model="tutor", messages=first_turn())
    assert await wait_until(lambda: publisher.stats.published == 1, timeout_s=10)
    assert orjson.loads(publisher.calls[0]["request"])["messages"] == first_turn()


async def test_replays_are_not_mirrored(
    litellm: ModuleType, publisher: SpyPublisher, server: RunningServer
) -> None:
    await litellm.acompletion(**call_args(server, messages=first_turn(), extra_headers={SHADOW_HEADER: "1"}))
    with replaying():
        await litellm.acompletion(**call_args(server, messages=first_turn()))
    await asyncio.to_thread(
        litellm.completion, **call_args(server, messages=first_turn(), extra_headers={SHADOW_HEADER: "1"})
    )

    async def candidate(body: dict[str, Any]) -> Any:
        resp = await litellm.acompletion(**call_args(server, messages=body["messages"]))
        return resp.model_dump(mode="json")

    await CallableCandidate("via-litellm", candidate).chat({"messages": first_turn()})
    assert await wait_until(lambda: publisher.stats.skipped_shadow == 4, timeout_s=10)
    assert publisher.calls == []
    assert publisher.stats.seen == 4


async def test_unsampled_calls_are_counted(
    litellm: ModuleType, logger_class: Logger, server: RunningServer
) -> None:
    pub = SpyPublisher(HookSettings(sample_ratio=0.0))
    with litellm_callback(litellm, logger_class(pub)):
        await litellm.acompletion(**call_args(server, messages=first_turn()))
        assert await wait_until(lambda: pub.stats.seen == 1, timeout_s=10)
    assert (pub.stats.sampled_out, pub.calls) == (1, [])


async def test_autostart_starts_the_publisher_on_litellms_loop(
    litellm: ModuleType, logger_class: Logger, server: RunningServer
) -> None:
    pub = SpyPublisher()
    try:
        with litellm_callback(litellm, logger_class(pub, autostart=True)):  # as a proxy config builds it
            await litellm.acompletion(**call_args(server, messages=first_turn()))
            assert await wait_until(lambda: pub.stats.published == 1, timeout_s=10)
    finally:
        await pub.stop(drain_timeout_s=2.0)
    assert pub.stats.dropped_not_running == 0


PROXY_BODY = {"model": "tutor", "messages": first_turn(), "temperature": 0.2, "user": "u-9"}


def proxy_kwargs(**headers: str) -> dict[str, Any]:
    """What LiteLLM hands a callback when it runs as a proxy (the parts the callback reads)."""
    request = {
        "url": "http://proxy/v1/chat/completions",
        "method": "POST",
        "headers": headers,
        "body": PROXY_BODY,
    }
    return {
        "model": "grammar-a",
        "messages": first_turn(),
        "optional_params": {"temperature": 0.2, "user": "u-9", "extra_body": {}},
        "litellm_call_id": "call-7",
        "litellm_params": {"proxy_server_request": request, "metadata": {"headers": headers}},
    }


RESPONSE = {"choices": [{"message": {"role": "assistant", "content": "Corrected."}}], "model": "grammar-a"}


def test_behind_a_proxy_the_request_is_what_its_client_sent(logger_class: Logger) -> None:
    pub = SpyPublisher()
    start = datetime.datetime(2026, 1, 1, 12, 0, 0)
    logger_class(pub).capture(
        proxy_kwargs(**{"X-Request-ID": "p-1", "traceparent": "00-t-s-01"}),
        RESPONSE,
        start,
        start + datetime.timedelta(milliseconds=250),
    )
    [call] = pub.calls
    assert orjson.loads(call["request"]) == PROXY_BODY
    assert (call["req_id"], call["trace_id"], call["latency_ms"]) == ("p-1", "00-t-s-01", 250.0)
    assert orjson.loads(call["response"]) == RESPONSE


def test_a_replay_sent_to_the_proxy_is_not_mirrored(logger_class: Logger) -> None:
    pub = SpyPublisher()
    logger_class(pub).capture(proxy_kwargs(**{SHADOW_HEADER: "1"}), RESPONSE, None, None)
    assert (pub.calls, pub.stats.skipped_shadow) == ([], 1)


def test_without_a_proxy_the_request_is_rebuilt_from_the_call(logger_class: Logger) -> None:
    from shadowlane.hook.litellm_logger import request_body

    kwargs = proxy_kwargs()
    kwargs["litellm_params"] = {}
    kwargs["optional_params"] = {"temperature": 0.2, "extra_body": {"top_k": 3}, "extra_headers": {"a": "b"}}
    assert request_body(kwargs) == {
        "model": "grammar-a",
        "messages": first_turn(),
        "temperature": 0.2,
        "top_k": 3,
    }


def test_a_capture_failure_is_counted_never_raised(logger_class: Logger) -> None:
    pub = SpyPublisher()
    logger = logger_class(pub)
    logger.capture(proxy_kwargs(), {"unreadable": object()}, None, None)
    logger.capture("not kwargs", RESPONSE, None, None)  # not a LiteLLM call: ignored
    assert pub.calls == []
    assert (pub.stats.seen, pub.stats.dropped_invalid) == (1, 1)
