"""shadowlane/hook/publisher.py: ShadowPublisher never blocks or fails the request path (fake producer)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import orjson
import pytest_asyncio

from shadowlane.contracts.codec import decode
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.hashing import unit_hash
from shadowlane.hook.context import RawToolCall
from shadowlane.hook.publisher import ShadowPublisher
from shadowlane.settings import HookSettings
from tests.support.fake_kafka import FakeProducerFactory
from tests.support.waiting import wait_until

TOPIC = "shadowlane.requests"
REQUEST = orjson.dumps(
    {"model": "m", "messages": [{"role": "user", "content": "hi, I am a@b.io"}], "api_key": "sk-x"}
)
RESPONSE = orjson.dumps({"choices": [{"message": {"role": "assistant", "content": "hello"}}]})


def make_publisher(
    factory: FakeProducerFactory | None = None, **overrides: Any
) -> tuple[ShadowPublisher, FakeProducerFactory]:
    factory = factory or FakeProducerFactory()
    settings = HookSettings(**{"linger_ms": 0, "queue_size": 100, **overrides})
    return ShadowPublisher(settings, topic=TOPIC, producer_factory=factory), factory


def publish_one(pub: ShadowPublisher, req_id: str | None = "r-1", **overrides: Any) -> bool:
    kwargs: dict[str, Any] = {
        "req_id": req_id,
        "endpoint": "/v1/chat/completions",
        "request": REQUEST,
        "response": RESPONSE,
        "status": 200,
        "latency_ms": 12.0,
    }
    kwargs.update(overrides)
    return pub.publish(**kwargs)


async def stop_quietly(pub: ShadowPublisher, timeout_s: float = 2.0) -> None:
    with contextlib.suppress(Exception):
        await pub.stop(drain_timeout_s=timeout_s)


@pytest_asyncio.fixture(loop_scope="session")
async def running() -> AsyncIterator[tuple[ShadowPublisher, FakeProducerFactory]]:
    pub, factory = make_publisher()
    await pub.start()
    try:
        yield pub, factory
    finally:
        await stop_quietly(pub)


def test_publish_before_start_is_dropped_not_running() -> None:
    pub, factory = make_publisher()
    assert publish_one(pub) is False
    assert pub.stats.seen == 1
    assert pub.stats.dropped_not_running == 1
    assert pub.stats.enqueued == 0
    assert pub.queued == 0
    assert factory.made == []


async def test_published_envelopes_are_keyed_by_req_hash(
    running: tuple[ShadowPublisher, FakeProducerFactory],
) -> None:
    pub, factory = running
    assert publish_one(pub, "r-1", tool_calls=[RawToolCall("lookup", {"q": 1}, "out")], pins={"p": "1"})
    assert publish_one(pub, "r-2")
    assert await wait_until(lambda: pub.stats.published == 2)
    assert len(factory.sink) == 2
    for sent, rid in zip(factory.sink, ["r-1", "r-2"], strict=True):
        env = decode(sent.value, RequestEnvelope)
        assert sent.topic == TOPIC
        assert sent.key == env.req_hash.encode()
        assert sent.partition is None or 0 <= sent.partition < factory.partitions
        assert env.req_id == rid
        assert env.prod.answer == "hello"
        assert b"a@b.io" not in sent.value
        assert b"sk-x" not in sent.value
    first = decode(factory.sink[0].value, RequestEnvelope)
    assert first.pins == {"p": "1"}
    assert [t.name for t in first.tool_io] == ["lookup"]
    assert first.sampling.bucket == unit_hash(HookSettings().salt, "r-1")
    assert pub.stats.sanitized_fields >= 4  # api_key dropped + e-mail masked, per envelope
    assert factory.made[0].started
    assert pub.connected.is_set()


async def test_same_request_is_always_sent_to_the_same_partition(
    running: tuple[ShadowPublisher, FakeProducerFactory],
) -> None:
    pub, factory = running
    for i in range(3):
        assert publish_one(pub, "same-id")
        assert publish_one(pub, f"other-{i}")
    assert await wait_until(lambda: pub.stats.published == 6)
    same = [s for s in factory.sink if decode(s.value, RequestEnvelope).req_id == "same-id"]
    assert len(same) == 3
    assert len({(s.key, s.partition) for s in same}) == 1


async def test_publish_without_request_id_generates_one(
    running: tuple[ShadowPublisher, FakeProducerFactory],
) -> None:
    pub, factory = running
    assert publish_one(pub, None)
    assert await wait_until(lambda: pub.stats.published == 1)
    env = decode(factory.sink[0].value, RequestEnvelope)
    assert len(env.req_id) == 36  # a uuid4


async def test_publish_never_raises_on_garbage_and_the_sender_keeps_going(
    running: tuple[ShadowPublisher, FakeProducerFactory],
) -> None:
    pub, factory = running
    garbage: list[dict[str, Any]] = [
        {"request": b"\xff\xfe\x00 not utf8"},
        {"request": b"not json", "response": b"also not json"},
        {"request": b"[1, 2, 3]"},
        {"request": b""},
        {"request": b'{"messages": "nope"}', "status": 999, "latency_ms": -5.0},
        {"request": b'{"messages": [{"role": "alien"}]}'},
        {"request": REQUEST, "response": b"data: {broken\n\n", "status": 500},
    ]
    for i, extra in enumerate(garbage):
        started = time.perf_counter()
        assert publish_one(pub, f"g-{i}", **extra) is True
        assert time.perf_counter() - started < 0.05
    assert publish_one(pub, "valid-after-garbage")
    assert await wait_until(lambda: pub.stats.published >= 2)
    assert pub.stats.dropped_invalid == 6
    assert pub.stats.published == 2  # the SSE-garbage response still has a valid request
    assert decode(factory.sink[-1].value, RequestEnvelope).req_id == "valid-after-garbage"


async def test_publish_with_wrong_types_never_raises() -> None:
    pub, _ = make_publisher()
    await pub.start()
    try:
        weird: Any = object()
        for kwargs in (
            {"request": weird, "response": weird, "status": weird, "latency_ms": weird},
            {"request": 12345, "tool_calls": weird, "pins": weird},
            {"req_id": 42, "endpoint": None, "request": None},
        ):
            base: dict[str, Any] = {"req_id": "t", "endpoint": "/x", "request": b"", "response": None}
            result = pub.publish(**{**base, "status": 200, "latency_ms": 1.0, **kwargs})
            assert isinstance(result, bool)
        assert pub.stats.seen == 3
        assert publish_one(pub, "valid-after-wrong-types")
        assert await wait_until(lambda: pub.stats.published == 1)
        assert pub.stats.dropped_invalid == 3
    finally:
        await asyncio.wait_for(pub.stop(drain_timeout_s=0.5), 2.0)


async def test_malformed_messages_do_not_stop_the_sender() -> None:
    pub, factory = make_publisher()
    await pub.start()
    try:
        # a client can send this to prod (which answers 4xx); the hook still mirrors the capture
        assert publish_one(pub, "bad-1", request=b'{"messages": ["hi"]}', status=422)
        assert publish_one(pub, "bad-2", request=b'{"messages": [{"role": "assistant", "tool_calls": [1]}]}')
        assert publish_one(pub, "bad-3", response=b'{"choices": [1]}')
        await asyncio.sleep(0.05)
        assert publish_one(pub, "good")
        assert await wait_until(lambda: pub.stats.published == 1, timeout_s=1.0)
        assert pub.stats.dropped_invalid == 3
        assert [decode(s.value, RequestEnvelope).req_id for s in factory.sink] == ["good"]
    finally:
        await asyncio.wait_for(pub.stop(drain_timeout_s=0.5), 2.0)  # must not re-raise


async def test_a_gate_is_given_the_request_bucket_at_ratio_one_too() -> None:
    seen: list[float] = []

    def gate(endpoint: str, tenant: str, bucket: float, arm: str | None) -> Literal["mirror"]:
        seen.append(bucket)
        return "mirror"

    pub, _ = make_publisher()
    pub.gate = gate
    await pub.start()
    try:
        assert publish_one(pub, "g-1")
        assert seen == [unit_hash(HookSettings().salt, "g-1")]
    finally:
        await stop_quietly(pub)


async def test_sampled_out_requests_are_not_queued() -> None:
    pub, _ = make_publisher(sample_ratio=0.0)
    await pub.start()
    try:
        assert publish_one(pub) is False
        assert pub.stats.sampled_out == 1
        assert pub.stats.enqueued == 0
    finally:
        await stop_quietly(pub)


async def test_queue_full_drops_are_counted_and_publish_stays_fast() -> None:
    # a broker that never comes up: nothing drains the queue
    pub, factory = make_publisher(FakeProducerFactory(fail_start=True), queue_size=5)
    await pub.start()
    try:
        started = time.perf_counter()
        results = [publish_one(pub, f"q-{i}") for i in range(2_000)]
        elapsed = time.perf_counter() - started
        assert results[:5] == [True] * 5
        assert not any(results[5:])
        assert pub.stats.enqueued == 5
        assert pub.stats.dropped_queue_full == 1_995
        assert pub.queued == 5
        assert elapsed < 1.0  # ~0.5 ms per call at the very most, no waiting on the broker
    finally:
        await stop_quietly(pub, 0.2)
    assert factory.sink == []


async def test_broker_down_publish_returns_immediately_and_stop_is_bounded() -> None:
    factory = FakeProducerFactory(fail_start=True)
    pub, _ = make_publisher(factory, queue_size=3)
    t0 = time.perf_counter()
    await pub.start()
    assert time.perf_counter() - t0 < 0.1  # start() does not wait for the broker
    assert await wait_until(lambda: pub.stats.connect_failures >= 1)
    assert not pub.connected.is_set()

    durations = []
    for i in range(10):
        started = time.perf_counter()
        publish_one(pub, f"d-{i}")
        durations.append(time.perf_counter() - started)
    assert max(durations) < 0.05
    assert pub.stats.enqueued == 3
    assert pub.stats.dropped_queue_full == 7

    started = time.perf_counter()
    await asyncio.wait_for(pub.stop(drain_timeout_s=0.3), 2.0)
    assert time.perf_counter() - started < 1.0
    assert pub.stats.dropped_not_running == 3  # what was still queued is counted, not lost silently
    assert pub.queued == 0
    assert pub.stats.published == 0
    assert all(p.stopped >= 1 for p in factory.made)  # every failed producer was closed
    assert publish_one(pub, "after-stop") is False
    assert pub.stats.dropped_not_running == 4


async def test_stop_drains_what_is_queued() -> None:
    pub, factory = make_publisher(linger_ms=50)
    await pub.start()
    for i in range(20):
        assert publish_one(pub, f"s-{i}")
    await pub.stop(drain_timeout_s=2.0)
    assert pub.stats.published == 20
    assert len(factory.sink) == 20
    assert factory.made[0].flushed >= 1
    assert factory.made[0].stopped == 1


async def test_publish_from_another_thread(running: tuple[ShadowPublisher, FakeProducerFactory]) -> None:
    pub, factory = running
    returned: list[bool] = []

    def worker() -> None:
        for i in range(5):
            returned.append(publish_one(pub, f"thread-{i}"))

    thread = threading.Thread(target=worker)
    thread.start()
    await asyncio.to_thread(thread.join, 2.0)
    assert returned == [True] * 5
    assert await wait_until(lambda: pub.stats.published == 5, timeout_s=2.0)
    assert sorted(decode(s.value, RequestEnvelope).req_id for s in factory.sink) == [
        f"thread-{i}" for i in range(5)
    ]


async def test_strict_mode_from_the_settings_hashes_free_text() -> None:
    pub, factory = make_publisher(strict=True)
    await pub.start()
    try:
        assert publish_one(pub, "s-1")
        assert await wait_until(lambda: pub.stats.published == 1)
    finally:
        await stop_quietly(pub)
    env = decode(factory.sink[0].value, RequestEnvelope)
    assert env.prod.answer is not None
    assert env.prod.answer.startswith("<text:")
    assert env.request.messages[-1].role == "user"  # an allowed key keeps its value
    assert all(str(m.content).startswith("<text:") for m in env.request.messages if m.content)
