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
- ``compare.delta_s.speedup.static``: pairs/s of the static embedder against MiniLM without the
  cache, each from its own topics of the same mix (:mod:`tests.bench.delta_s_speedup`).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from shadowlane.compare.embedder import Embedder
from shadowlane.gc_tuning import tune_for_workers
from shadowlane.kafka.admin import ensure_topics
from shadowlane.malloc_tuning import tune_allocator
from tests.bench.common import BenchResult, at_least, delete_topics, kafka_kwargs
from tests.bench.delta_s_burst import burst_row
from tests.bench.delta_s_comparator import (
    Round,
    comparator_round,
    fresh_settings,
    model_alone,
    produce,
    records,
    sized,
    topics_of,
    warm_up,
)
from tests.bench.delta_s_speedup import speedup_rows
from tests.bench.payloads import DS_CANDIDATES, answer_mix

CEILING_TARGET: Final = 0.80


async def embedder_alone(model: Embedder, calls: Sequence[list[str]]) -> float:
    """Embeddings/s of ``model`` over ``calls``, each in a worker thread as the comparator runs it."""
    started = time.perf_counter()
    for texts in calls:
        await asyncio.to_thread(model.embed, texts)
    return sum(len(c) for c in calls) / (time.perf_counter() - started)


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
    rows.extend(await speedup_rows(4.0, 20, 1) if quick else await speedup_rows(15.0, 90, 3))
    return rows
