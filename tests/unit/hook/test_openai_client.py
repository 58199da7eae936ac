"""shadowlane/hook/openai_client.py: the real ``openai`` SDK against the demo model on loopback,
captured into a real publisher (fake producer): what is handed over, when, and what is counted."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import orjson
import pytest

from shadowlane.contracts.codec import decode
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.demo.model_server import ModelBehaviour
from shadowlane.demo.serve import RunningServer
from shadowlane.hook.context import SHADOW_HEADER, recording, replaying, set_gold, set_pins
from shadowlane.hook.openai_client import CapturedAsyncStream, CapturedStream, capture_openai
from shadowlane.settings import HookSettings
from tests.support.hook_capture import (
    TOOL_PARAMS,
    SpyPublisher,
    async_client,
    first_turn,
    model_server,
    second_turn,
    sync_client,
)
from tests.support.hook_counts import assert_every_request_counted_once
from tests.support.waiting import wait_until

HEADERS = {"x-request-id": "oa-1", "x-tenant-id": "acme", "traceparent": "00-abc-def-01"}


@pytest.fixture
async def publisher() -> AsyncIterator[SpyPublisher]:
    pub = SpyPublisher()
    await pub.start()
    yield pub
    await pub.stop(drain_timeout_s=2.0)


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    async with model_server() as running:
        yield running


def envelopes(pub: SpyPublisher) -> list[RequestEnvelope]:
    return [decode(sent.value, RequestEnvelope) for sent in pub.factory.sink]


async def test_a_call_is_handed_over_after_it_returns_with_the_request_as_sent(
    publisher: SpyPublisher, server: RunningServer
) -> None:
    client = capture_openai(async_client(server), publisher)
    messages = first_turn()
    resp = await client.chat.completions.create(
        model="tutor", messages=messages, tools=TOOL_PARAMS, temperature=0, extra_headers=HEADERS
    )
    assert resp.choices[0].message.tool_calls  # the caller gets the SDK's own object
    [call] = publisher.calls
    assert (call["req_id"], call["tenant"], call["trace_id"]) == ("oa-1", "acme", "00-abc-def-01")
    assert (call["endpoint"], call["status"]) == ("/v1/chat/completions", 200)
    assert call["bucket"] == publisher.should_sample("oa-1")[1]
    assert orjson.loads(call["request"]) == {
        "model": "tutor",
        "messages": messages,
        "tools": TOOL_PARAMS,
        "temperature": 0,
    }
    response = orjson.loads(call["response"])
    assert response["object"] == "chat.completion"
    assert response["choices"][0]["message"]["tool_calls"] == [
        tc.model_dump(mode="json", exclude_unset=True) for tc in resp.choices[0].message.tool_calls
    ]
    assert await wait_until(lambda: publisher.stats.published == 1)
    [env] = envelopes(publisher)
    assert env.req_id == "oa-1"
    assert [m.content for m in env.request.messages] == [m["content"] for m in messages]
    assert [tc.function.name for tc in env.prod.tool_calls] == ["lookup_conjugation", "save_progress"]


async def test_a_sync_client_is_captured_from_its_thread(
    publisher: SpyPublisher, server: RunningServer
) -> None:
    client = capture_openai(sync_client(server), publisher)

    def tutor_turns() -> str | None:
        first = first_turn()
        ask = client.chat.completions.create(model="tutor", messages=first, tools=TOOL_PARAMS)
        assistant = ask.choices[0].message.model_dump(mode="json", exclude_unset=True)
        final = client.chat.completions.create(model="tutor", messages=second_turn(first, assistant))
        return final.choices[0].message.content

    answer = await asyncio.to_thread(tutor_turns)
    assert answer == "Corrected: She went to the market yesterday."
    assert await wait_until(lambda: publisher.stats.published == 2)
    final = next(env for env in envelopes(publisher) if env.prod.answer)
    assert final.prod.answer == answer
    assert final.prod.cited_ids == ("conj-table:go",)  # the response's top-level citations
    assert [t.name for t in final.tool_io] == ["lookup_conjugation", "save_progress"]  # from the messages


async def test_an_async_stream_passes_through_and_is_published_once_exhausted(
    publisher: SpyPublisher, server: RunningServer
) -> None:
    client = capture_openai(async_client(server), publisher)
    plain = await client.chat.completions.create(model="tutor", messages=first_turn(), tools=TOOL_PARAMS)
    stream = await client.chat.completions.create(
        model="tutor",
        messages=first_turn(),
        tools=TOOL_PARAMS,
        stream=True,
        extra_headers={"x-request-id": "s-1"},
    )
    assert isinstance(stream, CapturedAsyncStream)
    chunks = []
    async for chunk in stream:
        chunks.append(chunk)
        assert len(publisher.calls) == 1  # only the plain call: nothing before the stream ends
    assert len(publisher.calls) == 2
    assert len(chunks) > 3
    assert await wait_until(lambda: publisher.stats.published == 2)
    streamed = next(env for env in envelopes(publisher) if env.req_id == "s-1")
    expected = [
        (tc.id, tc.function.name, orjson.loads(tc.function.arguments))
        for tc in plain.choices[0].message.tool_calls or []
    ]
    assert [
        (tc.id, tc.function.name, orjson.loads(tc.function.arguments)) for tc in streamed.prod.tool_calls
    ] == (expected)
    assert streamed.request.params.get("stream") is True


async def test_a_sync_stream_with_usage_is_reassembled(
    publisher: SpyPublisher, server: RunningServer
) -> None:
    client = capture_openai(sync_client(server), publisher)
    first = first_turn()
    ask = await asyncio.to_thread(
        client.chat.completions.create, model="tutor", messages=first, tools=TOOL_PARAMS
    )
    messages = second_turn(first, ask.choices[0].message.model_dump(mode="json", exclude_unset=True))

    def stream_answer() -> str:
        with client.chat.completions.create(
            model="tutor", messages=messages, stream=True, stream_options={"include_usage": True}
        ) as stream:
            assert isinstance(stream, CapturedStream)
            assert stream.response.status_code == 200  # everything else goes to the SDK's stream
            return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    text = await asyncio.to_thread(stream_answer)
    assert text == "Corrected: She went to the market yesterday."
    assert await wait_until(lambda: publisher.stats.published == 2)
    env = envelopes(publisher)[-1]
    assert env.prod.answer == text
    assert env.prod.usage is not None
    assert env.prod.usage.total_tokens > 0
    assert env.prod.cited_ids == ("conj-table:go",)


async def test_a_stream_closed_before_its_finish_is_counted_incomplete(
    publisher: SpyPublisher, server: RunningServer
) -> None:
    client = capture_openai(async_client(server), publisher)
    stream = await client.chat.completions.create(model="tutor", messages=first_turn(), stream=True)
    await stream.__anext__()
    await stream.close()
    await stream.close()  # closing twice counts once
    assert publisher.calls == []
    assert publisher.stats.dropped_incomplete == 1


async def test_a_stream_closed_after_its_finish_reason_is_published(
    publisher: SpyPublisher, server: RunningServer
) -> None:
    client = capture_openai(async_client(server), publisher)
    stream = await client.chat.completions.create(
        model="tutor", messages=first_turn(), tools=TOOL_PARAMS, stream=True
    )
    async with stream:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].finish_reason:
                break
    assert len(publisher.calls) == 1
    assert await wait_until(lambda: publisher.stats.published == 1)
    assert len(envelopes(publisher)[0].prod.tool_calls) == 2


async def test_an_abandoned_stream_is_counted_not_published(
    publisher: SpyPublisher, server: RunningServer
) -> None:
    client = capture_openai(async_client(server), publisher)
    stream = await client.chat.completions.create(model="tutor", messages=first_turn(), stream=True)
    await stream.__anext__()
    await stream.response.aclose()
    del stream
    gc.collect()
    assert publisher.calls == []
    assert publisher.stats.dropped_incomplete == 1


async def test_replays_are_never_captured(publisher: SpyPublisher) -> None:
    behaviour = ModelBehaviour("grammar-a", latency_ms=0)
    async with model_server(behaviour) as server:
        client = capture_openai(async_client(server), publisher)
        marked = capture_openai(async_client(server, default_headers={SHADOW_HEADER: "1"}), publisher)
        await client.chat.completions.create(
            model="tutor", messages=first_turn(), extra_headers={"X-Shadowlane-Shadow": "1"}
        )
        with replaying():
            await client.chat.completions.create(model="tutor", messages=first_turn())
        await marked.chat.completions.create(model="tutor", messages=first_turn())
        stream = await client.chat.completions.create(
            model="tutor", messages=first_turn(), stream=True, extra_headers={SHADOW_HEADER: "1"}
        )
        assert not isinstance(stream, CapturedAsyncStream)  # the SDK's own stream, untouched
        async for _ in stream:
            pass
    assert behaviour.calls == 4  # every call still reached the model
    assert publisher.calls == []
    assert publisher.stats.skipped_shadow == 4
    assert publisher.stats.seen == 4


async def test_unsampled_calls_are_counted_and_not_copied(server: RunningServer) -> None:
    pub = SpyPublisher(HookSettings(sample_ratio=0.0))
    await pub.start()
    try:
        client = capture_openai(async_client(server), pub)
        stream = await client.chat.completions.create(model="tutor", messages=first_turn(), stream=True)
        assert not isinstance(stream, CapturedAsyncStream)
        async for _ in stream:
            pass
        await client.chat.completions.create(model="tutor", messages=first_turn())
    finally:
        await pub.stop(drain_timeout_s=2.0)
    assert pub.calls == []
    assert (pub.stats.seen, pub.stats.sampled_out) == (2, 2)


async def test_an_error_answer_is_mirrored_with_its_status(publisher: SpyPublisher) -> None:
    async with model_server(ModelBehaviour("grammar-a", latency_ms=0, error_rate=1.0)) as server:
        client = capture_openai(async_client(server), publisher)
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="tutor", messages=first_turn())
    [call] = publisher.calls
    assert call["status"] == 503
    assert await wait_until(lambda: publisher.stats.published == 1)
    env = envelopes(publisher)[0]
    assert env.prod.status == 503
    assert env.prod.error == "model overloaded"


async def test_a_call_that_gets_no_answer_is_counted_incomplete(publisher: SpyPublisher) -> None:
    async with model_server() as server:
        client = capture_openai(async_client(server), publisher)
    with pytest.raises(openai.APIConnectionError):  # the server is gone
        await client.chat.completions.create(model="tutor", messages=first_turn())
    assert publisher.calls == []
    assert (publisher.stats.seen, publisher.stats.dropped_incomplete) == (1, 1)


async def test_a_capture_failure_is_counted_never_raised(
    publisher: SpyPublisher, server: RunningServer
) -> None:
    client = capture_openai(async_client(server), publisher)
    # the SDK sends a seed beyond 64 bits; the capture's JSON encoder cannot copy it
    resp = await client.chat.completions.create(model="tutor", messages=first_turn(), seed=2**70)
    assert resp.choices[0].message.tool_calls
    assert publisher.calls == []
    assert (publisher.stats.seen, publisher.stats.dropped_invalid) == (1, 1)


async def test_pins_and_labels_recorded_around_a_call_travel_with_it(
    publisher: SpyPublisher, server: RunningServer
) -> None:
    client = capture_openai(async_client(server), publisher)
    with recording():
        set_pins({"prompt_ver": "p7"})
        set_gold("Corrected: She went to the market yesterday.", source="eval-3")
        await client.chat.completions.create(model="tutor", messages=first_turn())
        set_pins({"prompt_ver": "later"})  # after the call: not part of its capture
    await client.chat.completions.create(model="tutor", messages=first_turn())  # outside: no labels
    assert await wait_until(lambda: publisher.stats.published == 2)
    labelled, plain = envelopes(publisher)
    assert labelled.pins == {"prompt_ver": "p7"}
    assert labelled.gold is not None
    assert labelled.gold.source == "eval-3"
    assert (plain.pins, plain.gold) == ({}, None)


async def test_one_shot_message_iterators_reach_both_the_model_and_the_capture(
    publisher: SpyPublisher, server: RunningServer
) -> None:
    client = capture_openai(async_client(server), publisher)
    messages: Iterator[Any] = iter(first_turn())
    resp = await client.chat.completions.create(model="tutor", messages=messages)
    assert resp.choices[0].message.tool_calls  # the model saw the sentence
    assert orjson.loads(publisher.calls[0]["request"])["messages"] == first_turn()


async def test_capturing_a_client_twice_replaces_the_first_capture(server: RunningServer) -> None:
    first, second = SpyPublisher(), SpyPublisher()
    client = capture_openai(capture_openai(async_client(server), first), second)
    await client.chat.completions.create(model="tutor", messages=first_turn())
    assert (len(first.calls), len(second.calls)) == (0, 1)


async def test_copies_of_a_captured_client_are_captured_too(
    publisher: SpyPublisher, server: RunningServer
) -> None:
    client = capture_openai(async_client(server), publisher)
    copy = client.with_options(timeout=10.0).copy(max_retries=1)
    await copy.chat.completions.create(
        model="tutor", messages=first_turn(), extra_headers={"x-request-id": "c-1"}
    )
    assert [call["req_id"] for call in publisher.calls] == ["c-1"]
    assert copy.timeout == 10.0


async def test_every_call_is_counted_once(server: RunningServer) -> None:
    pub = SpyPublisher(HookSettings(linger_ms=0, sample_ratio=0.5))
    await pub.start()
    client = capture_openai(async_client(server), pub)
    for i in range(12):  # about half sampled out
        await client.chat.completions.create(
            model="tutor", messages=first_turn(), extra_headers={"x-request-id": f"n-{i}"}
        )
    await client.chat.completions.create(model="tutor", messages=first_turn(), seed=2**70)
    stream = await client.chat.completions.create(
        model="tutor", messages=first_turn(), stream=True, extra_headers={"x-request-id": "n-0"}
    )
    await stream.close()
    with replaying():
        await client.chat.completions.create(model="tutor", messages=first_turn())
    await pub.stop(drain_timeout_s=2.0)
    assert pub.stats.seen == 15
    assert pub.stats.sampled_out > 0
    assert pub.stats.published > 0
    assert_every_request_counted_once(pub.stats)
