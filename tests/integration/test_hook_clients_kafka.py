"""Client-side captures against the real broker: the real ``openai`` SDK (sync and async, plain
and streamed, with tool calls) and the real ``litellm`` package call the demo model under uvicorn;
the envelopes are read back from the requests topic. Replays are never republished."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from shadowlane.contracts.codec import decode
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.demo.model_server import ModelBehaviour, model_app
from shadowlane.demo.serve import serve
from shadowlane.hook.asgi import ShadowMirrorMiddleware
from shadowlane.hook.context import SHADOW_HEADER, recording, replaying, set_buckets
from shadowlane.hook.openai_client import capture_openai
from shadowlane.settings import Settings
from shadowlane.shadow.candidates import CallableCandidate
from tests.support.hook_capture import (
    SENTENCE,
    TOOL_PARAMS,
    async_client,
    first_turn,
    kafka_publisher,
    litellm_callback,
    model_server,
    offline_litellm,
    second_turn,
    sync_client,
)
from tests.support.hook_counts import assert_every_request_counted_once
from tests.support.kafka_io import read_topic
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

FINAL = "Corrected: She went to the market yesterday."
TOOL_NAMES = ["lookup_conjugation", "save_progress"]


def rid(value: str) -> dict[str, str]:
    return {"x-request-id": value}


async def read_envelopes(
    settings: Settings, kafka_kwargs: dict[str, Any], want: int
) -> dict[str, RequestEnvelope]:
    records = await read_topic(kafka_kwargs, settings.topics.requests_topic, want=want, settle_s=1.0)
    envs = [decode(r.value, RequestEnvelope) for r in records]
    assert all(r.key == e.req_hash.encode() for r, e in zip(records, envs, strict=True))
    return {env.req_id: env for env in envs}


def assert_tool_turn(env: RequestEnvelope) -> None:
    assert env.request.messages[-1].content == first_turn()[-1]["content"]
    assert [t.function.name for t in env.prod.tool_calls] == TOOL_NAMES
    assert orjson.loads(env.prod.tool_calls[0].function.arguments) == {
        "verb": "go",
        "tense": "past",
        "person": "she",
    }
    assert env.prod.answer is None


def assert_final_turn(env: RequestEnvelope) -> None:
    assert env.prod.answer == FINAL
    assert [m.role for m in env.request.messages] == ["system", "user", "assistant", "tool", "tool"]
    assert [t.name for t in env.tool_io] == TOOL_NAMES  # the tool answers, paired from the messages


async def test_openai_sdk_calls_reach_the_topic(it_settings: Settings, kafka_kwargs: dict[str, Any]) -> None:
    publisher = kafka_publisher(it_settings, kafka_kwargs)
    await publisher.start()
    async with model_server() as server:
        sync = capture_openai(sync_client(server), publisher)
        aio = capture_openai(async_client(server), publisher)

        def sync_conversation() -> str:  # a plain tool turn, then the answer streamed
            ask = sync.chat.completions.create(
                model="tutor", messages=first_turn(), tools=TOOL_PARAMS, extra_headers=rid("sync-1")
            )
            assistant = ask.choices[0].message.model_dump(mode="json", exclude_unset=True)
            with sync.chat.completions.create(
                model="tutor",
                messages=second_turn(first_turn(), assistant),
                stream=True,
                extra_headers=rid("sync-2"),
            ) as stream:
                return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

        assert await asyncio.to_thread(sync_conversation) == FINAL

        stream = await aio.chat.completions.create(  # the tool turn streamed, then the answer plain
            model="tutor", messages=first_turn(), tools=TOOL_PARAMS, stream=True, extra_headers=rid("async-1")
        )
        calls: dict[int, dict[str, Any]] = {}
        async for chunk in stream:
            for tc in chunk.choices[0].delta.tool_calls or () if chunk.choices else ():
                slot = calls.setdefault(tc.index, {"id": "", "type": "function", "name": "", "arguments": ""})
                slot["id"] = tc.id or slot["id"]
                slot["name"] += tc.function.name or "" if tc.function else ""
                slot["arguments"] += tc.function.arguments or "" if tc.function else ""
        assistant = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in calls.values()
            ],
        }
        with recording():
            set_buckets(tense="past")
            final = await aio.chat.completions.create(
                model="tutor", messages=second_turn(first_turn(), assistant), extra_headers=rid("async-2")
            )
        assert final.choices[0].message.content == FINAL
    await publisher.stop()
    assert publisher.stats.published == 4
    envs = await read_envelopes(it_settings, kafka_kwargs, want=4)
    assert set(envs) == {"sync-1", "sync-2", "async-1", "async-2"}
    assert_tool_turn(envs["sync-1"])
    assert_tool_turn(envs["async-1"])
    assert_final_turn(envs["sync-2"])
    assert_final_turn(envs["async-2"])
    assert envs["sync-2"].request.params["stream"] is True
    assert envs["async-2"].buckets == {"tense": "past"}
    assert envs["async-2"].prod.cited_ids == ("conj-table:go",)


async def test_litellm_calls_reach_the_topic(it_settings: Settings, kafka_kwargs: dict[str, Any]) -> None:
    litellm = offline_litellm()
    from shadowlane.hook.litellm_logger import ShadowLiteLLMLogger

    publisher = kafka_publisher(it_settings, kafka_kwargs)
    await publisher.start()
    async with model_server() as server:
        args = {"model": "openai/tutor", "api_base": server.url + "/v1", "api_key": "x"}
        with litellm_callback(litellm, ShadowLiteLLMLogger(publisher)):
            ask = await asyncio.to_thread(
                litellm.completion,
                **args,
                messages=first_turn(),
                tools=TOOL_PARAMS,
                extra_headers=rid("ll-1"),
            )
            assistant = ask.choices[0].message.model_dump(mode="json", exclude_none=True)
            stream = await litellm.acompletion(
                **args, messages=second_turn(first_turn(), assistant), stream=True, extra_headers=rid("ll-2")
            )
            text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
            assert text == FINAL
            # the sync call's callback runs on LiteLLM's logging thread, the async one in a task
            assert await wait_until(lambda: publisher.stats.seen == 2, timeout_s=10)
    await publisher.stop()
    assert publisher.stats.published == 2
    envs = await read_envelopes(it_settings, kafka_kwargs, want=2)
    assert set(envs) == {"ll-1", "ll-2"}
    assert_tool_turn(envs["ll-1"])
    assert_final_turn(envs["ll-2"])


async def test_replays_are_not_republished(it_settings: Settings, kafka_kwargs: dict[str, Any]) -> None:
    litellm = offline_litellm()
    from shadowlane.hook.litellm_logger import ShadowLiteLLMLogger

    publisher = kafka_publisher(it_settings, kafka_kwargs)
    await publisher.start()
    behaviour = ModelBehaviour("grammar-a", latency_ms=0)
    hooked = await serve(ShadowMirrorMiddleware(model_app(behaviour), publisher))
    try:
        async with model_server() as server, httpx.AsyncClient(base_url=hooked.url) as http:
            client = capture_openai(async_client(server), publisher)
            body = {"model": "tutor", "messages": first_turn()}
            # 1. a replay sent over HTTP into a hooked service
            marked = {SHADOW_HEADER: "1", "x-request-id": "replay-http"}
            assert (await http.post("/v1/chat/completions", json=body, headers=marked)).status_code == 200
            # 2. a wrapped client asked to send the marker
            extra = {SHADOW_HEADER: "1", "x-request-id": "replay-sdk"}
            await client.chat.completions.create(model="tutor", messages=first_turn(), extra_headers=extra)

            # 3. an in-process candidate calling the wrapped client, as the shadow worker runs it
            async def candidate(replayed: dict[str, Any]) -> Any:
                resp = await client.chat.completions.create(
                    model="cand", messages=replayed["messages"], extra_headers=rid("replay-candidate")
                )
                return resp.model_dump(mode="json")

            reply = await CallableCandidate("in-process", candidate).chat(body)
            assert reply.tool_calls
            # 4. a LiteLLM call inside a replay
            with litellm_callback(litellm, ShadowLiteLLMLogger(publisher)), replaying():
                await litellm.acompletion(
                    model="openai/tutor",
                    api_base=server.url + "/v1",
                    api_key="x",
                    messages=first_turn(),
                    extra_headers=rid("replay-litellm"),
                )
                assert await wait_until(lambda: publisher.stats.skipped_shadow == 4, timeout_s=10)
            # prod traffic, mirrored as usual
            assert (
                await http.post("/v1/chat/completions", json=body, headers=rid("prod-1"))
            ).status_code == 200
    finally:
        await hooked.stop()
    await publisher.stop()
    assert behaviour.shadow_calls == 1  # the hooked service did serve the replay
    assert publisher.stats.skipped_shadow == 4
    assert_every_request_counted_once(publisher.stats)
    envs = await read_envelopes(it_settings, kafka_kwargs, want=1)
    assert list(envs) == ["prod-1"]
    assert envs["prod-1"].request.messages[-1].content == first_turn()[-1]["content"]
    assert SENTENCE in str(envs["prod-1"].request.messages[-1].content)
