"""The rules every capture point shares, so the middleware and the client-side captures agree.

A request the hook sees ends in exactly one counter of :class:`PublisherStats`, with ``seen``
counted once: a replay is skipped (``skipped_shadow``), an unsampled request is counted
(``sampled_out``) before anything is copied, a request that cannot be handed over is counted by
its reason (``ShadowPublisher.count_unmirrored``), the rest go to ``ShadowPublisher.publish``.

For the client-side captures (an SDK call instead of an HTTP request) :func:`begin_client_call`
takes those decisions from the call's outgoing headers, and the returned :class:`ClientCall`
hands the finished call to ``publish`` once, with what the caller recorded through
:func:`shadowlane.hook.context.recording`. Nothing here imports an SDK: objects from the SDKs are
turned into JSON through their ``model_dump`` (pydantic), whichever SDK version made them.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from shadowlane.hook.context import SHADOW_HEADER, MirrorContext, current_context, in_replay
from shadowlane.hook.publisher import ShadowPublisher, Unmirrored

log = logging.getLogger(__name__)

HeaderSources = Iterable[Mapping[str, Any] | None]


@dataclass(frozen=True, slots=True)
class HeaderNames:
    """Which outgoing headers carry the request id, the tenant and the trace context (lower case)."""

    request_id: str = "x-request-id"
    tenant: str = "x-tenant-id"
    trace: str = "traceparent"
    tracestate: str = "tracestate"


DEFAULT_HEADERS = HeaderNames()


def header_value(sources: HeaderSources, name: str) -> str | None:
    """The first non-empty value of header ``name`` (any case) in ``sources``, as a string."""
    for headers in sources:
        if not isinstance(headers, Mapping):
            continue
        for key, value in headers.items():
            if isinstance(key, str) and key.lower() == name and value:
                return value if isinstance(value, str) else str(value)
    return None


def is_replay(sources: HeaderSources) -> bool:
    """True for shadow traffic: inside ``replaying()`` or carrying the shadow marker header."""
    return in_replay() or header_value(sources, SHADOW_HEADER) is not None


def _default(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if callable(dump):  # the SDKs' pydantic models: what the server sent, as JSON types
        return dump(mode="json", exclude_unset=True)
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, set | frozenset):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def to_json(obj: Any) -> bytes:
    """JSON bytes of a request or response made of dicts, lists and SDK (pydantic) objects."""
    return orjson.dumps(obj, default=_default)


def _snapshot(ctx: MirrorContext | None) -> MirrorContext | None:
    """A copy of what was recorded so far: the caller's block may go on recording."""
    if ctx is None:
        return None
    labels = ctx.labels
    if labels is not None:
        labels = dataclasses.replace(
            labels, buckets=dict(labels.buckets), served_pins=dict(labels.served_pins)
        )
    return MirrorContext(list(ctx.tool_calls), dict(ctx.pins), labels)


class ClientCall:
    """One sampled SDK call in flight: handed to ``publish`` (or counted) exactly once."""

    __slots__ = (
        "bucket",
        "ctx",
        "done",
        "endpoint",
        "publisher",
        "req_id",
        "request",
        "started",
        "tenant",
        "trace_id",
        "tracestate",
    )

    def __init__(
        self,
        publisher: ShadowPublisher,
        *,
        endpoint: str,
        req_id: str,
        bucket: float | None,
        request: bytes,
        tenant: str,
        trace_id: str | None,
        tracestate: str | None = None,
    ) -> None:
        self.publisher, self.endpoint, self.req_id, self.bucket = publisher, endpoint, req_id, bucket
        self.request, self.tenant, self.trace_id = request, tenant, trace_id
        self.tracestate = tracestate
        self.ctx = current_context()
        self.started = time.perf_counter()
        self.done = False

    def publish(self, response: bytes | None, status: int = 200, latency_ms: float | None = None) -> None:
        """Hand the finished call to the publisher (an O(1) enqueue); never raises."""
        if self.done:
            return
        self.done = True
        try:
            ctx = _snapshot(self.ctx)
            if latency_ms is None:
                latency_ms = (time.perf_counter() - self.started) * 1000.0
            self.publisher.publish(
                req_id=self.req_id,
                endpoint=self.endpoint,
                request=self.request,
                response=response,
                status=status,
                latency_ms=latency_ms,
                tenant=self.tenant,
                trace_id=self.trace_id,
                tracestate=self.tracestate,
                tool_calls=ctx.tool_calls if ctx else (),
                pins=ctx.pins if ctx else None,
                bucket=self.bucket,
                labels=ctx.labels if ctx else None,
            )
        except Exception:  # publish() itself never raises; this guards the snapshot
            self.publisher.count_unmirrored("dropped_invalid")
            log.exception("shadow capture failed; call not mirrored")

    def drop(self, reason: Unmirrored) -> None:
        """Count the call as not mirrored (no complete response, or it could not be read)."""
        if not self.done:
            self.done = True
            self.publisher.count_unmirrored(reason)

    def failed(self, exc: BaseException) -> None:
        """The SDK raised: an HTTP error answer is mirrored with its status, anything else is
        an incomplete call (no response to compare)."""
        status = getattr(exc, "status_code", None)
        if not isinstance(status, int) or isinstance(status, bool):
            self.drop("dropped_incomplete")
            return
        try:
            body = getattr(getattr(exc, "response", None), "content", None)
        except Exception:  # a streamed error answer that was never read
            body = None
        self.publish(body if isinstance(body, bytes) and body else None, status)


def begin_client_call(
    publisher: ShadowPublisher,
    headers: HeaderSources,
    *,
    request: Callable[[], Any],
    endpoint: str,
    tenant: str,
    names: HeaderNames,
    req_id: str | None = None,
) -> ClientCall | None:
    """Decide for one outgoing call, before anything is copied: None when it is a replay or not
    sampled (both counted), else a :class:`ClientCall` holding the request as JSON bytes.

    ``request()`` builds the request body; it is only called for sampled calls. ``req_id`` is used
    when the headers carry none (else a random id)."""
    try:
        sources = list(headers)
        if is_replay(sources):
            publisher.count_skipped_shadow()
            return None
        rid = header_value(sources, names.request_id) or req_id or str(uuid.uuid4())
        sampled, bucket = publisher.should_sample(rid)
        if not sampled:
            publisher.count_sampled_out()
            return None
        return ClientCall(
            publisher,
            endpoint=endpoint,
            req_id=rid,
            bucket=bucket,
            request=to_json(request()),
            tenant=header_value(sources, names.tenant) or tenant,
            trace_id=header_value(sources, names.trace),
            tracestate=header_value(sources, names.tracestate),
        )
    except Exception:  # never fail the caller's call because of the capture
        publisher.count_unmirrored("dropped_invalid")
        log.exception("shadow capture failed; call not mirrored")
        return None
