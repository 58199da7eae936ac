"""ASGI middleware that mirrors an OpenAI-compatible chat-completions endpoint.

Wrap the prod app: ``app = ShadowMirrorMiddleware(app, publisher)``. The handler is untouched:
the middleware copies the request body as it is received and the response as it is sent, and
only after the last response byte went out does it hand the raw capture to
``ShadowPublisher.publish`` (an O(1) enqueue). Parsing, sanitizing and producing happen in the
publisher's background task. Headers are never copied; only the request id, tenant and trace id
are read from configured headers. What the handler records through ``shadowlane.hook.context`` (tool
calls, pins, and the gold / paraphrase / citation labels)
is handed over with the capture.

A replay is passed straight through and counted (``skipped_shadow``): a request carrying the
shadow marker header, or one served inside ``replaying()`` (an in-process candidate app).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from shadowlane.hook.context import SHADOW_HEADER, close_context, in_replay, open_context
from shadowlane.hook.publisher import ShadowPublisher

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
_SHADOW = SHADOW_HEADER.encode()


class ShadowMirrorMiddleware:
    """Mirror POSTs to the configured paths; pass everything else straight through."""

    def __init__(
        self,
        app: ASGIApp,
        publisher: ShadowPublisher,
        *,
        paths: tuple[str, ...] = ("/v1/chat/completions",),
        request_id_header: str = "x-request-id",
        tenant_header: str = "x-tenant-id",
        trace_header: str = "traceparent",
        max_body_bytes: int = 1_048_576,
    ) -> None:
        self.app = app
        self.publisher = publisher
        self.paths = frozenset(paths)
        self._rid = request_id_header.lower().encode()
        self._tenant = tenant_header.lower().encode()
        self._trace = trace_header.lower().encode()
        self._max = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") not in self.paths:
            await self.app(scope, receive, send)
            return
        await self._mirror(scope, receive, send)

    async def _mirror(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        req_id = tenant = trace_id = None
        replay = False
        for name, value in scope.get("headers") or ():
            if name == self._rid:
                req_id = value.decode("latin-1")
            elif name == self._tenant:
                tenant = value.decode("latin-1")
            elif name == self._trace:
                trace_id = value.decode("latin-1")
            elif name == _SHADOW:
                replay = True
        if replay or in_replay():  # shadow traffic is never mirrored again
            self.publisher.count_skipped_shadow()
            await self.app(scope, receive, send)
            return
        if not req_id:
            req_id = str(uuid.uuid4())
        sampled, bucket = self.publisher.should_sample(req_id)
        if not sampled:  # decided before anything is captured: unsampled traffic pays one hash
            self.publisher.count_sampled_out()
            await self.app(scope, receive, send)
            return
        capture = _Capture(self, scope, receive, send, started, req_id, tenant, trace_id, bucket)
        try:
            await self.app(scope, capture.receive, capture.send)
        finally:
            close_context(capture.token)
            if not capture.finished:  # handler raised or the client left before the last byte
                self.publisher.count_unmirrored("dropped_incomplete")


def _join(chunks: list[bytes]) -> bytes:
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _Capture:
    """Copies one sampled request's body and response as they stream; publishes at the end."""

    __slots__ = (
        "bucket",
        "ctx",
        "finished",
        "mw",
        "overflow",
        "raw_receive",
        "raw_send",
        "req_chunks",
        "req_id",
        "req_size",
        "resp_chunks",
        "resp_size",
        "scope",
        "started",
        "status",
        "tenant",
        "token",
        "trace_id",
    )

    def __init__(
        self,
        mw: ShadowMirrorMiddleware,
        scope: Scope,
        receive: Receive,
        send: Send,
        started: float,
        req_id: str,
        tenant: str | None,
        trace_id: str | None,
        bucket: float,
    ) -> None:
        self.mw, self.scope, self.raw_receive, self.raw_send = mw, scope, receive, send
        self.started, self.req_id, self.tenant, self.trace_id, self.bucket = (
            started,
            req_id,
            tenant,
            trace_id,
            bucket,
        )
        self.req_chunks: list[bytes] = []
        self.resp_chunks: list[bytes] = []
        self.req_size = self.resp_size = 0
        self.status = 500
        self.overflow = False
        self.finished = False
        self.ctx, self.token = open_context()

    async def receive(self) -> Message:
        message = await self.raw_receive()
        if message["type"] == "http.request":
            body = message.get("body", b"")
            self.req_size += len(body)
            if self.req_size <= self.mw._max:
                self.req_chunks.append(body)
            else:
                self.overflow = True
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
        elif kind == "http.response.body":
            body = message.get("body", b"")
            self.resp_size += len(body)
            if self.resp_size <= self.mw._max:
                self.resp_chunks.append(body)
            else:
                self.overflow = True
        await self.raw_send(message)
        if kind != "http.response.body" or message.get("more_body", False):
            return
        self.finished = True
        publisher = self.mw.publisher
        if self.overflow:
            publisher.count_unmirrored("dropped_too_large")
            return
        publisher.publish(
            req_id=self.req_id,
            endpoint=self.scope["path"],
            request=_join(self.req_chunks),
            response=_join(self.resp_chunks),
            status=self.status,
            latency_ms=(time.perf_counter() - self.started) * 1000.0,
            tenant=self.tenant or "default",
            trace_id=self.trace_id,
            tool_calls=self.ctx.tool_calls,
            pins=self.ctx.pins,
            bucket=self.bucket,
            labels=self.ctx.labels,
        )
