"""shadowlane/hook/context.py: the replay marker, the recording block, and the shadow worker's
candidates running every call as a replay (so a hook in the same process never mirrors it)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from shadowlane.demo.asgi_util import Receive, Scope, Send, read_body, send_json
from shadowlane.hook.context import (
    SHADOW_HEADER,
    current_context,
    in_replay,
    recording,
    replaying,
    set_pins,
)
from shadowlane.hook.openai_client import capture_openai
from shadowlane.shadow.candidates import SHADOW_HEADER as WORKER_HEADER
from shadowlane.shadow.candidates import CallableCandidate, OpenAICandidate
from tests.support.hook_capture import SpyPublisher, async_client, first_turn, model_server

ANSWER = {"choices": [{"message": {"role": "assistant", "content": "ok"}}]}


def test_the_worker_sends_the_marker_the_hooks_look_for() -> None:
    assert WORKER_HEADER == SHADOW_HEADER == "x-shadowlane-shadow"


async def test_replaying_marks_its_block_and_the_tasks_started_in_it() -> None:
    assert not in_replay()
    with replaying():
        assert in_replay()
        with replaying():
            assert in_replay()
        assert in_replay()  # the inner block restores, not clears
        assert await asyncio.create_task(asyncio.sleep(0, result=in_replay()))
    assert not in_replay()
    assert not await asyncio.create_task(asyncio.sleep(0, result=in_replay()))


def test_recording_opens_a_context_for_its_block_only() -> None:
    assert current_context() is None
    with recording() as ctx:
        assert current_context() is ctx
        set_pins({"model_rev": "r1"})
    assert ctx.pins == {"model_rev": "r1"}
    assert current_context() is None
    set_pins({"model_rev": "r2"})  # outside: a no-op
    assert ctx.pins == {"model_rev": "r1"}


async def test_a_callable_candidate_runs_as_a_replay_sync_or_async() -> None:
    seen: list[bool] = []

    def sync_fn(body: dict[str, Any]) -> dict[str, Any]:
        seen.append(in_replay())
        return ANSWER

    async def async_fn(body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        seen.append(in_replay())
        return ANSWER

    for fn in (sync_fn, async_fn):
        reply = await CallableCandidate("c", fn).chat({"messages": []})
        assert reply.content == "ok"
    assert seen == [True, True]
    assert not in_replay()


async def test_a_captured_client_called_by_a_candidate_is_not_mirrored_again() -> None:
    publisher = SpyPublisher()
    async with model_server() as server:
        client = capture_openai(async_client(server), publisher)

        async def candidate_fn(body: dict[str, Any]) -> Any:
            resp = await client.chat.completions.create(model="cand", messages=body["messages"])
            return resp.model_dump(mode="json")

        reply = await CallableCandidate("in-process", candidate_fn).chat({"messages": first_turn()})
        await client.chat.completions.create(model="prod", messages=first_turn())  # prod traffic
    assert reply.tool_calls
    assert [orjson.loads(c["request"])["model"] for c in publisher.calls] == ["prod"]
    assert (publisher.stats.seen, publisher.stats.skipped_shadow) == (2, 1)


async def test_an_http_candidate_calls_as_a_replay_with_the_marker() -> None:
    seen: list[tuple[bool, str | None]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        seen.append((in_replay(), headers.get(SHADOW_HEADER)))
        await send_json(send, 200, ANSWER)

    candidate = OpenAICandidate("asgi", "http://candidate", api_key=SecretStr("k"))
    headers = candidate._client.headers
    await candidate.aclose()
    # the same client settings, serving an app in process (httpx's ASGI transport runs it in the
    # caller's context, as an in-process candidate would)
    candidate._client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://candidate", headers=headers
    )
    try:
        reply = await candidate.chat({"messages": []})
    finally:
        await candidate.aclose()
    assert reply.content == "ok"
    assert seen == [(True, "1")]
