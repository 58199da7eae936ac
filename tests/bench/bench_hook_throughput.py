"""Hook throughput: ``ShadowPublisher.publish()`` drained to the broker vs a raw aiokafka loop.

Variant: N prod requests (chat body + answer of ~1 KB or ~8 KB) go through ``publish()``; the
clock stops when the publisher reports every envelope acknowledged. This includes sampling,
sanitizing, building and validating the envelope, serialization and delivery.
Baseline: a raw ``AIOKafkaProducer.send()`` loop of the very bytes the hook produced, with the
same producer settings, awaiting every delivery. Target: variant ≥ 0.7× baseline.
"""

from __future__ import annotations

import time
from typing import Any

from aiokafka import AIOKafkaProducer

from shadowlane.contracts.codec import encode
from shadowlane.hook.context import RawMirror
from shadowlane.hook.envelope_builder import EnvelopeBuilder
from shadowlane.hook.publisher import ShadowPublisher
from shadowlane.sanitize import Sanitizer
from shadowlane.settings import HookSettings
from tests.bench.common import (
    BenchResult,
    alternate,
    at_least,
    bench_settings,
    create_topic,
    delete_topics,
    kafka_kwargs,
)
from tests.bench.payloads import chat_body, chat_response

PRODUCER = {"acks": "all", "linger_ms": 5, "max_batch_size": 262_144}


async def run(quick: bool) -> list[BenchResult]:
    settings = bench_settings("hookthr")
    kwargs = kafka_kwargs(settings)
    n = 4_000 if quick else 20_000
    rounds = 2 if quick else 4
    results: list[BenchResult] = []
    topics: list[str] = []
    for size in ("1k", "8k"):
        results.append(
            await _one_size(
                kwargs, settings.topics.prefix, settings.topics.partitions, size, n, rounds, topics
            )
        )
    await delete_topics(kwargs, topics)
    return results


async def _one_size(
    kwargs: dict[str, Any], prefix: str, partitions: int, size: str, n: int, rounds: int, topics: list[str]
) -> BenchResult:
    bodies = [(chat_body(i, size), chat_response(i, size)) for i in range(n)]
    hook = HookSettings(queue_size=n, batch_size=512)
    builder = EnvelopeBuilder(Sanitizer(), ratio=1.0, salt_id=hook.salt)
    encoded = [
        encode(builder.build(RawMirror(f"r{i}", "/v1/chat/completions", b, r, 200, 12.0, 0, 0.5)))
        for i, (b, r) in enumerate(bodies)
    ]
    counter = [0]

    def topic() -> str:
        counter[0] += 1
        name = f"{prefix}{size}.{counter[0]}"
        topics.append(name)
        return name

    async def raw() -> float:
        name = topic()
        await create_topic(kwargs, name, partitions)
        producer = AIOKafkaProducer(**kwargs, **PRODUCER)
        await producer.start()
        try:
            started = time.perf_counter()
            futures = [
                await producer.send(name, value, key=str(i).encode()) for i, value in enumerate(encoded)
            ]
            for fut in futures:
                await fut
            return n / (time.perf_counter() - started)
        finally:
            await producer.stop()

    async def hooked() -> float:
        name = topic()
        await create_topic(kwargs, name, partitions)
        publisher = ShadowPublisher(
            hook, topic=name, producer_factory=lambda: AIOKafkaProducer(**kwargs, **PRODUCER)
        )
        await publisher.start()
        await publisher.connected.wait()
        started = time.perf_counter()
        for i, (body, response) in enumerate(bodies):
            publisher.publish(
                req_id=f"r{i}",
                endpoint="/v1/chat/completions",
                request=body,
                response=response,
                status=200,
                latency_ms=12.0,
            )
        await publisher.stop(drain_timeout_s=120)
        elapsed = time.perf_counter() - started
        assert publisher.stats.published == n, publisher.stats
        return n / elapsed

    base, var, a, b = await alternate(raw, hooked, rounds)
    return at_least(
        f"hook_throughput.{size}",
        "msg/s",
        ("raw_aiokafka", base),
        ("shadow_publisher", var),
        0.70,
        extra={
            "messages": n,
            "bytes_per_msg": len(encoded[0]),
            "samples": {"raw": a, "hook": b},
            "raw_mb_per_s": round(base * len(encoded[0]) / 1e6, 1),
        },
    )
