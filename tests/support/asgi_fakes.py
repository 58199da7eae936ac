"""Fakes for driving ``ShadowMirrorMiddleware`` as a bare ASGI callable: the server side
(:class:`Client`), the prod app (:class:`Handler`) and a publisher that only records."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from shadowlane.hook.asgi import ShadowMirrorMiddleware
from shadowlane.hook.context import RawMirror, RawToolCall, record_tool_call, set_pins
from shadowlane.hook.publisher import ShadowPublisher
from shadowlane.settings import HookSettings
from tests.support.fake_kafka import FakeProducerFactory

Message = MutableMapping[str, Any]
PATH = "/v1/chat/completions"
REQUEST = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "What is 2+2?"}]})
RESPONSE_PARTS = [b'{"choices": [{"message": {"role": "assistant", ', b'"content": "4"}}]}']


class RecordingPublisher(ShadowPublisher):
    """A real publisher that only records what a capture point handed it (the fields of each
    :class:`RawMirror`, whether it came through ``publish`` or ``submit``)."""

    def __init__(self, settings: HookSettings | None = None) -> None:
        super().__init__(settings or HookSettings(), topic="t", producer_factory=FakeProducerFactory())
        self.calls: list[dict[str, Any]] = []

    def submit(self, raw: RawMirror, *, sampled: bool) -> bool:
        self.calls.append(raw._asdict())
        return True


@dataclass
class Client:
    """Fake ASGI server side: feeds the request body in chunks, collects what is sent back."""

    body: bytes = REQUEST
    chunk: int = 17
    sent: list[Message] = field(default_factory=list)
    received_calls: int = 0
    on_send: list[int] = field(default_factory=list)
    publisher: RecordingPublisher | None = None

    async def receive(self) -> Message:
        start = self.received_calls * self.chunk
        self.received_calls += 1
        piece = self.body[start : start + self.chunk]
        more = start + self.chunk < len(self.body)
        return {"type": "http.request", "body": piece, "more_body": more}

    async def send(self, message: Message) -> None:
        self.sent.append(dict(message))
        if self.publisher is not None:
            self.on_send.append(len(self.publisher.calls))


@dataclass
class Handler:
    """The prod app: reads the whole body, optionally records tools, answers in chunks."""

    status: int = 200
    parts: list[bytes] = field(default_factory=lambda: list(RESPONSE_PARTS))
    tools: list[RawToolCall] = field(default_factory=list)
    pins: dict[str, str] = field(default_factory=dict)
    got_body: bytes = b""
    sent: list[Message] = field(default_factory=list)
    calls: int = 0
    seen_receive: Any = None
    seen_send: Any = None
    raise_after_start: bool = False
    label: Callable[[], None] | None = None

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        self.calls += 1
        self.seen_receive, self.seen_send = receive, send
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        self.got_body = b"".join(chunks)
        for call in self.tools:
            record_tool_call(call.name, call.arguments, call.output, ok=call.ok)
        if self.pins:
            set_pins(self.pins)
        if self.label is not None:
            self.label()
        start = {
            "type": "http.response.start",
            "status": self.status,
            "headers": [(b"content-type", b"application/json"), (b"x-prod", b"1")],
        }
        self.sent.append(start)
        await send(start)
        if self.raise_after_start:
            raise RuntimeError("handler failed")
        for i, part in enumerate(self.parts):
            msg = {"type": "http.response.body", "body": part, "more_body": i < len(self.parts) - 1}
            self.sent.append(msg)
            await send(msg)


def http_scope(
    method: str = "POST", path: str = PATH, headers: list[tuple[bytes, bytes]] | None = None
) -> Message:
    return {"type": "http", "method": method, "path": path, "headers": headers or []}


def mw(handler: Handler, publisher: ShadowPublisher, **kwargs: Any) -> ShadowMirrorMiddleware:
    return ShadowMirrorMiddleware(handler, publisher, **kwargs)
