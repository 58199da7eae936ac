"""ASGI middleware that mirrors an OpenAI-compatible chat-completions endpoint.

Wrap the prod app: ``app = ShadowMirrorMiddleware(app, publisher)``. The handler is untouched:
the middleware copies the request body as it is received and the response as it is sent, and
only after the last response byte went out does it hand the raw capture to
``ShadowPublisher.publish`` (an O(1) enqueue). Parsing, sanitizing and producing happen in the
publisher's background task. Headers are never copied; only the request id, tenant and trace id
are read from configured headers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from workers.hook.context import close_context, open_context
from workers.hook.publisher import ShadowPublisher

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


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
        for name, value in scope.get("headers") or ():
            if name == self._rid:
                req_id = value.decode("latin-1")
            elif name == self._tenant:
                tenant = value.decode("latin-1")
            elif name == self._trace:
                trace_id = value.decode("latin-1")
        if not req_id:
            req_id = str(uuid.uuid4())
        req_chunks: list[bytes] = []
        resp_chunks: list[bytes] = []
        sizes = [0, 0]
        status = [500]
        overflow = [False]
        ctx, token = open_context()

        async def receive_wrapper() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                sizes[0] += len(body)
                if sizes[0] <= self._max:
                    req_chunks.append(body)
                else:
                    overflow[0] = True
            return message

        async def send_wrapper(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                status[0] = message["status"]
            elif kind == "http.response.body":
                body = message.get("body", b"")
                sizes[1] += len(body)
                if sizes[1] <= self._max:
                    resp_chunks.append(body)
                else:
                    overflow[0] = True
            await send(message)
            if kind == "http.response.body" and not message.get("more_body", False) and not overflow[0]:
                self.publisher.publish(
                    req_id=req_id,
                    endpoint=scope["path"],
                    request=b"".join(req_chunks),
                    response=b"".join(resp_chunks),
                    status=status[0],
                    latency_ms=(time.perf_counter() - started) * 1000.0,
                    tenant=tenant or "default",
                    trace_id=trace_id,
                    tool_calls=ctx.tool_calls,
                    pins=ctx.pins,
                )
            elif overflow[0] and kind == "http.response.body" and not message.get("more_body", False):
                self.publisher.stats.dropped_too_large += 1

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        finally:
            close_context(token)
