"""Window summaries count retrieval drift: ΔS(question, retrieved) per arm (median, p95), overlap
and coverage; they merge exactly, and records written before them still decode and merge."""

from __future__ import annotations

from typing import Any

import pytest

from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.windows.accumulator import Accumulator, merge_summaries

KEY = ("cand", "/v1/chat", "t1")


def _comparison(i: int, **fields: Any) -> Comparison:
    return Comparison(
        comparison_id=f"c{i}",
        req_hash=f"{i:032x}",
        candidate="cand",
        ts_ms=i,
        endpoint="/v1/chat",
        tenant="t1",
        complete=True,
        outcome="joined",
        prod_status="200",
        shadow_status="ok",
        **fields,
    )


def _rag(i: int) -> Comparison:
    return _comparison(
        i,
        prod_retrieval_delta_s=0.2,
        retrieval_delta_s=0.1 if i % 10 else 0.8,  # every tenth request retrieved off topic
        retrieval_paraphrases=2,
        retrieval_overlap=0.5,
        retrieval_coverage=1.0 if i % 2 else 0.5,
        retrieval_coverage_target="gold",
    )


def _summary(comparisons: list[Comparison]) -> WindowSummary:
    acc = Accumulator(0, 60_000, KEY)
    acc.add_many(comparisons)
    return acc.summary()


def test_retrieval_figures_are_counted() -> None:
    s = _summary([_rag(i) for i in range(100)] + [_comparison(100 + i) for i in range(20)])
    assert (s.retrieval_count, s.prod_retrieval_count) == (100, 100)
    # HdrHistogram: exact to 0.1 % of the value
    assert s.retrieval_delta_s_median == pytest.approx(0.1, rel=1e-3)
    assert s.retrieval_delta_s_p95 == pytest.approx(0.8, rel=1e-3)  # the off-topic tenth
    assert s.prod_retrieval_delta_s_p95 == pytest.approx(0.2, rel=1e-3)
    assert (s.retrieval_overlap_count, s.retrieval_overlap_mean) == (100, 0.5)
    assert (s.retrieval_coverage_count, s.retrieval_coverage_mean) == (100, 0.75)
    assert s.retrieval_coverage_sq_sum == 50 * 1.0 + 50 * 0.25


def test_ids_only_retrieval_counts_overlap_and_coverage_without_delta_s() -> None:
    c = _comparison(
        1,
        retrieval_paraphrases=0,
        retrieval_overlap=1.0,
        retrieval_coverage=1.0,
        retrieval_coverage_target="gold",
    )
    s = _summary([c])
    assert (s.retrieval_count, s.retrieval_overlap_count, s.retrieval_coverage_count) == (0, 1, 1)
    assert s.retrieval_delta_s_p95 is None


def test_coverage_of_prods_own_ids_is_not_the_windows_coverage() -> None:
    """The window (and the gate) read coverage of the expected section, the gold cited ids; a
    retriever whose ids differ from prod's is not worse for that (overlap reports the likeness)."""
    prod_target = _comparison(
        1,
        retrieval_paraphrases=0,
        retrieval_overlap=0.0,
        retrieval_coverage=0.0,
        retrieval_coverage_target="prod",
    )
    gold = _comparison(
        2,
        retrieval_paraphrases=0,
        retrieval_overlap=0.0,
        retrieval_coverage=1.0,
        retrieval_coverage_target="gold",
    )
    s = _summary([prod_target, gold])
    assert (s.retrieval_coverage_count, s.retrieval_coverage_mean) == (1, 1.0)
    assert (s.retrieval_overlap_count, s.retrieval_overlap_mean) == (2, 0.0)
    assert _summary([prod_target]).retrieval_coverage_mean is None


def test_summaries_merge_into_the_summary_of_the_union() -> None:
    comps = [_rag(i) for i in range(60)]
    merged = merge_summaries([_summary(comps[:25]), _summary(comps[25:])])
    whole = _summary(comps)
    for name in (
        "retrieval_count",
        "retrieval_delta_s_median",
        "retrieval_delta_s_p95",
        "prod_retrieval_delta_s_p95",
        "retrieval_overlap_mean",
        "retrieval_coverage_mean",
        "retrieval_coverage_sq_sum",
    ):
        assert getattr(merged, name) == getattr(whole, name), name


def test_a_summary_written_before_retrieval_drift_decodes_and_merges() -> None:
    new = _summary([_rag(i) for i in range(10)])
    old = WindowSummary.model_validate(_summary([_comparison(i) for i in range(5)]).model_dump(mode="json"))
    legacy = WindowSummary.model_validate(
        {k: v for k, v in old.model_dump(mode="json").items() if "retrieval" not in k}
    )
    assert legacy.hist_retrieval_delta_s_e4 == ""
    assert legacy.retrieval_count == 0
    merged = merge_summaries([legacy, new])
    assert merged.retrieval_count == 10
    assert merged.retrieval_delta_s_median == new.retrieval_delta_s_median
    assert merged.count == 15
