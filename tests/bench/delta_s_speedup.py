"""ΔS-on pairs/s per comparator process against the configuration of the issue that asked for 20×.

Every configuration runs the real comparator end to end through Kafka
(:func:`tests.bench.delta_s_comparator.comparator_round`), in this run, on data of the same
distribution (:func:`tests.bench.payloads.answer_mix`: 20-400 token answers, 20 % identical, prod's
answer shared by 3 results). Each configuration gets as many requests as it handles in about
``seconds`` (a pilot embed, :func:`~tests.bench.delta_s_comparator.sized`), so a faster
one gets more data, not a shorter clock; the rounds alternate between configurations.

- ``before``: MiniLM without the embedding cache, the configuration when ΔS was bound by the
  embedder (the baseline);
- ``static``: the opt-in static embedder distilled from MiniLM (``compare.embedder=static``).

The default (MiniLM with the cache) is ``compare.delta_s.e2e``'s comparator: it runs at the
embedder's own speed, so the cache costs nothing measurable; with no answer repeated across
requests in this mix it finds nothing to save either, and a row of it against ``before`` would
only show the noise of MiniLM rounds (±20 % on this machine).

Rows ``compare.delta_s.speedup.<config>``: its median pairs/s over ``before``'s.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Final

from shadowlane.kafka.admin import ensure_topics
from shadowlane.settings import Settings
from tests.bench.common import BenchResult, at_least, delete_topics, kafka_kwargs
from tests.bench.delta_s_comparator import (
    comparator_round,
    fresh_settings,
    model_alone,
    produce,
    records,
    sized,
    topics_of,
    warm_up,
)
from tests.bench.payloads import answer_mix

TARGETS: Final = {"static": 20.0}
CONFIGS: Final[dict[str, dict[str, Any]]] = {
    "before": {"embedder": "minilm", "embed_cache_entries": 0},
    "static": {"embedder": "static"},
}


@dataclass
class Config:
    name: str
    settings: Settings
    requests: int
    pairs: int
    rates: list[float] = field(default_factory=list)
    cache: dict[str, int] = field(default_factory=dict)
    committed_to_end: bool = True


def _configured(name: str) -> Settings:
    settings = fresh_settings(f"up-{name}")
    compare = settings.compare.model_copy(update=CONFIGS[name])
    return settings.model_copy(update={"compare": compare})


async def speedup_rows(seconds: float, least: int, rounds: int) -> list[BenchResult]:
    configs: list[Config] = []
    for name in CONFIGS:
        settings = _configured(name)
        model = model_alone(settings)
        warm_up(model)
        requests = sized(model, seconds, least)
        mix = answer_mix(requests, seed=21)
        configs.append(Config(name, settings, requests, mix.pairs))
        kwargs = kafka_kwargs(settings)
        await ensure_topics(settings.topics, kwargs)
        await produce(settings, kwargs, records(mix, f"up{name}"))
    try:
        for _ in range(rounds):
            for config in configs:
                done = await comparator_round(config.settings, kafka_kwargs(config.settings), config.pairs)
                config.rates.append(done.pairs_per_s)
                config.cache = done.cache
                config.committed_to_end &= done.committed_to_end
    finally:
        for config in configs:
            await delete_topics(kafka_kwargs(config.settings), topics_of(config.settings))
    before = configs[0]
    base = statistics.median(before.rates)
    rows = []
    for config in configs[1:]:
        rate = statistics.median(config.rates)
        extra = {
            "configuration": CONFIGS[config.name],
            "baseline_configuration": CONFIGS[before.name],
            "requests": {before.name: before.requests, config.name: config.requests},
            "pairs": {before.name: before.pairs, config.name: config.pairs},
            "embed_cache": config.cache or "off",
            "committed_to_end": before.committed_to_end and config.committed_to_end,
            "rounds": rounds,
            "samples": {
                before.name: [round(r, 1) for r in before.rates],
                config.name: [round(r, 1) for r in config.rates],
            },
        }
        want = TARGETS[config.name]
        target = f"≥ {want:g}× of {before.name}" + (" (opt-in)" if config.name == "static" else "")
        rows.append(
            at_least(
                f"compare.delta_s.speedup.{config.name}",
                "pairs/s",
                (before.name, base),
                (config.name, rate),
                want,
                extra,
                target,
                digits=1,
            )
        )
    return rows
