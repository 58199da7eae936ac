"""The demo's window digest: every summary partial merged per candidate, plus the drift alerts, and
the headline of a candidate's digest that the demo's summary prints."""

from __future__ import annotations

import time
from typing import Any

from shadowlane.contracts.codec import DecodeError, decode
from shadowlane.contracts.drift_alert import DriftAlert
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.kafka.range_read import read_range
from shadowlane.settings import Settings
from shadowlane.windows.accumulator import merge_summaries


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def digest(s: WindowSummary) -> dict[str, Any]:
    """The figures an operator reads first, from one (merged) summary."""
    return {
        "count": s.count,
        "joined": s.joined,
        "late": s.late,
        "delta_s_mean": _r(s.delta_s_mean),
        "delta_s_median": _r(s.delta_s_median),
        "delta_s_p95": _r(s.delta_s_p95),
        "noise_floor_median": _r(s.delta_s_floor_median),
        "noise_floor_p95": _r(s.delta_s_floor_p95),
        "delta_s_excess_median": _r(s.delta_s_excess_median),
        "delta_s_excess_p95": _r(s.delta_s_excess_p95),
        "delta_s_gold_median": _r(s.delta_s_gold_median),
        "lambda_sampled": s.lambda_sampled,
        "lambda_divergent": s.lambda_divergent,
        "lambda_flip_rate": _r(s.lambda_flip_rate),
        "coverage_mean": _r(s.coverage_mean),
        "retrieval": {  # ΔS(question, retrieved) per arm, overlap and coverage of the retrieved ids
            "count": s.retrieval_count,
            "delta_s_median": _r(s.retrieval_delta_s_median),
            "delta_s_p95": _r(s.retrieval_delta_s_p95),
            "prod_delta_s_median": _r(s.prod_retrieval_delta_s_median),
            "prod_delta_s_p95": _r(s.prod_retrieval_delta_s_p95),
            "overlap_mean": _r(s.retrieval_overlap_mean),
            "coverage_mean": _r(s.retrieval_coverage_mean),
        },
        "tool_success_rate": _r(s.tool_success_rate),
        "tool_matched_prod": s.tool_matched_prod,
        "agent_compared": s.agent_compared,
        "agent_diverged": s.agent_diverged,
        "solved_rate": {
            "prod": _r(s.prod_solved / s.graded if s.graded else None),
            "shadow": _r(s.shadow_solved / s.graded if s.graded else None),
        },
        "cost_per_solved_usd": {
            "prod": _r(s.prod_cost_per_solved_usd, 9),
            "shadow": _r(s.shadow_cost_per_solved_usd, 9),
        },
        "cost_uplift": _r(s.cost_uplift),
        "shadow_error_rate": _r(s.shadow_error_rate),
        "latency_ms": {
            "prod": s.latency_prod.model_dump(exclude={"count"}),
            "shadow": s.latency_shadow.model_dump(exclude={"count"}),
        },
        "latency_p95_uplift": _r(s.latency_p95_uplift),
    }


async def window_report(settings: Settings, kwargs: dict[str, Any]) -> dict[str, Any]:
    t = settings.topics
    summaries: list[WindowSummary] = []
    alerts: list[DriftAlert] = []
    now = time.time_ns() // 1_000_000
    async for batches in read_range(kwargs, [t.summary_topic, t.alerts_topic], 0, now + 60_000):
        for tp, records in batches.items():
            for record in records:
                try:
                    if tp.topic == t.summary_topic:
                        summaries.append(decode(record.value, WindowSummary))
                    else:
                        alerts.append(decode(record.value, DriftAlert))
                except DecodeError:
                    continue
    per_candidate: dict[str, Any] = {}
    for candidate in sorted({s.candidate for s in summaries}):
        parts = [s for s in summaries if s.candidate == candidate]
        merged = merge_summaries(parts)
        per_candidate[candidate] = {"partials": len(parts), **digest(merged)}
    return {
        "candidates": per_candidate,
        "alerts": [
            {"candidate": a.candidate, "metric": a.metric, "value": round(a.value, 4)} for a in alerts
        ],
    }


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms"


def _num(value: float | None, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


def headline(d: dict[str, Any]) -> tuple[str, str]:
    """A candidate's digest in two short lines: its drift from prod and above the noise floor;
    its solved rate, errors and p95 latency against prod's."""
    solved, latency = d["solved_rate"], d["latency_ms"]
    drift = (
        f"ΔS median {_num(d['delta_s_median'])} (noise floor {_num(d['noise_floor_median'])}, "
        f"p95 above it {_num(d['delta_s_excess_p95'])})"
    )
    outcome = (
        f"solved {_num(solved['shadow'], '.1%')} vs prod {_num(solved['prod'], '.1%')} · errors "
        f"{_num(d['shadow_error_rate'], '.1%')} · p95 {_ms(latency['shadow'].get('p95_ms'))} vs prod "
        f"{_ms(latency['prod'].get('p95_ms'))}"
    )
    return drift, outcome
