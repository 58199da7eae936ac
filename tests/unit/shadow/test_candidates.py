"""OpenAICandidate against a real uvicorn server on 127.0.0.1 (OS-chosen port), one route per case."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import pytest_asyncio
from pydantic import SecretStr

from shadowlane.demo.asgi_util import Receive, Scope, Send, lifespan, read_body, send_json
from shadowlane.demo.serve import RunningServer, serve
from shadowlane.shadow.candidates import SHADOW_HEADER, CandidateError, OpenAICandidate

COMPLETIONS = "/v1/chat/completions"


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeOpenAI:
    """A tiny ASGI app: the first path segment picks the behaviour, every request is recorded."""

    seen: list[Seen] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        raw = await read_body(receive)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        path: str = scope["path"]
        body = orjson.loads(raw) if raw else {}
        self.seen.append(Seen(path, headers, body))
        route = path.removesuffix(COMPLETIONS).strip("/")
        if route == "ok":
            tool_call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            await send_json(
                send,
                200,
                {
                    "model": body.get("model"),
                    "choices": [
                        {"message": {"role": "assistant", "content": "hi", "tool_calls": [tool_call]}}
                    ],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
                },
            )
        elif route == "cite":
            await send_json(
                send,
                200,
                {
                    "model": "served-model",
                    "choices": [{"message": {"role": "assistant", "content": "see [doc:a]"}}],
                    "citations": [{"id": "kb-1", "score": 0.9}, "kb-2", {"title": "no id"}],
                },
            )
        elif route == "r429":
            await send_json(send, 429, {"error": "slow down"}, headers={"retry-after": "7"})
        elif route == "r429-bad-retry-after":
            await send_json(send, 429, {"error": "slow down"}, headers={"retry-after": "soon"})
        elif route == "r503":
            await send_json(send, 503, {"error": "overloaded"})
        elif route == "r400":
            await send_json(send, 400, {"error": "bad model"})
        elif route == "notjson":
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
            )
            await send({"type": "http.response.body", "body": b"<html>definitely not json</html>"})
        elif route == "wrongshape":
            await send_json(send, 200, {"object": "list", "data": []})
        elif route == "slow":
            await asyncio.sleep(0.4)
            await send_json(send, 200, {"choices": [{"message": {"content": "late"}}]})
        else:
            await send_json(send, 404, {"error": "no route"})


@dataclass
class Fixture:
    app: FakeOpenAI
    server: RunningServer


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fake() -> AsyncIterator[Fixture]:
    app = FakeOpenAI()
    server = await serve(app)
    try:
        yield Fixture(app, server)
    finally:
        await server.stop()


BODY: dict[str, Any] = {"model": "prod-model", "messages": [{"role": "user", "content": "hello"}]}


async def chat(
    base_url: str, *, model: str | None = None, timeout_s: float = 5.0, api_key: str | None = None
) -> Any:
    cand = OpenAICandidate(
        "cand",
        base_url,
        model=model,
        timeout_s=timeout_s,
        api_key=SecretStr(api_key) if api_key is not None else None,
    )
    try:
        return await cand.chat(dict(BODY))
    finally:
        await cand.aclose()


async def test_sends_shadow_header_and_parses_the_reply(fake: Fixture) -> None:
    before = len(fake.app.seen)
    reply = await chat(fake.server.url + "/ok")
    seen = fake.app.seen[before:]
    assert len(seen) == 1
    assert seen[0].path == "/ok" + COMPLETIONS
    assert seen[0].headers[SHADOW_HEADER] == "1"
    assert seen[0].headers["content-type"] == "application/json"
    assert "authorization" not in seen[0].headers
    assert seen[0].body == BODY
    assert reply.content == "hi"
    assert reply.model == "prod-model"
    assert reply.usage == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    assert [c["function"]["name"] for c in reply.tool_calls] == ["f"]


async def test_citations_and_model_are_read_from_the_response(fake: Fixture) -> None:
    reply = await chat(fake.server.url + "/cite")
    assert reply.cited_ids == ("kb-1", "kb-2")
    assert reply.model == "served-model"
    assert reply.content == "see [doc:a]"
    plain = await chat(fake.server.url + "/ok")
    assert plain.cited_ids == ()


async def test_model_override_and_api_key(fake: Fixture) -> None:
    before = len(fake.app.seen)
    reply = await chat(fake.server.url + "/ok/", model="cand-model", api_key="k-123")
    seen = fake.app.seen[before:]
    assert seen[0].body["model"] == "cand-model"
    assert seen[0].body["messages"] == BODY["messages"]
    assert seen[0].headers["authorization"] == "Bearer k-123"
    assert reply.model == "cand-model"
    assert BODY["model"] == "prod-model"  # the caller's body is not mutated


async def test_429_is_rate_limited_with_retry_after(fake: Fixture) -> None:
    with pytest.raises(CandidateError) as exc:
        await chat(fake.server.url + "/r429")
    assert exc.value.error_class == "rate_limited"
    assert exc.value.retry_after_s == 7.0
    assert exc.value.retriable


async def test_unparseable_retry_after_is_ignored(fake: Fixture) -> None:
    with pytest.raises(CandidateError) as exc:
        await chat(fake.server.url + "/r429-bad-retry-after")
    assert exc.value.error_class == "rate_limited"
    assert exc.value.retry_after_s is None


async def test_503_is_a_retriable_server_error(fake: Fixture) -> None:
    with pytest.raises(CandidateError) as exc:
        await chat(fake.server.url + "/r503")
    assert exc.value.error_class == "server_error"
    assert exc.value.retriable


async def test_400_is_a_non_retriable_client_error(fake: Fixture) -> None:
    with pytest.raises(CandidateError) as exc:
        await chat(fake.server.url + "/r400")
    assert exc.value.error_class == "client_error"
    assert not exc.value.retriable
    assert "400" in str(exc.value)
    assert "bad model" in str(exc.value)


async def test_non_json_body_is_an_invalid_response(fake: Fixture) -> None:
    with pytest.raises(CandidateError) as exc:
        await chat(fake.server.url + "/notjson")
    assert exc.value.error_class == "invalid_response"
    assert not exc.value.retriable


async def test_json_of_the_wrong_shape_is_an_invalid_response(fake: Fixture) -> None:
    with pytest.raises(CandidateError) as exc:
        await chat(fake.server.url + "/wrongshape")
    assert exc.value.error_class == "invalid_response"


async def test_slow_server_is_a_timeout(fake: Fixture) -> None:
    with pytest.raises(CandidateError) as exc:
        await chat(fake.server.url + "/slow", timeout_s=0.1)
    assert exc.value.error_class == "timeout"
    assert exc.value.retriable


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_unreachable_port_is_a_server_error() -> None:
    with pytest.raises(CandidateError) as exc:
        await chat(f"http://127.0.0.1:{_free_port()}", timeout_s=2.0)
    assert exc.value.error_class == "server_error"
    assert "unreachable" in str(exc.value)
    assert exc.value.retriable
