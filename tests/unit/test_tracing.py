"""shadowlane/tracing.py: W3C traceparent / tracestate, their Kafka and HTTP headers, and the
hops' OpenTelemetry spans (with the SDK's in-memory exporter) or their absence (no SDK, no API)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from shadowlane.compare.join import Joined
from shadowlane.compare.native.builder import NATIVE_PLAIN
from shadowlane.compare.prod_side import ProdSide, read_request
from shadowlane.compare.results import read_result
from shadowlane.contracts.codec import encode
from shadowlane.settings import ShadowSettings
from shadowlane.shadow.candidates import CallableCandidate
from shadowlane.shadow.replay import Replayer
from shadowlane.tracing import (
    COMPARE_SPAN,
    MAX_TRACESTATE,
    MAX_TRACESTATE_MEMBERS,
    NO_TRACE,
    PUBLISH_SPAN,
    REPLAY_SPAN,
    TraceContext,
    TraceParent,
    Tracing,
    clean_tracestate,
    current,
    header_of,
    http_headers,
    otel_available,
)
from tests.support.factories import make_envelope, make_result
from tests.support.plain_pairs import builders

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TP = f"00-{TRACE}-{PARENT}-01"
STATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"


# ---------------------------------------------------------------------- traceparent


def test_a_valid_traceparent_is_read_and_written_back() -> None:
    parsed = TraceParent.parse(TP)
    assert parsed == TraceParent(TRACE, PARENT, 1)
    assert parsed is not None
    assert parsed.sampled
    assert str(parsed) == TP
    assert TraceParent.parse(TP.encode()) == parsed  # a header as bytes
    assert TraceParent.parse(f" \t{TP} ") == parsed  # optional whitespace around a header value
    unsampled = TraceParent.parse(f"00-{TRACE}-{PARENT}-00")
    assert unsampled is not None
    assert not unsampled.sampled


def test_a_later_version_is_read_for_its_first_fields_and_written_as_version_00() -> None:
    parsed = TraceParent.parse(f"cc-{TRACE}-{PARENT}-01-what-the-future-holds")
    assert parsed == TraceParent(TRACE, PARENT, 1)
    assert str(parsed) == TP


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        5,
        "00-abc-def-01",  # what some tests and clients send: not a W3C id
        f"00-{TRACE.upper()}-{PARENT}-01",  # upper-case hex
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE}-{PARENT}-01",  # the forbidden version
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
        f"00_{TRACE}_{PARENT}_01",
        f"00-{TRACE}-{PARENT}-1",
        f"0-{TRACE}-{PARENT}-01",
        f"00-{TRACE[:-1]}g-{PARENT}-01",
        f"00-{TRACE}-{PARENT}-01" + "x" * 600,
        b"\xff\xfe",
        f"00-{TRACE}-{PARENT}-01".encode("utf-16"),
    ],
)
def test_an_invalid_traceparent_is_ignored_never_raised(value: object) -> None:
    assert TraceParent.parse(value) is None
    assert TraceContext.of(value, STATE) == NO_TRACE  # its tracestate means nothing alone
    assert header_of(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (STATE, STATE),
        (STATE.encode(), STATE),
        (f"  {STATE}\t", STATE),
        (None, None),
        ("", None),
        ("   ", None),
        (b"\xff", None),
        ("vendor=caf\u00e9", None),
        ("vendor=a\nb", None),
        ("x" * (MAX_TRACESTATE + 1), None),
        (
            ",".join(f"v{i}=1" for i in range(MAX_TRACESTATE_MEMBERS)),
            ",".join(f"v{i}=1" for i in range(MAX_TRACESTATE_MEMBERS)),
        ),
        (",".join(f"v{i}=1" for i in range(MAX_TRACESTATE_MEMBERS + 1)), None),
        (42, None),
    ],
)
def test_tracestate_is_passed_on_as_it_came_or_dropped(value: object, expected: str | None) -> None:
    assert clean_tracestate(value) == expected


# ---------------------------------------------------------------------- headers


def test_kafka_headers_round_trip() -> None:
    ctx = TraceContext.of(TP, STATE)
    headers = ctx.kafka_headers()
    assert headers == [("traceparent", TP.encode()), ("tracestate", STATE.encode())]
    assert TraceContext.from_kafka(headers) == ctx
    assert TraceContext.from_kafka([("TraceParent", TP.encode())]) == TraceContext.of(TP)
    assert TraceContext.of(TP).kafka_headers() == [("traceparent", TP.encode())]
    assert NO_TRACE.kafka_headers() is None
    assert ctx.http_headers() == {"traceparent": TP, "tracestate": STATE}
    assert NO_TRACE.http_headers() == {}


def test_a_record_without_a_valid_traceparent_header_falls_back_to_the_envelope_field() -> None:
    other = f"00-{'1' * 32}-{'2' * 16}-01"
    # the header wins over the fallback
    assert TraceContext.from_kafka([("traceparent", TP.encode())], other).header == TP
    # no header, an invalid one, or headers not shaped as aiokafka gives them: the fallback
    for headers in (None, [], [("traceparent", b"00-abc-def-01")], [("x", b"1")], [42], "junk"):
        found = TraceContext.from_kafka(headers, other)  # type: ignore[arg-type]
        assert found == TraceContext.of(other)
    # the fallback comes without a state: tracestate travels in headers only
    assert TraceContext.from_kafka([("tracestate", STATE.encode())], TP) == TraceContext.of(TP)
    assert TraceContext.from_kafka([("traceparent", b"junk")], "00-abc-def-01") == NO_TRACE


def test_outside_a_hop_there_is_no_context_to_send() -> None:
    assert current() == NO_TRACE
    assert http_headers() == {}


# ---------------------------------------------------------------------- hops without spans


def test_without_an_sdk_a_hop_passes_the_context_on_as_it_came_and_makes_no_span() -> None:
    assert otel_available()  # the API is installed (dev extra), but no SDK provider is set
    tracing = Tracing()
    assert not tracing.recording
    with tracing.hop(REPLAY_SPAN, TraceContext.of(TP, STATE)) as hop:
        sent = TraceParent.parse(hop.traceparent)
        assert sent is not None
        # no span was made, so no new parent id: the candidate's spans hang under prod's span
        assert (sent.trace_id, sent.parent_id) == (TRACE, PARENT)
        assert current() == hop.context
        assert http_headers() == {"traceparent": hop.traceparent, "tracestate": STATE}
        hop.set("shadowlane.status", "ok")  # no span: nothing to set, nothing raised
    assert current() == NO_TRACE
    with tracing.hop(REPLAY_SPAN, NO_TRACE) as untraced:
        assert untraced.context == NO_TRACE
        assert http_headers() == {}
    ctx = TraceContext.of(TP)
    assert tracing.finished(COMPARE_SPAN, ctx, 1, 2) == ctx  # copied as it is: nothing was traced


def test_without_the_opentelemetry_api_hops_still_pass_the_trace_on() -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["opentelemetry"] = None  # as if opentelemetry-api were not installed
        from shadowlane.tracing import REPLAY_SPAN, TraceContext, TraceParent, Tracing, otel_available
        tracing = Tracing()
        assert not otel_available() and not tracing.recording
        with tracing.hop(REPLAY_SPAN, TraceContext.of("{TP}", "{STATE}")) as hop:
            sent = TraceParent.parse(hop.traceparent)
            assert sent.trace_id == "{TRACE}" and sent.parent_id == "{PARENT}", sent
            assert hop.context.tracestate == "{STATE}"
            hop.set("shadowlane.status", "ok")
        ctx = TraceContext.of("{TP}")
        assert tracing.finished("shadowlane.compare", ctx, 1, 2) == ctx
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_global_provider_is_used_once_an_sdk_sets_it() -> None:
    # a fresh process: the global provider can be set once per process
    script = textwrap.dedent(
        f"""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from shadowlane.tracing import REPLAY_SPAN, TraceContext, Tracing
        tracing = Tracing()  # built before the SDK is configured, as a worker may be
        assert not tracing.recording
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        assert tracing.recording
        with tracing.hop(REPLAY_SPAN, TraceContext.of("{TP}")) as hop:
            pass
        (span,) = exporter.get_finished_spans()
        print(f"{{span.parent.span_id:016x}} {{span.context.span_id:016x}} {{hop.traceparent}}")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    parent, span_id, sent = done.stdout.split()
    assert parent == PARENT
    assert sent == f"00-{TRACE}-{span_id}-01"


def test_importing_the_hook_does_not_import_opentelemetry() -> None:
    script = "import sys, shadowlane.hook, shadowlane.tracing; print('opentelemetry' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


# ---------------------------------------------------------------------- spans (SDK, in memory)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    yield memory
    memory.shutdown()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    made = TracerProvider()
    made.add_span_processor(SimpleSpanProcessor(exporter))
    yield made
    made.shutdown()


def _ids(span: ReadableSpan) -> tuple[str, str, str | None]:
    """(trace id, span id, parent span id) of a finished span, in hex."""
    ctx = span.get_span_context()
    assert ctx is not None
    parent = format_span_id(span.parent.span_id) if span.parent is not None else None
    return format_trace_id(ctx.trace_id), format_span_id(ctx.span_id), parent


def test_a_hop_is_a_span_under_the_incoming_traceparent(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracing = Tracing(provider)
    assert tracing.recording
    attributes = {"shadowlane.candidate": "cand"}
    with tracing.hop(REPLAY_SPAN, TraceContext.of(TP, STATE), kind="client", attributes=attributes) as hop:
        hop.set("shadowlane.status", "ok")
        hop.set("shadowlane.error_class", None)  # None is not an attribute value: skipped
        sent = hop.context
    (span,) = exporter.get_finished_spans()
    trace_id, span_id, parent = _ids(span)
    assert (span.name, span.kind, trace_id, parent) == (REPLAY_SPAN, SpanKind.CLIENT, TRACE, PARENT)
    assert span.parent is not None
    assert span.parent.is_remote
    assert dict(span.attributes or {}) == {"shadowlane.candidate": "cand", "shadowlane.status": "ok"}
    # what the hop sends on names its span, with the state as it came
    assert sent == TraceContext(TraceParent(TRACE, span_id, 1), STATE)
    made = span.get_span_context()
    assert made is not None
    assert made.trace_state.get("rojo") == PARENT  # the propagator read the state too


def test_an_untraced_hop_makes_no_span(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    with Tracing(provider).hop(PUBLISH_SPAN, TraceContext.of("00-abc-def-01")) as hop:
        assert hop.context == NO_TRACE
    assert exporter.get_finished_spans() == ()


def test_an_exception_in_a_hop_is_recorded_and_raised(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with (
        pytest.raises(RuntimeError, match="candidate down"),
        Tracing(provider).hop(REPLAY_SPAN, TraceContext.of(TP)),
    ):
        raise RuntimeError("candidate down")
    (span,) = exporter.get_finished_spans()
    assert [event.name for event in span.events] == ["exception"]
    assert not span.status.is_ok
    assert current() == NO_TRACE


def test_spans_chain_publish_replay_compare(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    tracing = Tracing(provider)
    with tracing.hop(PUBLISH_SPAN, TraceContext.of(TP), kind="producer") as publish:
        headers = publish.context.kafka_headers()
    with tracing.hop(REPLAY_SPAN, TraceContext.from_kafka(headers), kind="client") as replay:
        result_tp = replay.traceparent
    compared = tracing.finished(COMPARE_SPAN, TraceContext.of(result_tp), 1_000, 2_000, kind="consumer")
    spans = {span.name: span for span in exporter.get_finished_spans()}
    ids = {name: _ids(span) for name, span in spans.items()}
    assert {trace for trace, _span, _parent in ids.values()} == {TRACE}
    assert ids[PUBLISH_SPAN][2] == PARENT
    assert ids[REPLAY_SPAN][2] == ids[PUBLISH_SPAN][1]
    assert ids[COMPARE_SPAN][2] == ids[REPLAY_SPAN][1]
    assert compared.header == f"00-{TRACE}-{ids[COMPARE_SPAN][1]}-01"
    assert (spans[COMPARE_SPAN].start_time, spans[COMPARE_SPAN].end_time) == (1_000, 2_000)


async def test_a_replay_runs_in_its_span_and_its_result_and_candidate_carry_it(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    seen: list[TraceContext] = []

    def candidate(body: dict[str, Any]) -> str:
        seen.append(current())  # a Python candidate reads the replay's context (a pool thread)
        return "answer"

    env = make_envelope("r-1").model_copy(update={"trace_id": TP})
    replayer = Replayer(CallableCandidate("cand", candidate), ShadowSettings(), tracing=Tracing(provider))
    result = await replayer.replay(env)  # no record headers: the envelope's trace_id is the parent
    (span,) = exporter.get_finished_spans()
    trace_id, span_id, parent = _ids(span)
    assert (span.name, trace_id, parent) == (REPLAY_SPAN, TRACE, PARENT)
    assert dict(span.attributes or {}) == {
        "shadowlane.candidate": "cand",
        "shadowlane.req_hash": env.req_hash,
        "shadowlane.status": "ok",
    }
    assert result.traceparent == f"00-{TRACE}-{span_id}-01"
    assert [ctx.header for ctx in seen] == [result.traceparent]
    # an untraced envelope: no span, no traceparent on the result
    plain = await replayer.replay(make_envelope("r-2"))
    assert plain.traceparent is None
    assert len(exporter.get_finished_spans()) == 1


# ---------------------------------------------------------------------- the comparator's copy


@pytest.mark.skipif(NATIVE_PLAIN is None, reason="shadowlane_native is not built")
def test_both_comparison_builders_copy_the_results_traceparent() -> None:
    env = make_envelope("c-1")
    res = make_result(env, "cand").model_copy(update={"traceparent": TP})
    native, python = builders(False)
    side = read_request(encode(env), env.req_hash.encode())
    record = read_result(encode(res))
    prepared = native.prepare([Joined(side, record, [], {"cand": record})])
    wire = prepared.wire[0]
    assert wire is not None  # a plain pair: the native path built it, bytes and all
    assert orjson.loads(wire)["traceparent"] == TP
    (built,) = native.finish(prepared)
    python_side = ProdSide.decode_python(encode(env), env.req_hash.encode())
    (made,) = python.build([Joined(python_side, res, [], {"cand": res})])
    assert built.traceparent == made.traceparent == TP
    assert encode(made) == wire
    # the compare record's headers carry it (no SDK provider: the copy as it is)
    assert native.trace.headers([built, made.model_copy(update={"traceparent": None})], 0) == [
        [("traceparent", TP.encode())],
        None,
    ]
