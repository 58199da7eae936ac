"""The report's retrieval drift rows (``shadowlane.report.retrieval``) and their markdown."""

from __future__ import annotations

import numpy as np
import pytest

from shadowlane.report.render_md import render_markdown
from shadowlane.report.retrieval import retrieval_drift
from tests.support.report_rows import report, shadow_rows, srow


def test_rows_per_arm_read_the_comparisons_figures() -> None:
    cand = [
        srow(
            i,
            prod_retrieval_delta_s=0.2,
            retrieval_delta_s=0.8 if i < 3 else 0.3,
            retrieval_paraphrases=2,
            retrieval_overlap=0.5,
            retrieval_coverage=1.0 if i % 2 else 0.5,
            retrieval_coverage_target="gold",
        )
        for i in range(20)
    ]
    floor = [
        srow(100 + i, candidate="baseline", retrieval_delta_s=0.25, retrieval_paraphrases=0) for i in range(5)
    ]
    drift = retrieval_drift(cand, floor, max_examples=2)
    assert drift is not None
    assert (drift.delta_s_max, drift.coverage_min) == (0.45, 0.70)
    prod, candidate, baseline = drift.arms
    assert (prod.arm, prod.n, prod.median, prod.overlap, prod.coverage) == ("prod", 20, 0.2, None, None)
    assert (candidate.n, candidate.median, candidate.beyond) == (20, 0.3, 3 / 20)
    assert candidate.p95 == float(
        np.quantile([r.retrieval_delta_s for r in cand], 0.95, method="inverted_cdf")
    )
    assert (candidate.overlap, candidate.coverage, candidate.paraphrases) == (0.5, 0.75, 40)
    assert (baseline.arm, baseline.n, baseline.median) == ("baseline replay", 5, 0.25)
    assert [e.req_id for e in drift.worst] == ["r-0", "r-1"]  # the highest ΔS first


def test_without_retrieval_there_is_no_section() -> None:
    assert retrieval_drift([srow(1)], []) is None
    assert "Retrieval drift" not in render_markdown(report(shadow_rows(50, 0.8, 0.8, seed=3)))


def test_the_markdown_shows_the_rows_and_the_worst_requests() -> None:
    rows = shadow_rows(50, 0.8, 0.8, seed=3)
    rows = [
        srow(
            i,
            **{k: getattr(r, k) for k in ("exact_match", "delta_s", "prod_solved", "shadow_solved")},
            prod_retrieval_delta_s=0.2,
            retrieval_delta_s=0.9 if i == 7 else 0.3,
            retrieval_overlap=1.0,
            retrieval_coverage=1.0,
            retrieval_coverage_target="gold",
        )
        for i, r in enumerate(rows)
    ]
    md = render_markdown(report(rows))
    assert "### Retrieval drift" in md
    assert "| candidate | 50 | 0.300 | 0.300 | 0.020 | 1.000 | 1.000 |" in md
    assert "r-7: ΔS 0.900 (prod 0.200)" in md


@pytest.mark.parametrize("field", ["retrieval_overlap", "retrieval_coverage"])
def test_ids_only_retrieval_still_gets_a_row(field: str) -> None:
    drift = retrieval_drift([srow(1, retrieval_coverage_target="gold", **{field: 1.0})], [])
    assert drift is not None
    assert [a.arm for a in drift.arms] == ["candidate"]
    assert drift.arms[0].n == 0
