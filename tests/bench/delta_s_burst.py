"""The join buffer under a burst with ΔS on: arrival at 10× the comparator's ΔS-on rate for a few
seconds, into a running comparator.

Sampled every 20 ms: the join's waiting records against ``compare.max_pending`` (its bound: past
it the oldest expire early, counted ``evicted``), the native join's bytes, the Python heap's
growth (tracemalloc, from the burst's start) and the RSS's (the model warmed up before), the
backlog still in Kafka, the pairs waiting for ΔS (bounded by ``compare.delta_s_backlog_s`` of
work at the measured rate: past it fetching pauses, counted), and the longest times without an
emitted comparison and without a commit. Then every comparison is read back from the compare
topic: a pair lost, duplicated or not joined, or a bound reached, is a miss.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from aiokafka import AIOKafkaProducer

from shadowlane.compare.native.join import NativeJoinBuffer
from shadowlane.compare.worker import Comparator
from shadowlane.kafka.admin import ensure_topics
from shadowlane.kafka.history import read_since
from shadowlane.settings import Settings
from tests.bench.common import BenchResult, delete_topics, kafka_kwargs
from tests.bench.delta_s_comparator import (
    Record,
    counted_embedder,
    fresh_settings,
    records,
    topics_of,
    wait_emitted,
    warm_up,
)
from tests.bench.payloads import DS_CANDIDATES, answer_mix

BURST_FACTOR: Final = 10
SAMPLE_S: Final = 0.02


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Peaks:
    pending: int = 0
    native_bytes: int = 0
    rss_growth: int = 0
    backlog: int = 0
    delta_s_backlog: int = 0
    delta_s_limit: int = 0
    longest_emit_gap_s: float = 0.0
    longest_commit_gap_s: float = 0.0


async def _sample(comparator: Comparator, produced: list[int], peaks: Peaks, stop: asyncio.Event) -> None:
    join = comparator.join
    rss0 = _rss_bytes()
    last_emitted, last_change = comparator.stats.emitted, time.monotonic()
    last_commits, last_commit = comparator.stats.commits, time.monotonic()
    while not stop.is_set():
        peaks.pending = max(peaks.pending, join.pending)
        if isinstance(join, NativeJoinBuffer):
            peaks.native_bytes = max(peaks.native_bytes, join.native_bytes())
        peaks.rss_growth = max(peaks.rss_growth, _rss_bytes() - rss0)
        peaks.backlog = max(peaks.backlog, produced[0] - comparator.stats.consumed)
        now = time.monotonic()
        if comparator.stats.emitted != last_emitted:
            last_emitted, last_change = comparator.stats.emitted, now
        peaks.longest_emit_gap_s = max(peaks.longest_emit_gap_s, now - last_change)
        if comparator.stats.commits != last_commits:
            last_commits, last_commit = comparator.stats.commits, now
        peaks.longest_commit_gap_s = max(peaks.longest_commit_gap_s, now - last_commit)
        peaks.delta_s_backlog = max(peaks.delta_s_backlog, comparator.stage.backlog)
        peaks.delta_s_limit = max(peaks.delta_s_limit, comparator.stage.limit or 0)
        await asyncio.sleep(SAMPLE_S)


async def _paced(
    settings: Settings,
    kwargs: dict[str, Any],
    data: Sequence[Record],
    per_request: int,
    rate: float,
    produced: list[int],
) -> None:
    """Writes ``data`` at ``rate`` requests/s (each request with its results)."""
    t = settings.topics
    producer = AIOKafkaProducer(**kwargs, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = []
        started = time.monotonic()
        for k in range(0, len(data), per_request):
            due = started + (k // per_request) / rate
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            for is_req, key, value in data[k : k + per_request]:
                topic = t.requests_topic if is_req else t.shadow_results_topic
                futures.append(await producer.send(topic, value, key=key))
            produced[0] += per_request
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _comparison_keys(value: bytes | None) -> list[tuple[str, str, str]]:
    data = orjson.loads(value or b"{}")
    return [(data["req_hash"], data["candidate"], data["outcome"])]


async def burst_row(reference_pairs_s: float, seconds: float) -> BenchResult:
    """``BURST_FACTOR`` × ``reference_pairs_s`` for ``seconds`` into a running comparator."""
    per_request = 1 + len(DS_CANDIDATES)
    rate = BURST_FACTOR * reference_pairs_s / len(DS_CANDIDATES)  # requests/s
    requests = max(10, math.ceil(rate * seconds))
    mix = answer_mix(requests, seed=21)
    data = records(mix, "burst")
    settings = fresh_settings("dsburst")
    kwargs = kafka_kwargs(settings)
    await ensure_topics(settings.topics, kwargs)
    embedder, counter = counted_embedder(settings)
    warm_up(counter.inner)  # before the RSS baseline: what grows after it is the burst's
    comparator = Comparator(settings, embedder, kwargs)
    task = asyncio.create_task(comparator.run())
    peaks, produced, stop = Peaks(), [0], asyncio.Event()
    sampler: asyncio.Task[None] | None = None
    try:
        try:
            await comparator.assigned.wait()
            tracemalloc.start()  # from here: what the burst adds to the Python heap
            sampler = asyncio.create_task(_sample(comparator, produced, peaks, stop))
            started = time.monotonic()
            await _paced(settings, kwargs, data, per_request, rate, produced)
            arrived = time.monotonic() - started
            await wait_emitted(comparator, mix.pairs, 120 + mix.pairs)
            drained = time.monotonic() - started
            traced_peak = tracemalloc.get_traced_memory()[1]
        finally:
            stop.set()
            tracemalloc.stop()
            comparator.stop()
            await task
            if sampler is not None:
                await sampler
        found = await read_since(
            kwargs, settings.topics.compare_topic, range(settings.topics.partitions), 0, _comparison_keys
        )
    finally:
        await delete_topics(kwargs, topics_of(settings))
    emitted = [key for entries in found.values() for key, _ts in entries]
    joined = {(h, c) for h, c, outcome in emitted if outcome == "joined"}
    bound = settings.compare.max_pending
    lost = mix.pairs - len(joined)
    evicted = comparator.join.stats.evicted
    passed = (
        peaks.pending <= bound
        and evicted == 0
        and lost == 0
        and len(emitted) == mix.pairs
        and peaks.delta_s_backlog <= peaks.delta_s_limit  # within the highest bound it had
    )
    return BenchResult(
        name="compare.delta_s.burst_10x",
        unit="pending records",
        baseline_name="max_pending",
        baseline=bound,
        variant_name="peak_pending",
        variant=peaks.pending,
        ratio=peaks.pending / bound,
        target="≤ max_pending, no pair lost",
        passed=passed,
        higher_is_better=False,
        extra={
            "reference_pairs_per_s": round(reference_pairs_s, 1),
            "arrival_pairs_per_s": round(mix.pairs / arrived, 1),
            "arrival_s": round(arrived, 2),
            "drained_after_s": round(drained, 2),
            "pairs": mix.pairs,
            "comparisons_read_back": len(emitted),
            "joined_read_back": len(joined),
            "lost_pairs": lost,
            "evicted": evicted,
            "peak_backlog_records_in_kafka": peaks.backlog,
            "peak_native_join_bytes": peaks.native_bytes,
            "peak_python_heap_growth_bytes": traced_peak,
            "peak_rss_growth_bytes": peaks.rss_growth,
            "longest_emit_gap_s": round(peaks.longest_emit_gap_s, 2),
            "longest_commit_gap_s": round(peaks.longest_commit_gap_s, 2),
            "peak_delta_s_backlog_pairs": peaks.delta_s_backlog,
            "peak_delta_s_backlog_limit": peaks.delta_s_limit,
            "delta_s_backlog_limit_at_end": comparator.stage.limit,
            "delta_s_pairs_per_s_measured": round(comparator.stage.pairs_per_s or 0.0, 1),
            "intake_paused": {k: round(v, 2) for k, v in comparator.stage.counters().items()},
            "texts_computed": counter.computed,
            "embed_calls": len(counter.calls),
            "largest_embed_call": max((len(c) for c in counter.calls), default=0),
        },
    )
