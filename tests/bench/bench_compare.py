"""Comparator join throughput with ΔS off (``--embedder none``) vs a raw consume + decode of both topics.

ΔS off: these rows measure the join, not what the default configuration runs; the comparator with
the default embedder on is :mod:`tests.bench.bench_compare_delta_s`.

Two prefilled co-partitioned topics (requests, shadow-results) with 5 % orphan requests (no
result) and the results shifted by an out-of-order distance d (0, 1k, 100k): result i is written
after request i + d. No embedder (what ``--embedder none`` builds). Variant: the ``Comparator``
(join, build comparisons, produce them, commit). Baseline: one consumer group reading both
topics and decoding every record, no join, no output. Both rates count the same thing, the
data's joinable pairs over the time it took to get through them, so the ratio is the baseline's
time over the comparator's. Reported: joined pairs/s, ratio (target ≥ 0.7×; moonshot ≥ 35k
pairs/s per process), peak RSS, and the bytes of join state per waiting pair (tracemalloc).
"""

from __future__ import annotations

import asyncio
import gc
import resource
import time
import tracemalloc
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.structs import ConsumerRecord

from shadowlane.compare.build import ComparisonBuilder
from shadowlane.compare.native.join import NativeJoinBuffer, join_buffer
from shadowlane.compare.worker import Comparator
from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.contracts.shadow_result import ShadowResult
from shadowlane.gc_tuning import tune_for_workers
from shadowlane.kafka.admin import ensure_topics
from shadowlane.malloc_tuning import tune_allocator
from shadowlane.settings import CompareSettings, Settings
from tests.bench.common import BenchResult, alternate, at_least, bench_settings, delete_topics, kafka_kwargs
from tests.bench.payloads import envelope_of_size
from tests.support.factories import renamed, result


def envelopes(n: int) -> list[RequestEnvelope]:
    """The benchmark's n requests (1 KB envelopes with distinct ids)."""
    return [renamed(envelope_of_size(i, "1k"), f"j{i}") for i in range(n)]


async def _prefill(settings: Settings, kwargs: dict[str, Any], n: int, distance: int) -> int:
    """Write n requests and results for 95 % of them, result i written after request i + distance."""
    envs = envelopes(n)
    t = settings.topics
    producer = AIOKafkaProducer(**kwargs, acks="all", linger_ms=5, max_batch_size=262_144)
    await producer.start()
    answered = 0
    try:
        futures = []
        for i in range(n + distance):
            if i < n:
                e = envs[i]
                futures.append(await producer.send(t.requests_topic, encode(e), key=e.req_hash.encode()))
            j = i - distance
            if 0 <= j < n and j % 20 != 0:  # 5 % of the requests never get a result
                e = envs[j]
                futures.append(
                    await producer.send(
                        t.shadow_results_topic, encode(result(e, "cand")), key=e.req_hash.encode()
                    )
                )
                answered += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return answered


async def _raw(settings: Settings, kwargs: dict[str, Any], total_records: int, pairs: int) -> float:
    """Pairs/s as the comparator counts them: the data's pairs over the time to read all of it
    (the orphan requests are read by both; counting them as half pairs here would flatter the
    baseline by the orphan share)."""
    t = settings.topics
    consumer = AIOKafkaConsumer(
        t.requests_topic,
        t.shadow_results_topic,
        **kwargs,
        group_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=2000,
        partition_assignment_strategy=(RangePartitionAssignor,),
    )
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    try:
        while seen < total_records:
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                model: type[RequestEnvelope] | type[ShadowResult] = (
                    RequestEnvelope if tp.topic == t.requests_topic else ShadowResult
                )
                for record in records:
                    decode(record.value, model)
                    seen += 1
        return pairs / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def _comparator(
    settings: Settings,
    kwargs: dict[str, Any],
    pairs: int,
    *,
    exactly_once: bool = True,
    emitted: bool = False,
) -> float:
    """Pairs per second through a comparator: until ``pairs`` are joined, or (``emitted``) until
    their comparisons are acknowledged (exactly-once: committed, visible to ``read_committed``)."""
    s = settings.model_copy(
        update={
            "compare": settings.compare.model_copy(
                update={
                    "group_id": f"bench-cmp-{uuid.uuid4().hex[:8]}",
                    "candidates": ("cand",),
                    "window_s": 3600.0,
                    "exactly_once": exactly_once,
                }
            )
        }
    )
    comparator = Comparator(s, None, kwargs)
    task = asyncio.create_task(comparator.run())
    try:
        await comparator.assigned.wait()
        started = time.perf_counter()
        if emitted:
            return await _sustained(comparator, pairs, started)
        while comparator.join.stats.joined < pairs:  # noqa: ASYNC110 (polls a plain counter)
            await asyncio.sleep(0.005)
        return pairs / (time.perf_counter() - started)
    finally:
        comparator.stop()
        await task


SUSTAINED: dict[str, list[float]] = {"whole_run": []}


async def _sustained(comparator: Comparator, pairs: int, started: float) -> float:
    """Comparisons made visible per second between 10 % and 90 % of them: the sustained rate,
    start-up and the last commit's wait left out (the whole run's rate goes to ``SUSTAINED``)."""
    marks: dict[float, float] = {}
    while comparator.stats.emitted < pairs:
        for share in (0.1, 0.9):
            if share not in marks and comparator.stats.emitted >= share * pairs:
                marks[share] = time.perf_counter()
        await asyncio.sleep(0.005)
    end = time.perf_counter()
    SUSTAINED["whole_run"].append(pairs / (end - started))
    return 0.8 * pairs / (marks.get(0.9, end) - marks.get(0.1, started))


async def _exactly_once_row(
    settings: Settings, kwargs: dict[str, Any], pairs: int, rounds: int
) -> BenchResult:
    """The cost of exactly-once: comparisons made visible per second, sustained (10 % to 90 % of
    them), with it off (acknowledged) and on (committed); the whole runs' rates ride along."""
    SUSTAINED["whole_run"].clear()

    async def off() -> float:
        return await _comparator(settings, kwargs, pairs, exactly_once=False, emitted=True)

    async def on() -> float:
        return await _comparator(settings, kwargs, pairs, exactly_once=True, emitted=True)

    base, var, a, b = await alternate(off, on, rounds)
    whole = SUSTAINED["whole_run"]
    return at_least(
        "compare.exactly_once",
        "pairs/s",
        ("at_least_once", base),
        ("exactly_once", var),
        0.70,
        target="≥ 0.70× (sustained; the cost of transactions and window state)",
        extra={
            "pairs": pairs,
            "samples": {"off": a, "on": b},
            "whole_run": {"off": whole[0::2], "on": whole[1::2]},
        },
    )


def state_bytes_per_waiting_pair(n: int = 5_000) -> float:
    """Bytes the join retains per waiting request: read from the wire inside the measurement, as
    the comparator reads a poll (``ingest``), so it counts everything kept (the slim projection,
    bookkeeping), not the transient envelope. tracemalloc sees the Python heap; the native join
    adds what it holds outside it (``native_bytes``: its tables, keys and records' strings)."""
    fetched = [
        ConsumerRecord("requests", 0, i, 0, 0, None, encode(envelope_of_size(i, "1k")), None, 0, 0, ())
        for i in range(n)
    ]
    plain = ComparisonBuilder(None, CompareSettings(candidates=("cand",))).plain
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    join = join_buffer(("cand",), 60_000, max_pending=n * 2, plain=plain)
    join.ingest(fetched, "requests", 0, True)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    native = join.native_bytes() if isinstance(join, NativeJoinBuffer) else 0
    return (sum(stat.size_diff for stat in after.compare_to(before, "filename")) + native) / n


async def run(quick: bool) -> list[BenchResult]:
    tune_for_workers()  # as `shadowlane compare` does
    tune_allocator()
    n = 6_000 if quick else 40_000
    distances = (0,) if quick else (0, 1_000, 100_000)
    rounds = 2
    results: list[BenchResult] = []
    for distance in distances:
        d = min(distance, n)
        settings = bench_settings(f"cmp{distance}")
        kwargs = kafka_kwargs(settings)
        await ensure_topics(settings.topics, kwargs)
        pairs = await _prefill(settings, kwargs, n, d)

        async def raw(
            s: Settings = settings, kw: dict[str, Any] = kwargs, total: int = n + pairs, p: int = pairs
        ) -> float:
            return await _raw(s, kw, total, p)

        async def comp(s: Settings = settings, kw: dict[str, Any] = kwargs, p: int = pairs) -> float:
            return await _comparator(s, kw, p)

        base, var, a, b = await alternate(raw, comp, rounds)
        results.append(
            at_least(
                f"compare.join.delta_s_off.ooo_{distance}",
                "pairs/s",
                ("raw_consume_decode", base),
                ("comparator_delta_s_off", var),
                0.70,
                target="≥ 0.70× (moonshot ≥ 35k pairs/s)",
                extra={
                    "requests": n,
                    "orphans": n - pairs,
                    "out_of_order": d,
                    "moonshot_35k": var >= 35_000,
                    "samples": {"raw": a, "comparator": b},
                },
            )
        )
        if distance == 0:
            results.append(await _exactly_once_row(settings, kwargs, pairs, rounds))
        await delete_topics(
            kwargs,
            [
                settings.topics.requests_topic,
                settings.topics.shadow_results_topic,
                settings.topics.compare_topic,
                settings.topics.dlq_topic,
            ],
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    per_pair = state_bytes_per_waiting_pair(2_000 if quick else 10_000)
    results[-1].extra.update(
        {"peak_rss_mb": round(peak_mb, 1), "state_bytes_per_waiting_pair": round(per_pair)}
    )
    return results
