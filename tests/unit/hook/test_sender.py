"""shadowlane/hook/pacing.py and sender.py: the sender thread drains in paced chunks, counts every
capture it takes exactly once, and ends within its bounds (fake producers, fake clocks)."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from shadowlane.hook.context import RawMirror
from shadowlane.hook.envelope_builder import EnvelopeBuilder
from shadowlane.hook.pacing import ACTIVE_WINDOW_S, Pacer
from shadowlane.hook.publisher import PublisherStats, ShadowPublisher
from shadowlane.hook.sender import Sender, SenderCounts
from shadowlane.sanitize import Sanitizer
from shadowlane.settings import HookSettings
from tests.support.fake_kafka import FakeProducer, FakeProducerFactory, Sent
from tests.support.waiting import wait_until

TOPIC = "shadowlane.requests"
REQUEST = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
RESPONSE = orjson.dumps({"choices": [{"message": {"role": "assistant", "content": "hello"}}]})


@dataclass
class Clocks:
    """A CPU clock that advances ``step`` per read, a wall clock moved by hand, recorded sleeps."""

    step: float = 0.00005
    cpu_now: float = 0.0
    wall_now: float = 0.0
    slept: list[float] = field(default_factory=list)

    def cpu(self) -> float:
        self.cpu_now += self.step
        return self.cpu_now

    def wall(self) -> float:
        return self.wall_now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.wall_now += seconds


def pacer(clocks: Clocks, activity: Callable[[], int]) -> Pacer:
    return Pacer(activity, cpu=clocks.cpu, wall=clocks.wall, sleep=clocks.sleep, chunk_s=0.0001,
                 idle_chunk_s=0.002, duty=0.25)  # fmt: skip


def test_an_active_host_gets_three_quarters_of_the_time_between_short_chunks() -> None:
    clocks = Clocks(step=0.00003)
    p = pacer(clocks, itertools.count().__next__)  # a new request every time it looks
    p.begin()
    assert [p.due() for _ in range(4)] == [False, False, False, True]  # 120 µs > the 100 µs chunk
    p.pause()
    assert clocks.slept == [pytest.approx(0.0003)]  # 3x the chunk: a duty cycle of 25 %
    p.begin()
    for _ in range(100):  # a chunk that overran (3 ms) earns no longer pause than a full chunk
        clocks.cpu()
    p.pause()
    assert clocks.slept[-1] == pytest.approx(0.0003)
    assert p.pauses == 2


def test_an_idle_host_gets_long_chunks_and_the_shortest_pause() -> None:
    clocks = Clocks()
    p = pacer(clocks, lambda: 7)  # nothing new from the host
    p.begin()
    dues = [p.due() for _ in range(45)]
    assert not any(dues[:35])  # 1.75 ms of work and counting: the idle chunk is 2 ms
    assert any(dues)
    p.pause()
    assert clocks.slept == [0.0]


def test_the_host_counts_as_active_for_a_window_after_its_last_request() -> None:
    seen = [0]
    clocks = Clocks()
    p = pacer(clocks, lambda: seen[0])
    assert not p.host_active()
    seen[0] += 1
    assert p.host_active()
    clocks.wall_now += ACTIVE_WINDOW_S / 2
    assert p.host_active()
    clocks.wall_now += ACTIVE_WINDOW_S
    assert not p.host_active()


def _raws(n: int, bad_every: int = 0) -> deque[RawMirror]:
    return deque(
        RawMirror(
            req_id=f"r-{i}", endpoint="/v1/chat/completions", response=RESPONSE, status=200,
            latency_ms=1.0, ts_ms=0, bucket=0.5,
            request=b"not json" if bad_every and i % bad_every == 0 else REQUEST,
        )
        for i in range(n)
    )  # fmt: skip


class Harness:
    """A Sender on its own thread, reporting to the test's loop as ShadowPublisher wires it."""

    def __init__(self, queue: deque[RawMirror], factory: Any, *, settings: HookSettings, p: Pacer) -> None:
        loop = self.loop = asyncio.get_running_loop()
        self.queue = queue
        self.counts = SenderCounts()
        self.threads: set[int] = set()
        self.exited: asyncio.Future[None] = loop.create_future()
        self.sender = Sender(
            queue, EnvelopeBuilder(Sanitizer(), ratio=1.0, salt_id="s"), settings, topic=TOPIC,
            producer_factory=factory, activity=lambda: 0, post=self._post, on_counts=self._add,
            on_connected=lambda: None, on_exit=self._exit, pacer=p,
        )  # fmt: skip

    def _post(self, fn: Callable[[], None]) -> None:
        self.loop.call_soon_threadsafe(fn)

    def _exit(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def _add(self, counts: SenderCounts) -> None:
        self.threads.add(threading.get_ident())
        stats = PublisherStats()
        stats.add(self.counts)
        stats.add(counts)
        for name in ("published", "send_failed", "dropped_invalid", "dropped_too_large", "connect_failures"):
            setattr(self.counts, name, getattr(stats, name))

    async def run(self, timeout_s: float = 10.0) -> None:
        self.sender.start()
        self.sender.close()
        await asyncio.wait_for(self.exited, timeout_s)


async def test_a_backlog_drains_in_paced_chunks_while_the_host_serves() -> None:
    clocks = Clocks()
    harness = Harness(_raws(300), FakeProducerFactory(), settings=HookSettings(linger_ms=0),
                      p=pacer(clocks, itertools.count().__next__))  # fmt: skip
    await harness.run()
    assert harness.counts.published == 300
    # never the backlog in one go: a pause after every chunk of ~0.1 ms (a few envelopes with
    # this clock), each pause three chunks long
    assert harness.sender.pacer.pauses >= 300 // 4
    assert clocks.slept == [pytest.approx(0.0003)] * len(clocks.slept)
    assert harness.threads == {threading.get_ident()}  # the counts reached the owner's loop only


async def test_every_capture_taken_is_counted_once_when_the_broker_fails_midway() -> None:
    class Flaky(FakeProducer):
        shipped = 0

        async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
            Flaky.shipped += 1
            if Flaky.shipped % 3 == 0:
                raise ConnectionError("broker went away (fake)")
            return await super().send_batch(batch, topic, partition=partition)

    sink: list[Sent] = []
    settings = HookSettings(linger_ms=0, batch_size=16)
    harness = Harness(
        _raws(200, bad_every=7), lambda: Flaky(sink), settings=settings, p=pacer(Clocks(), lambda: 0)
    )
    await harness.run()
    c = harness.counts
    assert c.dropped_invalid == len(range(0, 200, 7))
    assert c.send_failed > 0
    assert c.published == len(sink)
    assert c.published + c.send_failed + c.dropped_invalid == 200


class Hanging(FakeProducer):
    """Takes batches, never acknowledges them, and its flush never returns."""

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    async def flush(self) -> None:
        await asyncio.Event().wait()

    async def stop(self) -> None:
        await asyncio.Event().wait()


async def test_stop_gives_up_on_a_hanging_broker_within_its_bounds_and_counts_everything() -> None:
    settings = HookSettings(linger_ms=0, queue_size=50)
    pub = ShadowPublisher(settings, topic=TOPIC, producer_factory=lambda: Hanging([]))
    await pub.start()
    assert await wait_until(lambda: pub.connected.is_set())
    for i in range(120):
        pub.publish(req_id=f"h-{i}", endpoint="/v1/chat/completions", request=REQUEST, response=RESPONSE,
                    status=200, latency_ms=1.0)  # fmt: skip
    # 0.2 s to drain, then the sender is aborted: its producer's stop() hangs too, and is left
    await asyncio.wait_for(pub.stop(drain_timeout_s=0.2), 10.0)
    st = pub.stats
    assert st.published == 0
    assert st.seen == 120
    assert st.enqueued + st.dropped_queue_full == 120
    assert st.send_failed + st.dropped_not_running == st.enqueued  # every accepted capture counted
    assert st.send_failed > 0
    assert pub.queued == 0


async def test_publish_wakes_nothing() -> None:
    pub = ShadowPublisher(HookSettings(linger_ms=0), topic=TOPIC, producer_factory=FakeProducerFactory())
    await pub.start()
    loop = asyncio.get_running_loop()
    calls = [0]
    original = loop.call_soon_threadsafe

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    try:
        loop.call_soon_threadsafe = counting  # type: ignore[method-assign,assignment]
        sender = pub._sender
        assert sender is not None
        sender_loop = sender._loop
        before = calls[0]
        for i in range(50):
            pub.publish(req_id=f"w-{i}", endpoint="/v1/chat/completions", request=REQUEST, response=RESPONSE,
                        status=200, latency_ms=1.0)  # fmt: skip
        assert calls[0] == before  # no hand-over per call: the sender polls the deque
        assert sender_loop is not loop
    finally:
        loop.call_soon_threadsafe = original  # type: ignore[method-assign]
    await pub.stop(drain_timeout_s=5.0)
    assert pub.stats.published == 50
