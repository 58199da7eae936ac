"""W3C trace context across Shadowlane's hops, with OpenTelemetry spans when the API is installed.

A prod request's ``traceparent`` travels hook → requests topic → shadow worker → candidate HTTP
call → shadow-results topic → comparator → compare topic. This module is the one place that:

- reads, checks and writes a ``traceparent`` (:class:`TraceParent`: version ``00`` out, a 32-hex
  trace id and a 16-hex parent id that are not all zero, the flags byte) and checks a ``tracestate``
  (passed through as it came, never written into a record's body);
- carries both as Kafka record headers (:meth:`TraceContext.kafka_headers`,
  :meth:`TraceContext.from_kafka`) and as the HTTP headers of a replay's candidate call
  (:func:`http_headers`);
- opens one span per hop (:meth:`Tracing.hop`, :meth:`Tracing.finished`): ``shadowlane.publish``
  in the hook's background sender, ``shadowlane.replay`` around a candidate call,
  ``shadowlane.compare`` over the building of a comparison. Each span's remote parent is the
  incoming ``traceparent``, read with OpenTelemetry's W3C propagator.

Spans need ``opentelemetry-api`` and a configured SDK tracer provider (the API alone records
nothing). Without them no span is made and a hop passes the incoming ``traceparent`` on as it
came (a new parent id would name a span that no exporter saw). Traffic without a valid incoming
``traceparent`` is not traced at all: no span, no header, nothing invented. Nothing here raises:
an invalid value is ignored as if absent, and a failing tracer falls back to the span-less path.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
PUBLISH_SPAN = "shadowlane.publish"
REPLAY_SPAN = "shadowlane.replay"
COMPARE_SPAN = "shadowlane.compare"
MAX_TRACESTATE = 512
"""The longest ``tracestate`` passed on (W3C: at least 512 characters must be propagated)."""
MAX_TRACESTATE_MEMBERS = 32

Kind = Literal["internal", "producer", "consumer", "client", "server"]
AttributeValue = str | bool | int | float
KafkaHeaders = list[tuple[str, bytes]]

_TRACEPARENT_RE = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_MAX_TRACEPARENT = 512


@dataclass(frozen=True, slots=True)
class TraceParent:
    """A checked W3C ``traceparent``: ``00-<trace id>-<parent id>-<flags>``."""

    trace_id: str
    parent_id: str
    flags: int

    @classmethod
    def parse(cls, value: object) -> TraceParent | None:
        """The traceparent in ``value`` (a header as str or bytes), or None when it is absent or
        invalid: not version-``00`` shaped (a later version may carry more fields after a ``-``),
        version ``ff``, upper-case hex, an all-zero trace or parent id. Never raises."""
        if isinstance(value, bytes | bytearray):
            try:
                value = bytes(value).decode("ascii")
            except UnicodeDecodeError:
                return None
        if not isinstance(value, str) or len(value) > _MAX_TRACEPARENT:
            return None
        match = _TRACEPARENT_RE.fullmatch(value.strip(" \t"))
        if match is None:
            return None
        version, trace_id, parent_id, flags, rest = match.groups()
        if version == "ff" or (version == "00" and rest is not None):
            return None
        if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
            return None
        return cls(trace_id, parent_id, int(flags, 16))

    @property
    def sampled(self) -> bool:
        return bool(self.flags & 0x01)

    def __str__(self) -> str:
        return f"00-{self.trace_id}-{self.parent_id}-{self.flags:02x}"


def clean_tracestate(value: object) -> str | None:
    """``value`` as a ``tracestate`` to pass on, or None: printable ASCII, at most
    :data:`MAX_TRACESTATE` characters and :data:`MAX_TRACESTATE_MEMBERS` list members, not blank.
    Its members are not interpreted (they belong to the vendors that wrote them)."""
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str):
        return None
    text = value.strip(" \t")
    if not text or len(text) > MAX_TRACESTATE or text.count(",") >= MAX_TRACESTATE_MEMBERS:
        return None
    if not all(" " <= ch <= "~" for ch in text):
        return None
    return text


@dataclass(frozen=True, slots=True)
class TraceContext:
    """What a hop received or sends on: a checked traceparent and, only with one, its tracestate."""

    traceparent: TraceParent | None = None
    tracestate: str | None = None

    @classmethod
    def of(cls, traceparent: object, tracestate: object = None) -> TraceContext:
        """Both values checked (see :meth:`TraceParent.parse`, :func:`clean_tracestate`); a
        tracestate without a valid traceparent is dropped (it means nothing on its own)."""
        parent = TraceParent.parse(traceparent)
        if parent is None:
            return NO_TRACE
        return cls(parent, clean_tracestate(tracestate) if tracestate is not None else None)

    @classmethod
    def from_kafka(
        cls, headers: Iterable[tuple[str, bytes]] | None, fallback: str | None = None
    ) -> TraceContext:
        """The context in a record's headers (names case-insensitive, the first of each); without a
        valid ``traceparent`` header, ``fallback`` (e.g. the envelope's ``trace_id``) with no state."""
        parent: bytes | None = None
        state: bytes | None = None
        try:
            for name, value in headers or ():
                lowered = name.lower()
                if lowered == TRACEPARENT and parent is None:
                    parent = value
                elif lowered == TRACESTATE and state is None:
                    state = value
        except (TypeError, ValueError, AttributeError):  # headers not shaped as aiokafka gives them
            parent = state = None
        found = cls.of(parent, state)
        if found.traceparent is None and fallback is not None:
            return cls.of(fallback)
        return found

    @property
    def header(self) -> str | None:
        """The ``traceparent`` header value, or None."""
        return None if self.traceparent is None else str(self.traceparent)

    def kafka_headers(self) -> KafkaHeaders | None:
        """The record headers that carry this context (ASCII bytes), or None without a trace."""
        if self.traceparent is None:
            return None
        headers = [(TRACEPARENT, str(self.traceparent).encode())]
        if self.tracestate:
            headers.append((TRACESTATE, self.tracestate.encode()))
        return headers

    def http_headers(self) -> dict[str, str]:
        """The HTTP request headers that carry this context (empty without a trace)."""
        if self.traceparent is None:
            return {}
        headers = {TRACEPARENT: str(self.traceparent)}
        if self.tracestate:
            headers[TRACESTATE] = self.tracestate
        return headers


NO_TRACE = TraceContext()

_CURRENT: ContextVar[TraceContext] = ContextVar("shadowlane_trace", default=NO_TRACE)


def current() -> TraceContext:
    """The outgoing context of the hop running in this task (:data:`NO_TRACE` outside one): a
    Python candidate called by a replay can read it."""
    return _CURRENT.get()


def http_headers() -> dict[str, str]:
    """The trace headers for an HTTP call made inside the current hop (empty outside one)."""
    return _CURRENT.get().http_headers()


def header_of(traceparent: object) -> KafkaHeaders | None:
    """The Kafka headers of a traceparent copied into a record (checked again: records may come
    from any producer), or None."""
    return TraceContext.of(traceparent).kafka_headers()


# ---------------------------------------------------------------------- OpenTelemetry


@functools.cache
def _otel() -> SimpleNamespace | None:
    """The OpenTelemetry API pieces this module uses, or None when ``opentelemetry-api`` is not
    installed (looked up once, at the first traced hop: importing the hook never imports it)."""
    try:
        from opentelemetry import trace
        from opentelemetry.trace import ProxyTracerProvider, SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:
        return None
    kinds = {
        "internal": SpanKind.INTERNAL,
        "producer": SpanKind.PRODUCER,
        "consumer": SpanKind.CONSUMER,
        "client": SpanKind.CLIENT,
        "server": SpanKind.SERVER,
    }
    return SimpleNamespace(
        trace=trace, proxy=ProxyTracerProvider, propagator=TraceContextTextMapPropagator(), kinds=kinds
    )


def otel_available() -> bool:
    """Whether ``opentelemetry-api`` can be imported."""
    return _otel() is not None


class Hop:
    """One hop in progress: the context it sends on (:attr:`context`) and its span, if any."""

    __slots__ = ("_span", "context")

    def __init__(self, context: TraceContext, span: Span | None = None) -> None:
        self.context = context
        self._span = span

    @property
    def traceparent(self) -> str | None:
        return self.context.header

    def set(self, key: str, value: AttributeValue | None) -> None:
        """Set an attribute on the hop's span (nothing without a span, or for None)."""
        if self._span is None or value is None:
            return
        try:
            self._span.set_attribute(key, value)
        except Exception:  # a tracer's failure never reaches the hop's work
            log.debug("span attribute %s not set", key, exc_info=True)


class Tracing:
    """A component's spans. ``provider`` is an OpenTelemetry ``TracerProvider``; by default the
    global one, looked up at each hop (an SDK configured after the component was built counts).
    Spans are made only with ``opentelemetry-api`` installed and a provider that is not the API's
    default (which records nothing)."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self._provider = provider
        self._tracer: Tracer | None = None

    def _active(self) -> SimpleNamespace | None:
        otel = _otel()
        if otel is None:
            return None
        if self._provider is None and isinstance(otel.trace.get_tracer_provider(), otel.proxy):
            return None  # no SDK configured: the API's tracer would record nothing
        return otel

    @property
    def recording(self) -> bool:
        """Whether hops make spans (OpenTelemetry installed and a provider configured)."""
        try:
            return self._active() is not None
        except Exception:
            return False

    def _tracer_of(self, otel: SimpleNamespace) -> Tracer:
        tracer = self._tracer
        if tracer is None:
            provider = self._provider if self._provider is not None else otel.trace.get_tracer_provider()
            tracer = self._tracer = provider.get_tracer("shadowlane")
        return tracer

    def _start(
        self,
        name: str,
        incoming: TraceContext,
        kind: Kind,
        attributes: Mapping[str, AttributeValue] | None,
        start_ns: int | None = None,
    ) -> tuple[Span, TraceContext] | None:
        """A started span under ``incoming`` and the context it sends on; None without spans."""
        otel = self._active()
        if otel is None or incoming.traceparent is None:
            return None
        carrier = {TRACEPARENT: str(incoming.traceparent)}
        if incoming.tracestate:
            carrier[TRACESTATE] = incoming.tracestate
        parent = otel.propagator.extract(carrier)
        span = self._tracer_of(otel).start_span(
            name, context=parent, kind=otel.kinds[kind], attributes=attributes, start_time=start_ns
        )
        made = span.get_span_context()
        span_id = otel.trace.format_span_id(made.span_id)
        if not made.is_valid or span_id == incoming.traceparent.parent_id:
            return span, incoming  # a non-recording span that only carries its parent: pass it on
        sent = TraceParent(otel.trace.format_trace_id(made.trace_id), span_id, int(made.trace_flags))
        return span, TraceContext(sent, incoming.tracestate)

    @contextmanager
    def hop(
        self,
        name: str,
        incoming: TraceContext,
        *,
        kind: Kind = "internal",
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> Iterator[Hop]:
        """A hop under ``incoming``: with spans, a span named ``name`` around the block, current
        in it; the :class:`Hop` says what to send on (its span's context, or ``incoming`` as it is
        without a recording span), which :func:`current` and :func:`http_headers` also give inside the block.
        An untraced ``incoming`` yields an untraced hop at no cost. An exception of the block is
        recorded on the span and raised as it is."""
        if incoming.traceparent is None:
            yield Hop(NO_TRACE)
            return
        try:
            started = self._start(name, incoming, kind, attributes)
        except Exception:
            log.debug("span %s not started; passing the trace context on without it", name, exc_info=True)
            started = None
        if started is None:  # no span: pass the context on as it came (a new parent id would name
            outgoing = incoming  # a span nobody exported, and orphan the candidate's own spans)
            token = _CURRENT.set(outgoing)
            try:
                yield Hop(outgoing)
            finally:
                _CURRENT.reset(token)
            return
        span, outgoing = started
        otel = _otel()
        assert otel is not None
        token = _CURRENT.set(outgoing)
        try:
            with otel.trace.use_span(span, end_on_exit=True):
                yield Hop(outgoing, span)
        finally:
            _CURRENT.reset(token)

    def finished(
        self,
        name: str,
        incoming: TraceContext,
        start_ns: int,
        end_ns: int,
        *,
        kind: Kind = "internal",
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> TraceContext:
        """A span of work already done between ``start_ns`` and ``end_ns`` (epoch ns), e.g. one
        comparison of a batch; returns the context to send on: the span's, or ``incoming`` as it
        is without spans (nothing was traced that a new parent id could name)."""
        if incoming.traceparent is None:
            return incoming
        try:
            started = self._start(name, incoming, kind, attributes, start_ns)
            if started is None:
                return incoming
            span, outgoing = started
            span.end(end_time=end_ns)
        except Exception:
            log.debug("span %s not recorded", name, exc_info=True)
            return incoming
        return outgoing
