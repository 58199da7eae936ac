"""The comparator as the ΔS benchmarks run it: the data, the settings, the counted embedder.

Shared by :mod:`tests.bench.bench_compare_delta_s` and :mod:`tests.bench.delta_s_burst`. The
comparator is the real :class:`~shadowlane.compare.worker.Comparator` with the embedder
``build_embedder`` builds from ``settings.compare``, as ``shadowlane compare`` does, and the
default settings but for a fresh consumer group, fresh topics and the candidates of
:data:`~tests.bench.payloads.DS_CANDIDATES`. A :class:`CountingEmbedder` sits on the model itself,
beneath the embedding cache when there is one, so what it counts is what was computed.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shadowlane.compare.embed_cache import CachingEmbedder
from shadowlane.compare.embedder import Embedder, build_embedder
from shadowlane.compare.worker import Comparator
from shadowlane.contracts.codec import encode
from shadowlane.settings import Settings
from tests.bench.common import bench_settings
from tests.bench.payloads import DS_CANDIDATES, AnswerMix, answer_mix
from tests.support.factories import envelope, result

MAX_REQUESTS: Final = 20_000
_ENV_CYCLE: Final = 64  # envelope(i) builds the demo's first i items: keep i small, vary the tag

Record = tuple[bool, bytes, bytes]  # (is a request, key, value)


def records(mix: AnswerMix, tag: str) -> list[Record]:
    """The mix as wire records: each request, then its results (co-partitioned by ``req_hash``)."""
    out: list[Record] = []
    for i, request in enumerate(mix.requests):
        env = envelope(i % _ENV_CYCLE, answer=request.prod, tag=f"{tag}{i // _ENV_CYCLE}")
        key = env.req_hash.encode()
        out.append((True, key, encode(env)))
        out.extend((False, key, encode(result(env, c, answer=a))) for c, a in request.results)
    return out


async def produce(settings: Settings, kwargs: dict[str, Any], data: Sequence[Record]) -> None:
    t = settings.topics
    producer = AIOKafkaProducer(**kwargs, acks="all", linger_ms=5, max_batch_size=262_144)
    await producer.start()
    try:
        futures = [
            await producer.send(t.requests_topic if is_req else t.shadow_results_topic, value, key=key)
            for is_req, key, value in data
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def fresh_settings(tag: str) -> Settings:
    """Fresh topics; the compare section as users run it but for its group and the candidates."""
    settings = bench_settings(tag)
    update = {"group_id": f"bench-ds-{uuid.uuid4().hex[:8]}", "candidates": DS_CANDIDATES}
    return settings.model_copy(update={"compare": settings.compare.model_copy(update=update)})


def fresh_group(settings: Settings) -> Settings:
    update = {"group_id": f"bench-ds-{uuid.uuid4().hex[:8]}"}
    return settings.model_copy(update={"compare": settings.compare.model_copy(update=update)})


class CountingEmbedder:
    """Passes ``embed`` through to the model and keeps each call's texts: what was computed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[list[str]] = []

    @property
    def computed(self) -> int:
        return sum(len(c) for c in self.calls)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(list(texts))
        return self.inner.embed(texts)


def counted_embedder(settings: Settings) -> tuple[Embedder, CountingEmbedder]:
    """``build_embedder(settings.compare, state_dir=...)`` as the CLI builds it, with a counter on
    the model itself: beneath the embedding cache when there is one, so cache hits are not counted."""
    built = build_embedder(settings.compare, state_dir=settings.state_dir)
    if built is None:
        raise RuntimeError("compare.embedder is 'none': this benchmark measures ΔS on")
    if isinstance(built, CachingEmbedder):
        counter = CountingEmbedder(built.inner)
        built.inner = counter
        return built, counter
    counter = CountingEmbedder(built)
    return counter, counter


def model_alone(settings: Settings) -> Embedder:
    """A second instance of the model the comparator computes with, no cache in front."""
    built = build_embedder(settings.compare, state_dir=settings.state_dir)
    if built is None:
        raise RuntimeError("compare.embedder is 'none': this benchmark measures ΔS on")
    return built.inner if isinstance(built, CachingEmbedder) else built


async def wait_emitted(comparator: Comparator, pairs: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while comparator.stats.emitted < pairs:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{comparator.stats.emitted} of {pairs} comparisons after {timeout_s:.0f}s")
        await asyncio.sleep(0.01)


def pilot_mix() -> AnswerMix:
    return answer_mix(12, seed=19)  # other answers than the measured ones, from the same histogram


def warm_up(model: Embedder) -> None:
    """A full batch of the longest pilot answers, twice: the session's first runs and its largest
    buffers happen here, not inside a measurement (a long-running comparator is warm). With
    onnxruntime the RSS grows ~0.3 GB on each of the first two runs, then stays flat."""
    longest = sorted(pilot_mix().texts_to_embed(), key=len)[-16:]
    for _ in range(2):
        model.embed(longest)


def topics_of(settings: Settings) -> list[str]:
    t = settings.topics
    return [
        t.requests_topic,
        t.shadow_results_topic,
        t.compare_topic,
        t.dlq_topic,
        t.summary_topic,
        t.alerts_topic,
        t.compare_state_topic,
    ]


@dataclass
class Round:
    pairs_per_s: float
    computed_per_s: float
    counter: CountingEmbedder
    cache: dict[str, int] = field(default_factory=dict)
    committed_to_end: bool = False


async def _committed_to_end(settings: Settings, kwargs: dict[str, Any]) -> bool:
    """Whether the comparator's group committed every input partition to its end offset."""
    t = settings.topics
    consumer = AIOKafkaConsumer(**kwargs, group_id=settings.compare.group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in (t.requests_topic, t.shadow_results_topic)
            for p in range(t.partitions)
        ]
        ends = await consumer.end_offsets(tps)
        committed = [await consumer.committed(tp) for tp in tps]
        return all(c == ends[tp] for c, tp in zip(committed, tps, strict=True))
    finally:
        await consumer.stop()


async def comparator_round(settings: Settings, kwargs: dict[str, Any], pairs: int) -> Round:
    """One comparator, from a fresh group (and a cold cache), through all the prefilled pairs."""
    s = fresh_group(settings)
    embedder, counter = counted_embedder(s)
    warm_up(counter.inner)  # beneath the counter and the cache: neither sees it
    comparator = Comparator(s, embedder, kwargs)
    task = asyncio.create_task(comparator.run())
    try:
        await comparator.assigned.wait()
        started = time.perf_counter()
        await wait_emitted(comparator, pairs, 120 + pairs)
        elapsed = time.perf_counter() - started
    finally:
        comparator.stop()
        await task
    cache = embedder.counters() if isinstance(embedder, CachingEmbedder) else {}
    done = await _committed_to_end(s, kwargs)
    return Round(pairs / elapsed, counter.computed / elapsed, counter, cache, done)


def sized(model: Embedder, seconds: float, least: int) -> int:
    """Requests for a comparator round of about ``seconds`` at the ceiling ``model`` sets here (a
    pilot embed of other answers of the same mix), so a faster embedder gets more data, not a
    shorter clock; at least ``least`` (a pilot on a loaded machine must not shrink the run)."""
    pilot = pilot_mix()
    texts = pilot.texts_to_embed()
    started = time.perf_counter()
    model.embed(texts)
    pairs_per_s = len(texts) / (time.perf_counter() - started) * pilot.pairs / len(texts)
    return max(least, min(MAX_REQUESTS, math.ceil(seconds * pairs_per_s / len(DS_CANDIDATES))))
