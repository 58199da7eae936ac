"""Hook overhead: the prod ASGI app with ``ShadowMirrorMiddleware`` vs the same app without it.

In-process (no HTTP server), so the figure is the hook's own cost. A synthetic server calls the app
with POST /v1/chat/completions (~1 KB chat body); the handler reads it, awaits ``sleep(0.005)`` (its
5 ms of work) and sends a ~1 KB chat-completions answer. Open loop: request i starts at t0 + i/rate
whatever the completions, at most 64 in flight (a start that finds 64 in flight waits, counted).

In-process time per request = ``outer − (handler − time in its receive/send) − server I/O``: plain
``outer − inner`` would miss the hook's receive/send wrappers and ``publish()``, which run *inside*
the handler's calls. Nothing in that span awaits: it is the request path's own CPU. Baseline = a
pass-through wrapper with the same timers (timer cost cancels); "added" = hook − pass-through per
percentile. End-to-end = scheduled start → last response byte, so slot waits and event-loop stalls
from the publisher's background task count. HdrHistograms in ns; medians over A B A B rounds.

Scenarios: real local broker at several rates; broker stopped (producer aimed at a closed port;
every drop counted); cold topic (missing at the first request, created a quarter into the round;
auto-create is off): for it the first quarter of the requests, before the topic exists, is reported.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from hdrh.histogram import HdrHistogram

from shadowlane.hook.asgi import ASGIApp, Message, Receive, Scope, Send, ShadowMirrorMiddleware
from shadowlane.hook.publisher import ShadowPublisher
from shadowlane.kafka.admin import ensure_topics, topic_names
from tests.bench.common import (
    BenchResult,
    alternate,
    bench_settings,
    create_topic,
    delete_topics,
    kafka_kwargs,
)
from tests.bench.payloads import chat_body, chat_response

PATH = "/v1/chat/completions"
MAX_INFLIGHT = 64
WORK_S = 0.005
TARGET_ADDED_US = 50.0
TARGET_E2E = 1.05
PRODUCER = {"acks": "all", "linger_ms": 5}  # as in the README's wiring example
_BODIES = [orjson.dumps(chat_body(i, "1k")) for i in range(64)]
_RESPONSES = [orjson.dumps(chat_response(i, "1k")) for i in range(64)]
_SCOPE = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
    "path": PATH, "raw_path": PATH.encode(), "query_string": b"", "root_path": "",
    "client": ("10.0.0.7", 40000), "server": ("10.0.0.1", 8000),
}  # fmt: skip
pc = time.perf_counter_ns


def _hist() -> Any:
    return HdrHistogram(1, 60 * 10**9, 3)  # ns, 3 significant digits


def _us(hist: Any, pct: float) -> float:
    return float(hist.get_value_at_percentile(pct)) / 1000.0


@dataclass(slots=True)
class Timing:
    outer: int = 0
    inner: int = 0
    inner_io: int = 0  # inside the receive/send the handler was given (the hook's wrappers included)
    server_io: int = 0
    done: int = 0  # when the last response byte was sent

    @property
    def in_process(self) -> int:
        return max(0, self.outer - (self.inner - self.inner_io) - self.server_io)


@dataclass
class RoundStats:
    first_n: int
    added: Any = field(default_factory=_hist)  # in-process ns per request
    first: Any = field(default_factory=_hist)  # the same for requests 0 .. first_n-1
    e2e: Any = field(default_factory=_hist)
    waited: int = 0

    def record(self, i: int, t: Timing, due: int) -> None:
        self.added.record_value(t.in_process)
        if i < self.first_n:
            self.first.record_value(t.in_process)
        self.e2e.record_value(max(1, t.done - due))


async def handler(scope: Scope, receive: Receive, send: Send) -> None:
    """The prod handler: read the body, 5 ms of work, a JSON chat-completions answer."""
    body, more = b"", True
    while more:
        message = await receive()
        body, more = body + message.get("body", b""), message.get("more_body", False)
    orjson.loads(body)
    await asyncio.sleep(WORK_S)
    answer = _RESPONSES[scope["bench.i"] % len(_RESPONSES)]
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


def timed(app: ASGIApp) -> ASGIApp:
    """The inner timer: the app's call, and what it spends in the receive/send it is given."""

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        t: Timing = scope["bench.timing"]

        async def rx() -> Message:
            s = pc()
            message = await receive()
            t.inner_io += pc() - s
            return message

        async def tx(message: Message) -> None:
            s = pc()
            await send(message)
            t.inner_io += pc() - s

        s = pc()
        await app(scope, rx, tx)
        t.inner = pc() - s

    return inner


class PassThrough:
    """The baseline's outer layer: the same call depth as the middleware, doing nothing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


async def one(app: ASGIApp, i: int, due: int, tag: str, rs: RoundStats, sem: asyncio.Semaphore) -> None:
    t = Timing()
    body = _BODIES[i % len(_BODIES)]
    headers = [
        (b"host", b"prod.internal:8000"), (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()), (b"authorization", b"Bearer sk-bench-0000"),
        (b"x-request-id", f"{tag}-{i}".encode()), (b"x-tenant-id", b"acme"),
        (b"traceparent", f"00-{i:032x}-{i:016x}-01".encode()),
    ]  # fmt: skip
    scope: Scope = {**_SCOPE, "headers": headers, "bench.timing": t, "bench.i": i}

    async def receive() -> Message:
        s = pc()
        message: Message = {"type": "http.request", "body": body, "more_body": False}
        t.server_io += pc() - s
        return message

    async def send(message: Message) -> None:
        s = pc()
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            t.done = s
        t.server_io += pc() - s

    try:
        s = pc()
        await app(scope, receive, send)
        t.outer = pc() - s
        rs.record(i, t, due)
    finally:
        sem.release()


async def drive(app: ASGIApp, rate: int, n: int, tag: str, first_n: int = 0) -> RoundStats:
    """Open loop: request i starts at t0 + i/rate, or when a slot frees up (counted as waited)."""
    gc.collect()
    rs, sem, tasks = RoundStats(first_n), asyncio.Semaphore(MAX_INFLIGHT), list[asyncio.Task[None]]()
    t0, interval = pc() + 1_000_000, 1_000_000_000 // rate
    for i in range(n):
        due = t0 + i * interval
        if (delay := due - pc()) > 0:
            await asyncio.sleep(delay / 1e9)
        rs.waited += sem.locked()
        await sem.acquire()
        tasks.append(asyncio.create_task(one(app, i, due, tag, rs, sem)))
    await asyncio.gather(*tasks)
    return rs


async def settle(pub: ShadowPublisher, timeout_s: float) -> None:
    """Wait until everything the publisher accepted is acknowledged (or failed, counted)."""
    deadline, st = time.monotonic() + timeout_s, pub.stats
    while pub.queued or st.published + st.send_failed + st.dropped_invalid < st.enqueued:
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(0.01)


Round = Callable[[], Awaitable[RoundStats]]


async def ab(rounds: int, base: Round, var: Round) -> tuple[list[RoundStats], list[RoundStats]]:
    """A B A B ... through ``alternate``, keeping every round's histograms."""
    a: list[RoundStats] = []
    b: list[RoundStats] = []

    async def go(into: list[RoundStats], fn: Round) -> float:
        into.append(await fn())
        return _us(into[-1].added, 99)

    await alternate(lambda: go(a, base), lambda: go(b, var), rounds)
    return a, b


def rows(
    prefix: str, rate: int, a: list[RoundStats], b: list[RoundStats], extra: dict[str, Any]
) -> list[BenchResult]:
    def med(stats: list[RoundStats], attr: str, pct: float, div: float = 1.0) -> float:
        return round(statistics.median(_us(getattr(s, attr), pct) / div for s in stats), 2)

    attr, first = ("first", f"_first{a[0].first_n}") if a[0].first_n else ("added", "")
    pcts = {"p50": 50.0, "p99": 99.0, "p99.9": 99.9}
    in_us = {k: {"passthrough": med(a, attr, p), "hook": med(b, attr, p)} for k, p in pcts.items()}
    added = {k: round(v["hook"] - v["passthrough"], 2) for k, v in in_us.items()}
    base99, var99 = in_us["p99"]["passthrough"], in_us["p99"]["hook"]
    e2e_a, e2e_b = med(a, "e2e", 99, 1000), med(b, "e2e", 99, 1000)
    common = {
        "rounds": len(a), "requests_per_round": a[0].added.get_total_count(),
        "waited_for_slot": {"passthrough": sum(s.waited for s in a), "hook": sum(s.waited for s in b)},
        **extra,
    }  # fmt: skip
    e2e_extra = {
        "e2e_p50_ms": {"passthrough": med(a, "e2e", 50, 1000), "hook": med(b, "e2e", 50, 1000)},
        "e2e_p99_ms_rounds": {"passthrough": [round(_us(s.e2e, 99) / 1000, 2) for s in a],
                              "hook": [round(_us(s.e2e, 99) / 1000, 2) for s in b]},
    }  # fmt: skip
    return [
        BenchResult(
            name=f"hook_overhead.{prefix}added_p99_us{first}@{rate}", unit="µs",
            baseline_name="passthrough", baseline=base99, variant_name="hook", variant=var99,
            ratio=var99 / base99 if base99 else float("inf"), target=f"≤ {TARGET_ADDED_US:.0f} µs added",
            passed=var99 - base99 <= TARGET_ADDED_US, higher_is_better=False,
            extra={"added_us": added, "in_process_us": in_us, **common},
        ),
        BenchResult(
            name=f"hook_overhead.{prefix}e2e_p99_ratio@{rate}", unit="ms",
            baseline_name="passthrough", baseline=e2e_a, variant_name="hook", variant=e2e_b,
            ratio=e2e_b / e2e_a, target=f"≤ {TARGET_E2E}×", passed=e2e_b / e2e_a <= TARGET_E2E,
            higher_is_better=False, extra={**e2e_extra, **common},
        ),
    ]  # fmt: skip


async def run(quick: bool) -> list[BenchResult]:
    settings = bench_settings("hookovh")
    kwargs = kafka_kwargs(settings)
    rates, secs, rounds = ((500,), 0.8, 2) if quick else ((200, 500, 1000), 2.0, 3)
    inner = timed(handler)
    base_app = PassThrough(inner)
    topics, results, counter = topic_names(settings.topics), list[BenchResult](), [0]

    def tag() -> str:
        counter[0] += 1
        return f"r{counter[0]}"

    def publisher(topic: str, bootstrap: str | None = None, **hook: Any) -> ShadowPublisher:
        kw = {**kwargs, "bootstrap_servers": bootstrap} if bootstrap else kwargs
        return ShadowPublisher(
            settings.hook.model_copy(update=hook), topic=topic,
            producer_factory=lambda: AIOKafkaProducer(**kw, **PRODUCER),
        )  # fmt: skip

    await ensure_topics(settings.topics, kwargs)
    try:
        # 1. real broker, existing topic, several rates; one long-lived publisher as in prod
        pub = publisher(settings.topics.requests_topic)
        await pub.start()
        try:
            await asyncio.wait_for(pub.connected.wait(), 30)
            hook_app = ShadowMirrorMiddleware(inner, pub)
            for app in (base_app, hook_app):  # warm-up, not recorded
                await drive(app, rates[0], 100, tag())
            await settle(pub, 10)
            for rate in rates:
                n, before = int(rate * secs), pub.stats.as_dict()

                async def warm_a(rate: int = rate, n: int = n) -> RoundStats:
                    return await drive(base_app, rate, n, tag())

                async def warm_b(rate: int = rate, n: int = n) -> RoundStats:
                    rs = await drive(hook_app, rate, n, tag())
                    await settle(pub, 10)  # the next round starts with an empty queue
                    return rs

                a, b = await ab(rounds, warm_a, warm_b)
                delta = {k: v - before[k] for k, v in pub.stats.as_dict().items()}
                results += rows("", rate, a, b, {"publisher": delta})
        finally:
            await pub.stop()
        rate = 500
        n = int(rate * secs)

        # 2. broker stopped: the producer never connects; the queue fills, then captures are dropped
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]  # closed on exit: nothing listens there
        dead = publisher(settings.topics.requests_topic, f"127.0.0.1:{port}", queue_size=n // 2)
        dead_app = ShadowMirrorMiddleware(inner, dead)
        logging.disable(logging.CRITICAL)  # expected connect / missing-topic warnings; the stats count them
        await dead.start()
        try:
            a, b = await ab(
                rounds, lambda: drive(base_app, rate, n, tag()), lambda: drive(dead_app, rate, n, tag())
            )
        finally:
            await dead.stop(drain_timeout_s=0.5)
        st = dead.stats
        counted = st.seen == st.enqueued + st.dropped_queue_full and st.enqueued == st.dropped_not_running
        results += rows("broker_stopped.", rate, a, b, {"publisher": st.as_dict(), "all_counted": counted})

        # 3. cold topic: a fresh publisher whose topic only appears a quarter into the round
        cold: dict[str, list[int]] = {"backlog_at_create": [], "published": [], "seen": []}

        async def cold_b() -> RoundStats:
            name = f"{settings.topics.prefix}cold.{tag()}"
            pub = publisher(name)

            async def create_later() -> None:
                await asyncio.sleep(secs / 4)
                cold["backlog_at_create"].append(pub.queued)
                await create_topic(kwargs, name, settings.topics.partitions)
                topics.append(name)

            await pub.start()
            try:
                await asyncio.wait_for(pub.connected.wait(), 30)
                async with asyncio.TaskGroup() as tg:  # the creator is cancelled if the round fails
                    tg.create_task(create_later())
                    rs = await drive(ShadowMirrorMiddleware(inner, pub), rate, n, tag(), first_n=n // 4)
                await settle(pub, 30)
            finally:
                await pub.stop()
            cold["published"].append(pub.stats.published)
            cold["seen"].append(pub.stats.seen)
            return rs

        a, b = await ab(rounds, lambda: drive(base_app, rate, n, tag(), first_n=n // 4), cold_b)
        results += rows("cold_topic.", rate, a, b, cold)
    finally:
        logging.disable(logging.NOTSET)
        await delete_topics(kwargs, topics)
    return results
