"""shadowlane/hook/asgi.py: ShadowMirrorMiddleware driven directly as an ASGI callable."""

from __future__ import annotations

import uuid

import orjson
import pytest

from shadowlane.contracts.codec import decode
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.hook.context import (
    _CURRENT,
    RawToolCall,
    record_tool_call,
    set_citations,
    set_gold,
    set_paraphrases,
)
from shadowlane.hook.publisher import ShadowPublisher
from shadowlane.settings import HookSettings
from tests.support.asgi_fakes import (
    PATH,
    REQUEST,
    RESPONSE_PARTS,
    Client,
    Handler,
    Message,
    RecordingPublisher,
    http_scope,
    mw,
)
from tests.support.fake_kafka import FakeProducerFactory
from tests.support.waiting import wait_until


@pytest.mark.parametrize(
    "scope",
    [
        http_scope(method="GET"),
        http_scope(method="PUT"),
        http_scope(path="/v1/embeddings"),
        http_scope(path="/v1/chat/completions/"),
        {"type": "lifespan"},
        {"type": "websocket", "path": PATH},
    ],
    ids=["get", "put", "other-path", "trailing-slash", "lifespan", "websocket"],
)
async def test_other_requests_pass_through_untouched(scope: Message) -> None:
    handler, pub, client = Handler(), RecordingPublisher(), Client()
    await mw(handler, pub)(scope, client.receive, client.send)
    assert handler.calls == 1
    assert handler.seen_receive == client.receive  # the very same callables, not wrappers
    assert handler.seen_send == client.send
    assert pub.calls == []


async def test_response_reaches_the_client_unchanged_and_is_mirrored_after_the_last_byte() -> None:
    pub = RecordingPublisher()
    handler = Handler(status=201)
    client = Client(publisher=pub)
    headers = [(b"x-request-id", b"rid-123"), (b"x-tenant-id", b"acme"), (b"traceparent", b"00-t-s-01")]
    await mw(handler, pub)(http_scope(headers=headers), client.receive, client.send)

    assert client.sent == handler.sent  # status, headers and every body chunk, byte for byte
    assert client.sent[0]["status"] == 201
    assert b"".join(m.get("body", b"") for m in client.sent) == b"".join(RESPONSE_PARTS)
    assert handler.got_body == REQUEST
    assert client.on_send == [0, 0, 0]  # nothing published before the last chunk went out

    assert len(pub.calls) == 1
    call = pub.calls[0]
    assert call["req_id"] == "rid-123"
    assert call["tenant"] == "acme"
    assert call["trace_id"] == "00-t-s-01"
    assert call["endpoint"] == PATH
    assert call["request"] == REQUEST
    assert call["response"] == b"".join(RESPONSE_PARTS)
    assert call["status"] == 201
    assert call["latency_ms"] >= 0.0
    assert list(call["tool_calls"]) == []


async def test_request_id_is_generated_when_the_header_is_missing_or_empty() -> None:
    for headers in ([], [(b"x-request-id", b"")]):
        pub, client = RecordingPublisher(), Client()
        await mw(Handler(), pub)(http_scope(headers=headers), client.receive, client.send)
        rid = pub.calls[0]["req_id"]
        assert str(uuid.UUID(rid)) == rid
        assert pub.calls[0]["tenant"] == "default"
        assert pub.calls[0]["trace_id"] is None


async def test_request_id_header_is_configurable() -> None:
    pub, client = RecordingPublisher(), Client()
    headers = [(b"x-request-id", b"not-this"), (b"x-correlation-id", b"this-one")]
    await mw(Handler(), pub, request_id_header="X-Correlation-ID")(
        http_scope(headers=headers), client.receive, client.send
    )
    assert pub.calls[0]["req_id"] == "this-one"


async def test_configured_paths_are_mirrored() -> None:
    pub, client = RecordingPublisher(), Client()
    await mw(Handler(), pub, paths=("/chat",))(http_scope(path="/chat"), client.receive, client.send)
    assert [c["endpoint"] for c in pub.calls] == ["/chat"]


async def test_tool_calls_and_pins_recorded_in_the_handler_reach_publish() -> None:
    tools = [RawToolCall("lookup", {"q": "x"}, {"hits": 1}), RawToolCall("save", '{"a":1}', "ok", ok=False)]
    handler = Handler(tools=tools, pins={"model_rev": "r7"})
    pub, client = RecordingPublisher(), Client()
    await mw(handler, pub)(http_scope(), client.receive, client.send)
    assert list(pub.calls[0]["tool_calls"]) == tools
    assert pub.calls[0]["pins"] == {"model_rev": "r7"}
    # the recording context is closed afterwards: outside a mirrored request it is a no-op
    assert _CURRENT.get() is None
    record_tool_call("stray", {}, "x")
    assert list(pub.calls[0]["tool_calls"]) == tools


async def test_oversized_request_body_is_not_mirrored_but_counted() -> None:
    big = orjson.dumps({"messages": [{"role": "user", "content": "x" * 3000}]})
    handler, pub, client = Handler(), RecordingPublisher(), Client(body=big, chunk=500)
    await mw(handler, pub, max_body_bytes=1024)(http_scope(), client.receive, client.send)
    assert handler.got_body == big  # the handler still sees the whole body
    assert client.sent == handler.sent  # and the client the whole response
    assert pub.calls == []
    assert (pub.stats.seen, pub.stats.dropped_too_large) == (1, 1)


async def test_oversized_response_is_not_mirrored_but_counted() -> None:
    parts = [b"a" * 800, b"b" * 800, b"c" * 10]
    handler, pub, client = Handler(parts=parts), RecordingPublisher(), Client()
    await mw(handler, pub, max_body_bytes=1024)(http_scope(), client.receive, client.send)
    assert [m.get("body") for m in client.sent[1:]] == parts
    assert pub.calls == []
    assert (pub.stats.seen, pub.stats.dropped_too_large) == (1, 1)


async def test_handler_error_propagates_and_nothing_is_mirrored() -> None:
    handler, pub, client = Handler(raise_after_start=True), RecordingPublisher(), Client()
    with pytest.raises(RuntimeError, match="handler failed"):
        await mw(handler, pub)(http_scope(), client.receive, client.send)
    assert pub.calls == []
    assert _CURRENT.get() is None


async def test_end_to_end_with_a_real_publisher_and_fake_producer() -> None:
    factory = FakeProducerFactory()
    pub = ShadowPublisher(HookSettings(linger_ms=0), topic="shadowlane.requests", producer_factory=factory)
    await pub.start()
    try:
        handler = Handler(tools=[RawToolCall("lookup", {"q": "2+2"}, {"answer": 4})])
        client = Client()
        await mw(handler, pub)(http_scope(headers=[(b"x-request-id", b"e2e-1")]), client.receive, client.send)
        assert client.sent == handler.sent
        assert await wait_until(lambda: pub.stats.published == 1)
    finally:
        await pub.stop(drain_timeout_s=2.0)
    sent = factory.sink[0]
    env = decode(sent.value, RequestEnvelope)
    assert sent.key == env.req_hash.encode()
    assert env.req_id == "e2e-1"
    assert env.prod.answer == "4"
    assert [(t.name, t.arguments, t.output) for t in env.tool_io] == [
        ("lookup", {"q": "2+2"}, '{"answer":4}')
    ]


async def test_unsampled_requests_pass_through_without_capture() -> None:
    pub = ShadowPublisher(HookSettings(sample_ratio=0.0), topic="t", producer_factory=FakeProducerFactory())
    await pub.start()
    try:
        handler = Handler()
        client = Client()
        await mw(handler, pub)(
            http_scope(headers=[(b"x-request-id", b"skip-1")]), client.receive, client.send
        )
    finally:
        await pub.stop(drain_timeout_s=1.0)
    assert client.sent == handler.sent
    assert handler.seen_receive == client.receive  # the raw callables: nothing wrapped, nothing copied
    assert handler.seen_send == client.send
    assert pub.stats.seen == 1
    assert pub.stats.sampled_out == 1
    assert pub.stats.enqueued == 0


async def test_sampling_decision_is_taken_once_with_the_request_bucket() -> None:
    publisher = RecordingPublisher(HookSettings(sample_ratio=0.999))
    handler = Handler()
    client = Client(publisher=publisher)
    await mw(handler, publisher)(http_scope(headers=[(b"x-request-id", b"b-1")]), client.receive, client.send)
    assert len(publisher.calls) == 1
    bucket = publisher.calls[0]["bucket"]
    assert bucket is not None
    assert bucket == publisher.should_sample("b-1")[1]


async def test_at_ratio_one_the_request_path_hashes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    hashed: list[str] = []

    def unit_hash(salt: str, key: str) -> float:
        hashed.append(key)
        return 0.5

    monkeypatch.setattr("shadowlane.hook.publisher.unit_hash", unit_hash)
    publisher = RecordingPublisher()  # sample_ratio 1: everything is mirrored
    client = Client(publisher=publisher)
    await mw(Handler(), publisher)(
        http_scope(headers=[(b"x-request-id", b"b-1")]), client.receive, client.send
    )
    assert len(publisher.calls) == 1
    assert publisher.calls[0]["bucket"] is None  # the sender derives it from the request id
    assert hashed == []


async def test_a_handler_that_fails_after_the_start_is_counted_as_incomplete() -> None:
    pub = ShadowPublisher(HookSettings(), topic="t", producer_factory=FakeProducerFactory())
    await pub.start()
    try:
        client = Client()
        with pytest.raises(RuntimeError):
            await mw(Handler(raise_after_start=True), pub)(http_scope(), client.receive, client.send)
    finally:
        await pub.stop(drain_timeout_s=1.0)
    assert pub.stats.seen == 1
    assert pub.stats.dropped_incomplete == 1
    assert pub.stats.enqueued == 0


def _label_request() -> None:
    set_gold("Mail carol@example.net: 4", cited_ids=["math:add"], source="eval-7")
    set_paraphrases(["What's 2+2?", "", "Sum of 2 and 2?", "2 plus 2?", "Add 2 and 2, dave@example.com"])
    set_citations(["math:add", "math:add", ""])


async def test_labels_set_in_the_handler_reach_publish_with_the_tool_calls() -> None:
    pub, client = RecordingPublisher(), Client()
    await mw(Handler(label=_label_request), pub)(http_scope(), client.receive, client.send)
    labels = pub.calls[0]["labels"]
    assert labels is not None
    assert labels.gold is not None
    assert labels.gold.cited_ids == ("math:add",)
    assert labels.paraphrases == ("What's 2+2?", "Sum of 2 and 2?", "2 plus 2?")  # at most 3, no blanks
    assert labels.citations == ("math:add",)


def test_labelling_outside_a_mirrored_request_is_a_no_op() -> None:
    assert _CURRENT.get() is None
    _label_request()  # nothing to record into, nothing raised
    assert _CURRENT.get() is None


async def test_labels_end_up_sanitized_on_the_envelope() -> None:
    factory = FakeProducerFactory()
    pub = ShadowPublisher(HookSettings(linger_ms=0), topic="shadowlane.requests", producer_factory=factory)
    await pub.start()
    try:
        client = Client()
        await mw(Handler(label=_label_request), pub)(
            http_scope(headers=[(b"x-request-id", b"labels-1")]), client.receive, client.send
        )
        assert await wait_until(lambda: pub.stats.published == 1)
    finally:
        await pub.stop(drain_timeout_s=2.0)
    env = decode(factory.sink[0].value, RequestEnvelope)
    assert env.gold is not None
    assert env.gold.answer == "Mail <email>: 4"
    assert (env.gold.cited_ids, env.gold.source) == (("math:add",), "eval-7")
    assert env.paraphrases == ("What's 2+2?", "Sum of 2 and 2?", "2 plus 2?")
    assert env.prod.cited_ids == ("math:add",)
    assert b"carol@example.net" not in factory.sink[0].value
