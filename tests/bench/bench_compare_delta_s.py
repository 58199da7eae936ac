"""The comparator as users run it, ΔS on: pairs/s end to end through Kafka, against the embedder alone.

Data (:func:`tests.bench.payloads.answer_mix`): per request, prod's answer and one result for each
of two candidates and the baseline (3 pairs sharing prod's answer), every answer prose of a length
drawn from ``data/answer_lengths.json`` (20-400 MiniLM tokens), 20 % of the results identical to
prod's (those pairs score 0 without the embedder), no answer repeated across requests. Sized from a
pilot embed so that a comparator round lasts about 15 s (quick: 4 s), with a floor.

Rows (the comparator: :mod:`tests.bench.delta_s_comparator`):

- ``compare.delta_s.e2e``: the requests and shadow-results topics prefilled (each request, then
  its 3 results); a comparator from a fresh group and a warmed-up model with a cold cache, until
  every comparison is committed (exactly-once, the default); the group's offsets are then checked
  to be at the topics' ends. Against the ceiling the embedder alone sets: its embeddings/s times
  the pairs per distinct text to embed.
- ``compare.delta_s.embedder``: the embeddings the comparator's model computed per second (beneath
  the cache), against the model alone (a second instance) fed the same texts in the same calls,
  each in a worker thread as the comparator runs them. The two alternate, the comparator first in
  each round (its calls are what the embedder alone replays next).
- ``compare.delta_s.burst_10x``: the join buffer under arrival at 10× the ΔS-on rate just
  measured (:mod:`tests.bench.delta_s_burst`).
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition

from shadowlane.compare.embed_cache import CachingEmbedder
from shadowlane.compare.embedder import Embedder
from shadowlane.compare.worker import Comparator
from shadowlane.gc_tuning import tune_for_workers
from shadowlane.kafka.admin import ensure_topics
from shadowlane.malloc_tuning import tune_allocator
from shadowlane.settings import Settings
from tests.bench.common import BenchResult, at_least, delete_topics, kafka_kwargs
from tests.bench.delta_s_burst import burst_row
from tests.bench.delta_s_comparator import (
    CountingEmbedder,
    counted_embedder,
    fresh_group,
    fresh_settings,
    model_alone,
    pilot_mix,
    produce,
    records,
    topics_of,
    wait_emitted,
    warm_up,
)
from tests.bench.payloads import DS_CANDIDATES, answer_mix

CEILING_TARGET: Final = 0.80
MAX_REQUESTS: Final = 20_000


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


async def embedder_alone(model: Embedder, calls: Sequence[list[str]]) -> float:
    """Embeddings/s of ``model`` over ``calls``, each in a worker thread as the comparator runs it."""
    started = time.perf_counter()
    for texts in calls:
        await asyncio.to_thread(model.embed, texts)
    return sum(len(c) for c in calls) / (time.perf_counter() - started)


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


async def e2e_rows(seconds: float, least: int, rounds: int) -> tuple[list[BenchResult], float]:
    """The two ΔS-on rows, and the comparator's median pairs/s (the burst's reference rate)."""
    settings = fresh_settings("ds")
    model = model_alone(settings)
    warm_up(model)
    requests = sized(model, seconds, least)
    mix = answer_mix(requests, seed=20)
    needed = len(mix.texts_to_embed())
    kwargs = kafka_kwargs(settings)
    await ensure_topics(settings.topics, kwargs)
    runs: list[Round] = []
    alone: list[float] = []
    try:
        await produce(settings, kwargs, records(mix, "ds"))
        for _ in range(rounds):
            runs.append(await comparator_round(settings, kwargs, mix.pairs))
            alone.append(await embedder_alone(model, runs[-1].counter.calls))
    finally:
        await delete_topics(kwargs, topics_of(settings))
    pairs_s = statistics.median(r.pairs_per_s for r in runs)
    computed_s = statistics.median(r.computed_per_s for r in runs)
    alone_s = statistics.median(alone)
    ceiling = alone_s * mix.pairs / needed
    last = runs[-1]
    texts = [t for call in last.counter.calls for t in call]
    extra: dict[str, Any] = {
        "embedder": model.name,
        "embed_cache": last.cache or "off",
        "requests": requests,
        "sized_for_s": seconds,
        "pairs": mix.pairs,
        "results_per_request": len(DS_CANDIDATES),
        "identical_share": mix.identical_share,
        "identical_pairs": mix.identical,
        "texts_needed": needed,
        "texts_computed": last.counter.computed,
        "distinct_computed": len(set(texts)),
        "embed_calls": len(last.counter.calls),
        "answer_tokens_p10_p50_p90": [int(q) for q in np.percentile(mix.lengths, [10, 50, 90])],
        "comparator_embeddings_per_s": round(computed_s, 1),
        "embedder_alone_embeddings_per_s": round(alone_s, 1),
        "committed_to_end": all(r.committed_to_end for r in runs),
        "rounds": rounds,
        "samples": {
            "comparator_pairs_per_s": [round(r.pairs_per_s, 1) for r in runs],
            "embedder_alone_emb_per_s": [round(x, 1) for x in alone],
        },
    }
    rows = [
        _rate_row(
            "compare.delta_s.e2e",
            "pairs/s",
            ("embedder_alone_ceiling", ceiling),
            ("comparator", pairs_s),
            extra,
        ),
        _rate_row(
            "compare.delta_s.embedder",
            "embeddings/s",
            ("embedder_alone", alone_s),
            ("comparator_computed", computed_s),
            {"pairs_per_s_ceiling": round(ceiling, 1), "texts_per_pair": round(needed / mix.pairs, 3)},
        ),
    ]
    return rows, pairs_s


def _rate_row(
    name: str, unit: str, baseline: tuple[str, float], variant: tuple[str, float], extra: dict[str, Any]
) -> BenchResult:
    """A higher-is-better row to one decimal (tens of pairs/s: whole numbers would hide the inputs)."""
    target = f"≥ {CEILING_TARGET:.2f}× of the embedder alone"
    return at_least(name, unit, baseline, variant, CEILING_TARGET, extra, target, digits=1)


async def run(quick: bool) -> list[BenchResult]:
    tune_for_workers()  # as `shadowlane compare` does
    tune_allocator()
    rows, pairs_s = await e2e_rows(4.0, 20, 1) if quick else await e2e_rows(15.0, 90, 3)
    rows.append(await burst_row(pairs_s, 1.0 if quick else 3.0))
    return rows
