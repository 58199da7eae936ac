"""The hook's counting and its replay rule, through the middleware: every request it sees is
counted once (``seen`` equals the sum of the outcomes), and shadow traffic is never mirrored."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson

from shadowlane.hook.context import SHADOW_HEADER, replaying
from shadowlane.hook.publisher import GateVerdict, ShadowPublisher
from shadowlane.settings import HookSettings
from tests.support.asgi_fakes import PATH, REQUEST, Client, Handler, RecordingPublisher, http_scope, mw
from tests.support.fake_kafka import FakeProducerFactory
from tests.support.hook_counts import TERMINAL, assert_every_request_counted_once
from tests.support.waiting import wait_until


async def test_a_replay_marked_by_the_shadow_header_passes_through_unmirrored() -> None:
    handler, pub, client = Handler(), RecordingPublisher(), Client()
    headers = [(b"x-request-id", b"replay-1"), (b"x-shadowlane-shadow", b"1")]  # as the worker sends it
    await mw(handler, pub)(http_scope(headers=headers), client.receive, client.send)
    assert client.sent == handler.sent
    assert handler.seen_receive == client.receive  # nothing wrapped, nothing copied
    assert pub.calls == []
    assert (pub.stats.seen, pub.stats.skipped_shadow, pub.stats.sampled_out) == (1, 1, 0)


async def test_a_request_served_inside_a_replay_is_not_mirrored() -> None:
    """An in-process candidate app behind the middleware, called by the shadow worker."""
    handler, pub, client = Handler(), RecordingPublisher(), Client()
    with replaying():
        await mw(handler, pub)(http_scope(), client.receive, client.send)
    await mw(handler, pub)(http_scope(), Client().receive, Client().send)  # outside: mirrored
    assert len(pub.calls) == 1
    assert (pub.stats.seen, pub.stats.skipped_shadow) == (1, 1)  # RecordingPublisher.publish counts nothing


def _ids(pub: ShadowPublisher, sampled: bool, n: int) -> list[bytes]:
    """``n`` request ids on one side of the sampling decision."""
    found = (f"rid-{i}" for i in range(10_000) if pub.should_sample(f"rid-{i}")[0] is sampled)
    return [next(found).encode() for _ in range(n)]


async def test_every_request_the_hook_sees_is_counted_once() -> None:
    """Drives every path a request can take through the middleware and the publisher; the sum of
    the outcomes must equal ``seen`` (a path that forgets ``seen``, or counts twice, fails)."""

    def gate(endpoint: str, tenant: str, bucket: float, arm: str | None) -> GateVerdict:
        return {"/killed": "killed", "/skipped": "route_skipped"}.get(endpoint, "mirror")  # type: ignore[return-value]

    factory = FakeProducerFactory()
    settings = HookSettings(linger_ms=0, sample_ratio=0.5, queue_size=3)
    pub = ShadowPublisher(settings, topic="t", producer_factory=factory, gate=gate)
    sampled, unsampled = _ids(pub, True, 8), _ids(pub, False, 1)
    paths = (PATH, "/killed", "/skipped")

    async def request(
        rid: bytes,
        *,
        path: str = PATH,
        body: bytes = REQUEST,
        extra: tuple[tuple[bytes, bytes], ...] = (),
        **kw: Any,
    ) -> None:
        handler = Handler(**kw)
        client = Client(body=body, chunk=400)
        headers = [(b"x-request-id", rid), *extra]
        with contextlib.suppress(RuntimeError):
            await mw(handler, pub, paths=paths, max_body_bytes=1024)(
                http_scope(path=path, headers=headers), client.receive, client.send
            )

    await pub.start()
    await request(sampled[0])  # published
    await request(unsampled[0])  # sampled_out
    await request(sampled[1], path="/killed")  # killed
    await request(sampled[2], path="/skipped")  # route_skipped
    await request(sampled[3], extra=((SHADOW_HEADER.encode(), b"1"),))  # skipped_shadow
    await request(sampled[4], body=orjson.dumps({"messages": [{"content": "x" * 3000}]}))  # too large
    await request(sampled[5], raise_after_start=True)  # dropped_incomplete
    await request(sampled[6], body=b'{"messages": "not a list"}')  # dropped_invalid (sender)
    assert await wait_until(lambda: pub.queued == 0 and pub.stats.dropped_invalid == 1)
    for i in range(5):  # no await in between: the queue holds 3
        pub.publish(
            req_id=sampled[7].decode() + str(i),
            endpoint=PATH,
            request=REQUEST,
            response=None,
            status=200,
            latency_ms=1.0,
            bucket=0.1,
        )
    await pub.stop(drain_timeout_s=2.0)
    pub.publish(
        req_id="late", endpoint=PATH, request=REQUEST, response=None, status=200, latency_ms=1.0, bucket=0.1
    )

    counts = pub.stats.as_dict()
    assert [name for name in TERMINAL if not counts[name]] == ["send_failed"], counts
    assert_every_request_counted_once(pub.stats)
