"""Issue #4 on the real broker: noise floor, λ, windows, alerts, late records and rescore.

Prod's model phrases its answers at random. Four shadow groups replay the same requests:
``baseline`` (prod's model again: the noise floor), ``same`` (an identical model under another
name), ``drifted`` (other content) and ``flaky`` (fine, except that seeds other than 1 make it
go off topic). The comparator embeds with the real MiniLM model.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from statistics import median
from typing import Any

import pytest

from shadowlane.compare.embedder import build_embedder
from shadowlane.compare.rescore import live_comparisons, rescore, verify
from shadowlane.compare.worker import Comparator
from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.drift_alert import DriftAlert
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.settings import Settings
from shadowlane.shadow.candidates import CallableCandidate
from shadowlane.shadow.worker import ShadowWorker
from shadowlane.windows import histograms as h
from shadowlane.windows.accumulator import merge_summaries
from tests.support import candidates as models
from tests.support.factories import envelope, result
from tests.support.kafka_io import produce, read_topic

pytestmark = pytest.mark.integration

N = 40
MODELS: dict[str, Callable[[dict[str, Any]], str]] = {
    "baseline": models.prod_like("baseline"),
    "same": models.prod_like("same"),
    "drifted": models.drifted,
    "flaky": models.seed_sensitive("flaky"),
}


def _settings(base: Settings) -> Settings:
    return base.model_copy(
        update={
            "shadow": base.shadow.model_copy(update={"lambda_ratio": 1.0, "lambda_seeds": 2}),
            "compare": base.compare.model_copy(
                update={
                    "candidates": tuple(MODELS),
                    "embedder": "minilm",
                    "window_s": 20.0,
                    "summary_window_s": 3600.0,  # one window: closed by the shutdown flush
                    "alert_min_samples": 10,
                }
            ),
        }
    )


async def _run_pipeline(settings: Settings, kwargs: dict[str, Any]) -> list[Comparison]:
    rng = random.Random(5)
    envs = []
    for i in range(N):
        env = envelope(i, tag="floor")
        body = {"messages": [m.model_dump(mode="json") for m in env.request.messages]}
        prod_answer = rng.choice(models.PHRASINGS).format(models.correct_of(models._sentence(body)))
        envs.append(env.model_copy(update={"prod": env.prod.model_copy(update={"answer": prod_answer})}))
    await produce(kwargs, settings.topics.requests_topic, [(e.req_hash.encode(), encode(e)) for e in envs])
    workers = []
    for name, fn in MODELS.items():
        s = settings.model_copy(update={"shadow": settings.shadow.model_copy(update={"candidate": name})})
        workers.append(ShadowWorker(s, CallableCandidate(name, fn), kwargs))
    comparator = Comparator(settings, build_embedder(settings.compare), kwargs)
    tasks = [asyncio.create_task(w.run()) for w in workers] + [asyncio.create_task(comparator.run())]
    try:
        records = await read_topic(kwargs, settings.topics.compare_topic, want=N * len(MODELS), timeout_s=150)
    finally:
        for w in workers:
            w.stop()
        comparator.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    assert all(w.stats.lambda_replays == 2 * N for w in workers)
    return [decode(r.value, Comparison) for r in records]


def _by(comps: list[Comparison], candidate: str) -> list[Comparison]:
    return [c for c in comps if c.candidate == candidate]


def _median(values: list[float | None]) -> float:
    return median(v for v in values if v is not None)


@pytest.mark.timeout(300)
async def test_noise_floor_lambda_windows_alerts_and_rescore(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    settings = _settings(it_settings)
    comps = await _run_pipeline(settings, kafka_kwargs)
    assert len(comps) == N * len(MODELS)
    assert all(c.outcome == "joined" for c in comps)

    # noise floor: the baseline's drift is the floor; the identical model sits on it, the drifted
    # one far above it
    floor = _median([c.delta_s for c in _by(comps, "baseline")])
    same, drifted = _by(comps, "same"), _by(comps, "drifted")
    assert all(c.traffic_arm == "baseline" and c.delta_s_floor is None for c in _by(comps, "baseline"))
    assert all(c.delta_s_floor is not None for c in same + drifted)
    assert 0.0 < floor < 0.3  # prod's own phrasing noise is not zero
    assert abs(_median([c.delta_s for c in same]) - floor) < 0.1
    assert abs(_median([c.delta_s_excess for c in same])) < 0.05
    assert _median([c.delta_s_excess for c in drifted]) > 0.3

    # λ: two seeded replays each; the baseline converges, the seed-sensitive candidate flips
    assert all(c.lambda_samples == 2 for c in comps)
    assert all(c.lambda_state == "convergent" for c in _by(comps, "baseline"))
    flaky = _by(comps, "flaky")
    assert all(c.lambda_state == "divergent" and c.lambda_flip for c in flaky)
    assert not any(c.lambda_flip for c in same)

    # windows: one summary per candidate (flushed at shutdown), alerts for drift and λ flips
    t = settings.topics
    summaries = [
        decode(r.value, WindowSummary)
        for r in await read_topic(kafka_kwargs, t.summary_topic, want=len(MODELS), timeout_s=30)
    ]
    by_candidate = {c: merge_summaries([s for s in summaries if s.candidate == c]) for c in MODELS}
    assert all(s.count == N for s in by_candidate.values())
    assert by_candidate["flaky"].lambda_flip_rate == 1.0
    assert by_candidate["same"].lambda_flip_rate == 0.0
    excess_same, excess_drifted = (by_candidate[c].delta_s_excess_median for c in ("same", "drifted"))
    assert excess_same is not None
    assert excess_drifted is not None
    assert abs(excess_same) < 0.05 < 0.3 < excess_drifted
    merged = h.decode(by_candidate["drifted"].hist_latency_shadow_us)
    single = h.latency_histogram()
    for c in drifted:
        assert c.shadow_latency_ms is not None
        h.record_latency(single, c.shadow_latency_ms)
    for pct in (50, 90, 95, 99, 99.9):
        assert merged.get_value_at_percentile(pct) == single.get_value_at_percentile(pct)
    alerts = [
        decode(r.value, DriftAlert)
        for r in await read_topic(kafka_kwargs, t.alerts_topic, want=2, timeout_s=30)
    ]
    assert {(a.candidate, a.metric) for a in alerts} >= {
        ("drifted", "delta_s_mean"),
        ("flaky", "lambda_flip_rate"),
    }
    assert not any(a.candidate == "same" for a in alerts)

    # rescore: the same records and config give the same comparisons, byte for byte
    start = min(c.ts_ms for c in comps)
    end = max(c.ts_ms for c in comps) + 1
    rescored = await rescore(settings, kafka_kwargs, build_embedder(settings.compare), start, end)
    assert len(rescored.comparisons) == len(comps)
    report = verify(rescored.comparisons, await live_comparisons(settings, kafka_kwargs, start, end))
    assert report.ok, report.as_dict()
    assert report.identical == len(comps)
    # ... and a changed metric config changes what it should, nothing else
    strict = settings.model_copy(
        update={"compare": settings.compare.model_copy(update={"lambda_threshold": 0.0})}
    )
    changed = await rescore(strict, kafka_kwargs, build_embedder(strict.compare), start, end)
    assert any(c.lambda_state == "divergent" for c in _by(changed.comparisons, "baseline"))


async def test_late_records_are_counted_and_reported(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    settings = it_settings.model_copy(
        update={
            "compare": it_settings.compare.model_copy(
                update={"window_s": 1.0, "summary_window_s": 1.0, "summary_grace_s": 0.0}
            )
        }
    )
    t = settings.topics
    first = envelope(0, tag="late")
    comparator = Comparator(settings, None, kafka_kwargs)
    task = asyncio.create_task(comparator.run())
    try:
        await produce(kafka_kwargs, t.requests_topic, [(first.req_hash.encode(), encode(first))])
        await produce(
            kafka_kwargs, t.shadow_results_topic, [(first.req_hash.encode(), encode(result(first)))]
        )
        await read_topic(kafka_kwargs, t.summary_topic, want=1, timeout_s=30)  # its window closed
        late = envelope(1, tag="late").model_copy(update={"ts_ms": first.ts_ms})
        fresh = envelope(2, tag="late").model_copy(update={"ts_ms": time.time_ns() // 1_000_000})
        await produce(
            kafka_kwargs, t.requests_topic, [(e.req_hash.encode(), encode(e)) for e in (late, fresh)]
        )
        await produce(
            kafka_kwargs,
            t.shadow_results_topic,
            [(e.req_hash.encode(), encode(result(e))) for e in (late, fresh)],
        )
        compared = await read_topic(kafka_kwargs, t.compare_topic, want=3, timeout_s=30)
    finally:
        comparator.stop()
        await asyncio.wait_for(task, 30)
    assert len(compared) == 3  # the late pair's comparison is not lost ...
    assert comparator.stats.late == 1  # ... and it is counted as late for its window
    summaries = [
        decode(r.value, WindowSummary) for r in await read_topic(kafka_kwargs, t.summary_topic, want=2)
    ]
    assert sum(s.count for s in summaries) == 2
    assert sum(s.late for s in summaries) == 1
