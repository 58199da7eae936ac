"""``set_retrieved``: prod's retrieved passages, recorded by the handler, sanitized, written as
``prod.retrieved`` only when set (envelopes without them read as before the field existed)."""

from __future__ import annotations

from typing import Any

from shadowlane.compare.prod_side import NATIVE_REQUESTS, ProdSide, read_request
from shadowlane.contracts.codec import decode
from shadowlane.contracts.envelope import RequestEnvelope, RetrievedPassage
from shadowlane.hook import set_retrieved
from shadowlane.hook.context import MAX_PASSAGE_CHARS, MAX_RETRIEVED, raw_passages, recording
from shadowlane.hook.publisher import ShadowPublisher
from shadowlane.settings import HookSettings
from tests.support.asgi_fakes import Client, Handler, http_scope, mw
from tests.support.fake_kafka import FakeProducerFactory
from tests.support.waiting import wait_until


async def _mirrored(handler: Handler) -> tuple[bytes, RequestEnvelope]:
    factory = FakeProducerFactory()
    pub = ShadowPublisher(HookSettings(linger_ms=0), topic="shadowlane.requests", producer_factory=factory)
    await pub.start()
    try:
        client = Client()
        await mw(handler, pub)(http_scope(headers=[(b"x-request-id", b"rag-1")]), client.receive, client.send)
        assert await wait_until(lambda: pub.stats.published == 1)
    finally:
        await pub.stop(drain_timeout_s=2.0)
    value = factory.sink[0].value
    return value, decode(value, RequestEnvelope)


def test_every_passage_form_is_read_in_rank_order_once() -> None:
    with recording() as ctx:
        odd: Any = 3.5  # a handler's mistake: skipped, never raised
        set_retrieved(["a", ("b", "text b"), {"id": 7, "text": "seven"}, "a", " ", {"text": "no id"}, odd])
    assert ctx.labels is not None
    assert [(p.id, p.text) for p in ctx.labels.retrieved] == [("a", None), ("b", "text b"), ("7", "seven")]


def test_passages_and_their_texts_are_capped() -> None:
    many = raw_passages([(f"d{i}", "x" * (MAX_PASSAGE_CHARS + 50)) for i in range(MAX_RETRIEVED + 5)])
    assert len(many) == MAX_RETRIEVED
    assert all(p.text is not None and len(p.text) == MAX_PASSAGE_CHARS for p in many)


def test_outside_a_mirrored_request_it_is_a_no_op() -> None:
    set_retrieved(["a"])  # nothing to record into, nothing raised


async def test_snippets_reach_the_envelope_sanitized() -> None:
    def label() -> None:
        set_retrieved([("kb-1", "Refunds: mail carol@example.net"), ("kb-2", None)])

    value, env = await _mirrored(Handler(label=label))
    assert env.prod.retrieved == (
        RetrievedPassage(id="kb-1", text="Refunds: mail <email>"),
        RetrievedPassage(id="kb-2", text=None),
    )
    assert b"carol@example.net" not in value
    assert env.sanitized_fields >= 1
    # the native reader takes such records too (the comparator's and the hook's check)
    if NATIVE_REQUESTS is not None:
        assert not isinstance(read_request(value, env.req_hash.encode()), ProdSide)
    side = ProdSide.decode(value, env.req_hash.encode())
    assert side.retrieved == env.prod.retrieved
    assert side.question == "What is 2+2?"


async def test_without_it_no_retrieved_key_is_written() -> None:
    value, env = await _mirrored(Handler())
    assert b'"retrieved"' not in value
    assert env.prod.retrieved == ()
