"""ASGI middleware that mirrors an OpenAI-compatible chat-completions endpoint.

Wrap the prod app: ``app = ShadowMirrorMiddleware(app, publisher)``. The handler is untouched:
the middleware copies the request body as it is received and the response as it is sent, and
only after the last response byte went out does it hand the raw capture to
``ShadowPublisher.publish`` (an O(1) enqueue). Parsing, sanitizing and producing happen in the
publisher's background task. Headers are never copied; only the request id, tenant and trace
context (``traceparent``, and ``tracestate`` as raw bytes) are read from configured headers.
What the handler records through ``shadowlane.hook.context`` (tool calls, pins, and the gold /
paraphrase / citation labels) is handed over with the capture. Response headers the publisher's
settings name (``served_pin_headers``) are read as the pins prod served with (one missing from a
response is recorded empty, so it counts as a mismatch).

A replay is passed straight through and counted (``skipped_shadow``): a request carrying the
shadow marker header, or one served inside ``replaying()`` (an in-process candidate app).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from shadowlane.hook.context import (
    SHADOW_HEADER,
    MirrorContext,
    RawMirror,
    RawToolCall,
    close_context,
    in_replay,
    open_context,
)
from shadowlane.hook.publisher import ShadowPublisher
from shadowlane.tracing import TRACESTATE

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
_SHADOW = SHADOW_HEADER.encode()
_TRACESTATE = TRACESTATE.encode()


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
        # header name -> its slot in [req_id, tenant, trace_id, shadow marker, tracestate]
        self._slots = {
            _TRACESTATE: 4,
            _SHADOW: 3,
            trace_header.lower().encode(): 2,
            tenant_header.lower().encode(): 1,
            request_id_header.lower().encode(): 0,
        }
        self._max = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") not in self.paths:
            await self.app(scope, receive, send)
            return
        # one frame for the whole decision: every call on the request path costs ~1-3 µs when
        # the request resumes with cold caches (measured in tests/bench/bench_hook_overhead.py)
        started = time.perf_counter()
        found: list[bytes | None] = [None, None, None, None, None]
        slot_of = self._slots.get
        for name, value in scope.get("headers") or ():
            slot = slot_of(name)
            if slot is not None and found[slot] is None:
                found[slot] = value
        publisher = self.publisher
        if found[3] is not None or in_replay():  # shadow traffic is never mirrored again
            publisher.count_skipped_shadow()
            await self.app(scope, receive, send)
            return
        rid = found[0]
        req_id = rid.decode("latin-1") if rid else str(uuid.uuid4())
        bucket = None
        if not publisher.samples_all:  # decided before anything is captured: one hash per request
            sampled, bucket = publisher.should_sample(req_id)
            if not sampled:
                publisher.count_sampled_out()
                await self.app(scope, receive, send)
                return
        capture = _Capture(self, scope, receive, send, started, req_id, found, bucket)
        token = open_context(capture)[1]
        try:
            await self.app(scope, capture.receive, capture.send)
        finally:
            close_context(token)
            if not capture.finished:  # handler raised or the client left before the last byte
                publisher.count_unmirrored("dropped_incomplete")


def _join(chunks: list[bytes]) -> bytes:
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _Capture(MirrorContext):
    """Copies one sampled request's body and response as they stream; publishes at the end.
    It is also the request's :class:`MirrorContext`, which the handler records into."""

    __slots__ = (
        "bucket",
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
        "trace_id",
        "tracestate",
    )

    def __init__(
        self,
        mw: ShadowMirrorMiddleware,
        scope: Scope,
        receive: Receive,
        send: Send,
        started: float,
        req_id: str,
        headers: list[bytes | None],
        bucket: float | None,
    ) -> None:
        self.tool_calls: list[RawToolCall] = []
        self.pins: dict[str, str] = {}
        self.labels = None
        self.mw, self.scope, self.raw_receive, self.raw_send = mw, scope, receive, send
        self.started, self.req_id, self.bucket = started, req_id, bucket
        tenant, trace = headers[1], headers[2]
        self.tenant = tenant.decode("latin-1") if tenant else "default"
        self.trace_id = trace.decode("latin-1") if trace else None
        self.tracestate = headers[4]  # raw: checked and decoded by the sender, off the request path
        self.req_chunks: list[bytes] = []
        self.resp_chunks: list[bytes] = []
        self.req_size = self.resp_size = 0
        self.status = 500
        self.overflow = False
        self.finished = False

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

    def _served_headers(self, headers: Any) -> None:
        """The configured response headers as served pins (an absent one: empty, a mismatch); a
        pin the handler set with ``set_served_pins`` wins."""
        wanted = self.mw.publisher.served_pin_headers
        found = {wanted[name.lower()]: value for name, value in headers if name.lower() in wanted}
        served = self.labelled().served_pins
        for pin in wanted.values():
            value = found.get(pin)
            served.setdefault(pin, value.decode("latin-1") if value is not None else "")

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            if self.mw.publisher.served_pin_headers:
                self._served_headers(message.get("headers") or ())
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
        raw = RawMirror(
            self.req_id,
            self.scope["path"],
            _join(self.req_chunks),
            _join(self.resp_chunks),
            self.status,
            (time.perf_counter() - self.started) * 1000.0,
            time.time_ns() // 1_000_000,
            self.bucket,
            self.tenant,
            self.trace_id,
            self.tool_calls,
            self.pins,
            self.labels,
            self.tracestate,
        )
        publisher.submit(raw, sampled=True)
