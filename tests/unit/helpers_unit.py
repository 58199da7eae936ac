"""Shared builders and fakes for the unit tests (no broker, no network)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from schemas.chat import ChatMessage, ChatRequest, FunctionSpec, ToolSpec
from schemas.envelope import ProdOutcome, RecordedToolCall, RequestEnvelope, SamplingDecision
from schemas.shadow_result import ShadowResult
from workers.hashing import canonical_json, req_hash

TOOL_NAMES = ("lookup", "save_progress")


def make_envelope(
    rid: str,
    *,
    ts_ms: int = 1_000,
    tools: tuple[str, ...] = TOOL_NAMES,
    tool_io: tuple[RecordedToolCall, ...] = (),
    user_text: str = "hello",
    model: str | None = "prod-model",
) -> RequestEnvelope:
    """A valid envelope whose ``req_hash`` is derived from ``rid`` like the hook does."""
    request = ChatRequest(
        model=model,
        messages=(
            ChatMessage(role="system", content="You are helpful."),
            ChatMessage(role="user", content=user_text),
        ),
        tools=tuple(ToolSpec(function=FunctionSpec(name=n, parameters={"type": "object"})) for n in tools),
        params={"temperature": 0.0},
    )
    return RequestEnvelope(
        req_id=rid,
        req_hash=req_hash(rid, canonical_json(request.model_dump(mode="json"))),
        ts_ms=ts_ms,
        endpoint="/v1/chat/completions",
        request=request,
        prod=ProdOutcome(answer="prod answer", status=200, latency_ms=12.0),
        tool_io=tool_io,
        sampling=SamplingDecision(ratio=1.0, bucket=0.5, salt_id="unit"),
    )


def make_result(env: RequestEnvelope, candidate: str, *, ts_ms: int = 1_000) -> ShadowResult:
    return ShadowResult(
        req_hash=env.req_hash,
        req_id=env.req_id,
        candidate=candidate,
        shadow_id=f"s-{env.req_id}-{candidate}",
        ts_ms=ts_ms,
        status="ok",
        answer="shadow answer",
        latency_ms=5.0,
    )


@dataclass
class Sent:
    topic: str
    value: bytes
    key: bytes | None


@dataclass
class FakeProducer:
    """In-memory stand-in for ``AIOKafkaProducer``: ``send`` returns an already-resolved future."""

    sink: list[Sent]
    fail_start: bool = False
    started: bool = False
    stopped: int = 0
    flushed: int = 0

    async def start(self) -> None:
        if self.fail_start:
            raise ConnectionError("broker down (fake)")
        self.started = True

    async def stop(self) -> None:
        self.stopped += 1

    async def flush(self) -> None:
        self.flushed += 1

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future[Any]:
        self.sink.append(Sent(topic, value, key))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result({"topic": topic, "offset": len(self.sink) - 1})
        return fut


@dataclass
class FakeProducerFactory:
    """Callable producer factory that records every producer it made."""

    fail_start: bool = False
    sink: list[Sent] = field(default_factory=list)
    made: list[FakeProducer] = field(default_factory=list)

    def __call__(self) -> FakeProducer:
        producer = FakeProducer(self.sink, fail_start=self.fail_start)
        self.made.append(producer)
        return producer


async def wait_until(predicate: Callable[[], object], timeout_s: float = 2.0, step_s: float = 0.005) -> bool:
    """Poll ``predicate()`` on the event loop until it is truthy or the timeout passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step_s)
    return bool(predicate())
