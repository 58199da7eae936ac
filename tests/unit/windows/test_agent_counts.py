"""Window summaries count judged agent runs and those that diverged, and merge the counts."""

from __future__ import annotations

from typing import Any

from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.windows.accumulator import Accumulator, merge_summaries

KEY = ("cand", "/v1/chat", "t1")


def _comparison(i: int, **fields: Any) -> Comparison:
    return Comparison(
        **{
            "comparison_id": f"c{i}",
            "req_hash": f"{i:032x}",
            "candidate": "cand",
            "ts_ms": i,
            "endpoint": "/v1/chat",
            "tenant": "t1",
            "complete": True,
            "outcome": "joined",
            "prod_status": "200",
            "shadow_status": "ok",
            **fields,
        }
    )


def _summary(comparisons: list[Comparison]) -> WindowSummary:
    acc = Accumulator(0, 60_000, KEY)
    acc.add_many(comparisons)
    return acc.summary()


AGREED = {"prod_steps": 3, "shadow_steps": 3, "exact_match": False}
DIVERGED = {**AGREED, "first_divergent_step": 2, "divergence_kind": "tool_args", "divergence_tool": "t"}


def test_judged_agent_runs_and_their_divergences_are_counted() -> None:
    comparisons = [
        _comparison(0, **AGREED),
        _comparison(1, **DIVERGED),
        _comparison(2, **DIVERGED),
        _comparison(3),  # no tools on either side: not an agent run
        _comparison(4, **AGREED, shadow_status="error:timeout"),  # unfinished: not judged
        _comparison(5, prod_steps=0, shadow_steps=1, first_divergent_step=1, divergence_kind="extra_step"),
        _comparison(6, prod_steps=3, shadow_steps=3),  # steps agree, an answer missing: not judged
    ]
    s = _summary(comparisons)
    assert (s.agent_compared, s.agent_diverged) == (4, 3)
    assert s.agent_divergence_rate == 0.75
    assert decode(encode(s), WindowSummary) == s


def test_no_agent_runs_leave_the_rate_unset() -> None:
    s = _summary([_comparison(0)])
    assert (s.agent_compared, s.agent_diverged, s.agent_divergence_rate) == (0, 0, None)


def test_merged_summaries_add_the_counts() -> None:
    a = _summary([_comparison(0, **AGREED), _comparison(1, **DIVERGED)])
    b = _summary([_comparison(2, **DIVERGED)])
    merged = merge_summaries([a, b])
    assert (merged.agent_compared, merged.agent_diverged) == (3, 2)
    assert merged.agent_divergence_rate == 2 / 3
