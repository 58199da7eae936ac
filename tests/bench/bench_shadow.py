"""Shadow worker throughput, and group scaling under a 50 ms candidate and a rate cap.

1. Zero-latency Python candidate: ``ShadowWorker`` over a prefilled requests topic vs a raw
   aiokafka loop doing getmany → decode → encode a result → produce → commit after the acks
   (the same commit policy). Target ≥ 0.8× raw.
2. A 50 ms candidate with 1, 2 and 4 member processes of one group: the group's throughput must
   follow min(members × concurrency / latency, cap), and at saturation stay within ±5 % of the cap.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.contracts.shadow_result import ShadowResult
from shadowlane.demo.procs import WorkerProcess
from shadowlane.gc_tuning import tune_for_workers
from shadowlane.kafka.admin import ensure_topics
from shadowlane.malloc_tuning import tune_allocator
from shadowlane.settings import Settings
from shadowlane.shadow.candidates import CallableCandidate
from shadowlane.shadow.worker import ShadowWorker
from tests.bench.common import (
    BenchResult,
    alternate,
    at_least,
    bench_settings,
    create_topic,
    delete_topics,
    kafka_kwargs,
)
from tests.bench.payloads import envelope_of_size
from tests.support.kafka_io import produce, read_topic


def _echo(body: dict[str, Any]) -> str:
    return "echo"


async def _raw_loop(kwargs: dict[str, Any], source: str, sink: str, n: int) -> float:
    consumer = AIOKafkaConsumer(
        source,
        **kwargs,
        group_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
    )
    producer = AIOKafkaProducer(**kwargs, acks="all", linger_ms=2)
    await producer.start()
    await consumer.start()
    done = 0
    started = time.perf_counter()
    try:
        while done < n:
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            futures = []
            for records in batches.values():
                for record in records:
                    env = decode(record.value, RequestEnvelope)
                    result = ShadowResult(
                        req_hash=env.req_hash,
                        req_id=env.req_id,
                        candidate="raw",
                        shadow_id="s",
                        ts_ms=0,
                        status="ok",
                        answer="echo",
                        latency_ms=0.0,
                    )
                    futures.append(
                        await producer.send(sink, encode(result), key=record.key, partition=record.partition)
                    )
            await asyncio.gather(*futures)
            if futures:
                await consumer.commit()
            done += len(futures)
        return n / (time.perf_counter() - started)
    finally:
        await consumer.stop()
        await producer.stop()


async def _worker_loop(
    settings: Settings, kwargs: dict[str, Any], n: int, *, exactly_once: bool = True, committed: bool = False
) -> float:
    """Records per second through a shadow worker: until ``n`` are replayed, or (``committed``)
    until their offsets are committed, i.e. their results are visible to ``read_committed`` readers
    (with exactly-once, the results commit with the offsets)."""
    group = f"bench-{uuid.uuid4().hex[:8]}."
    s = settings.model_copy(
        update={
            "shadow": settings.shadow.model_copy(
                # one candidate call per record, like the baseline: no λ replays
                update={
                    "group_prefix": group,
                    "rate_cap": 1e9,
                    "concurrency": 64,
                    "lambda_ratio": 0.0,
                    "exactly_once": exactly_once,
                }
            )
        }
    )
    # a candidate of its own per round: every round replays the same records, which a candidate's
    # replays within dedupe_ttl_s would skip as copies (docs/delivery.md#retry-storms)
    worker = ShadowWorker(s, CallableCandidate(f"echo-{uuid.uuid4().hex[:8]}", _echo), kwargs)
    task = asyncio.create_task(worker.run())
    try:
        await worker.assigned.wait()
        started = time.perf_counter()
        while worker.stats.replayed < n:  # noqa: ASYNC110 (polls a plain counter; cheap at 10 ms)
            await asyncio.sleep(0.01)
        while committed and _committed(worker) < n:  # noqa: ASYNC110 (polls a plain counter)
            await asyncio.sleep(0.01)
        return n / (time.perf_counter() - started)
    finally:
        worker.stop()
        await task


async def _prefilled(tag: str, quick: bool) -> tuple[Settings, dict[str, Any], int]:
    """Fresh topics whose requests topic holds the records every round replays."""
    settings = bench_settings(tag)
    kwargs = kafka_kwargs(settings)
    await ensure_topics(settings.topics, kwargs)
    n = 2_000 if quick else 8_000
    envs = [envelope_of_size(i, "1k") for i in range(n)]
    await produce(kwargs, settings.topics.requests_topic, [(e.req_hash.encode(), encode(e)) for e in envs])
    return settings, kwargs, n


def _committed(worker: ShadowWorker) -> int:
    """Records committed so far (offsets start at 0 on a fresh topic)."""
    consumer = worker._consumer
    owned = consumer.assignment() if consumer is not None else set()
    return sum(worker.tracker.committed(tp) or 0 for tp in owned)


async def _exactly_once(quick: bool) -> BenchResult:
    """The cost of exactly-once: committed records/s with it off (baseline) and on."""
    settings, kwargs, n = await _prefilled("shadow-eos", quick)

    async def off() -> float:
        return await _worker_loop(settings, kwargs, n, exactly_once=False, committed=True)

    async def on() -> float:
        return await _worker_loop(settings, kwargs, n, exactly_once=True, committed=True)

    base, var, a, b = await alternate(off, on, 2 if quick else 3)
    await delete_topics(kwargs, [settings.topics.requests_topic, settings.topics.shadow_results_topic])
    return at_least(
        "shadow.exactly_once",
        "rec/s",
        ("at_least_once", base),
        ("exactly_once", var),
        0.70,
        target="≥ 0.70× (the cost of transactions, committed records)",
        extra={"records": n, "samples": {"off": a, "on": b}},
    )


async def _throughput(quick: bool) -> BenchResult:
    settings, kwargs, n = await _prefilled("shadow", quick)
    sink = settings.topics.name("raw-results")
    await create_topic(kwargs, sink, settings.topics.partitions)

    async def raw() -> float:
        return await _raw_loop(kwargs, settings.topics.requests_topic, sink, n)

    async def shadow() -> float:
        return await _worker_loop(settings, kwargs, n)

    base, var, a, b = await alternate(raw, shadow, 2 if quick else 3)
    await delete_topics(kwargs, [settings.topics.requests_topic, settings.topics.shadow_results_topic, sink])
    return at_least(
        "shadow.zero_latency",
        "rec/s",
        ("raw_loop", base),
        ("shadow_worker", var),
        0.80,
        extra={"records": n, "samples": {"raw": a, "worker": b}},
    )


async def _group_rate(members: int, cap: float, concurrency: int, seconds: float) -> tuple[float, float]:
    """(expected, achieved) replays/s of a group of ``members`` processes, 50 ms candidate."""
    settings = bench_settings(f"grp{members}", partitions=8)
    settings = settings.model_copy(
        update={
            "shadow": settings.shadow.model_copy(
                update={
                    "rate_cap": cap,
                    "concurrency": concurrency,
                    "lambda_ratio": 0.0,  # theory counts one call per record
                    "group_prefix": f"bench-grp-{uuid.uuid4().hex[:8]}.",
                }
            )
        }
    )
    kwargs = kafka_kwargs(settings)
    await ensure_topics(settings.topics, kwargs)
    expected = min(members * concurrency / 0.05, cap)
    n = int(expected * seconds)
    args = ("shadow", "--candidate", "slow", "--callable", "tests.support.candidates:slow_50ms")
    procs = [await WorkerProcess.start(settings, *args) for _ in range(members)]
    try:
        for proc in procs:
            await proc.wait_event("assigned", timeout_s=90)
        await asyncio.sleep(1.0)  # let the last join's rebalance settle
        envs = [envelope_of_size(i, "1k") for i in range(n)]
        await produce(
            kwargs, settings.topics.requests_topic, [(e.req_hash.encode(), encode(e)) for e in envs]
        )
        records = await read_topic(
            kwargs, settings.topics.shadow_results_topic, want=n, timeout_s=seconds * 4 + 30
        )
    finally:
        for proc in procs:
            await proc.terminate()
    stamps = sorted(decode(r.value, ShadowResult).ts_ms for r in records)
    trim = len(stamps) // 10
    window = stamps[trim : len(stamps) - trim]
    achieved = (len(window) - 1) / ((window[-1] - window[0]) / 1000)
    await delete_topics(kwargs, [settings.topics.requests_topic, settings.topics.shadow_results_topic])
    return expected, achieved


async def run(quick: bool) -> list[BenchResult]:
    tune_for_workers()  # as `shadowlane shadow` does
    tune_allocator()
    results = [await _throughput(quick), await _exactly_once(quick)]
    cap, concurrency = 200.0, 4
    for members in (1,) if quick else (1, 2, 4):
        expected, achieved = await _group_rate(members, cap, concurrency, 4.0 if quick else 8.0)
        saturated = expected >= cap
        tolerance = 0.05 if saturated else 0.10
        results.append(
            BenchResult(
                name=f"shadow.group_50ms.{members}_members",
                unit="rec/s",
                baseline_name="expected",
                baseline=round(expected, 1),
                variant_name="achieved",
                variant=round(achieved, 1),
                ratio=achieved / expected,
                target="±5 % of cap" if saturated else "≈ members × concurrency / 50 ms (±10 %)",
                passed=abs(achieved / expected - 1) <= tolerance,
                extra={"cap": cap, "concurrency": concurrency},
            )
        )
    return results
