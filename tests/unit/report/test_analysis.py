"""The report's statistics equal scipy on the same samples; disagreements, grader mixing, the rule."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats  # type: ignore[import-untyped]

from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.envelope import Exposure, GoldLabel
from shadowlane.report.analysis import build_report, example_hashes, mcnemar_exact
from shadowlane.report.model import GraderMixError, ReportInput, ReportOptions
from shadowlane.report.rows import AnswerText, ab_row, shadow_row
from shadowlane.stats.proportions import TwoProportionTest
from tests.support.factories import envelope
from tests.support.report_rows import GRADER, ab_rows, report, shadow_rows, srow


def assert_z_test(t: TwoProportionTest | None, x1: int, n1: int, x2: int, n2: int) -> None:
    """The pooled z-test recomputed with scipy.stats.norm, Newcombe's CI from scipy's Wilson."""
    assert t is not None
    assert (t.x1, t.n1, t.x2, t.n2) == (x1, n1, x2, n2)
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert t.z == pytest.approx(z, rel=1e-12)
    assert t.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
    w1 = stats.binomtest(x1, n1).proportion_ci(0.95, method="wilson")
    w2 = stats.binomtest(x2, n2).proportion_ci(0.95, method="wilson")
    assert t.ci_low == pytest.approx(p1 - p2 - math.hypot(p1 - w1.low, w2.high - p2), abs=1e-12)
    assert t.ci_high == pytest.approx(p1 - p2 + math.hypot(w1.high - p1, p2 - w2.low), abs=1e-12)


def test_shadow_accuracy_is_scipys_z_test_candidate_minus_prod() -> None:
    rows = shadow_rows(400, 0.70, 0.78, seed=1)
    s = report(rows).shadow
    assert s is not None
    cand = sum(bool(r.shadow_solved) for r in rows)
    prod = sum(bool(r.prod_solved) for r in rows)
    assert_z_test(s.accuracy.test, cand, 400, prod, 400)
    assert s.accuracy.enough_data
    assert s.accuracy.candidate is not None
    ref = stats.binomtest(cand, 400).proportion_ci(0.95, method="wilson")
    assert (s.accuracy.candidate.ci_low, s.accuracy.candidate.ci_high) == pytest.approx((ref.low, ref.high))


def test_per_bucket_accuracy_is_scipys_z_test_per_label_value() -> None:
    rows = shadow_rows(300, 0.6, 0.7, seed=2)
    s = report(rows).shadow
    assert s is not None
    assert {(b.key, b.value) for b in s.buckets} == {
        ("verb", "go"),
        ("verb", "be"),
        ("verb", "have"),
        ("tense", "past"),
        ("tense", "present"),
    }
    for b in s.buckets:
        mine = [r for r in rows if r.buckets[b.key] == b.value]
        x1, x2 = sum(bool(r.shadow_solved) for r in mine), sum(bool(r.prod_solved) for r in mine)
        assert_z_test(b.test, x1, len(mine), x2, len(mine))


def test_latency_quantiles_and_mann_whitney_equal_numpy_and_scipy() -> None:
    rows = shadow_rows(250, 0.7, 0.7, seed=3, cand_shift=1.2)
    lat = report(rows).shadow.latency  # type: ignore[union-attr]
    prod = np.array([r.prod_latency_ms for r in rows if not r.prod_error])
    cand = np.array([r.shadow_latency_ms for r in rows if not r.shadow_error])
    ref = stats.mannwhitneyu(cand, prod, alternative="two-sided", method="asymptotic", use_continuity=True)
    assert lat.mwu is not None
    assert lat.mwu.u == float(ref.statistic)
    assert lat.mwu.p_value == pytest.approx(float(ref.pvalue), rel=1e-9)
    assert lat.baseline is not None
    assert lat.candidate is not None
    for arm, values in ((lat.baseline, prod), (lat.candidate, cand)):
        for q, est in ((0.5, arm.p50), (0.95, arm.p95), (0.99, arm.p99)):
            assert est.estimate == float(np.quantile(values, q, method="inverted_cdf"))
            assert est.ci_low <= est.estimate <= est.ci_high
        assert arm.cdf[0] == values.min()
        assert arm.cdf[-1] == values.max()


def test_ab_accuracy_latency_errors_and_srm_equal_scipy() -> None:
    rows = ab_rows(520, 480, 0.80, 0.84, seed=4, shift=1.1)
    a = report(ab=rows, ab_weight=0.5).ab
    assert a is not None
    base = [r for r in rows if r.arm == "baseline"]
    cand = [r for r in rows if r.arm == "candidate"]
    solved = [sum("went" in r.answer for r in arm if r.answer) for arm in (cand, base)]
    assert_z_test(a.accuracy.test, solved[0], len(cand), solved[1], len(base))
    errs = [sum(r.status >= 500 for r in arm) for arm in (cand, base)]
    assert_z_test(a.errors.test, errs[0], len(cand), errs[1], len(base))
    ok_c = [r.latency_ms for r in cand if r.status < 500]
    ok_b = [r.latency_ms for r in base if r.status < 500]
    ref = stats.mannwhitneyu(ok_c, ok_b, alternative="two-sided", method="asymptotic")
    assert a.latency.mwu is not None
    assert a.latency.mwu.p_value == pytest.approx(float(ref.pvalue), rel=1e-9)
    chi = stats.chisquare([520, 480], [500.0, 500.0])
    assert a.srm.chi2 == pytest.approx(float(chi.statistic), rel=1e-12)
    assert a.srm.p_value == pytest.approx(float(chi.pvalue), rel=1e-9)
    assert not a.srm.mismatch
    uneven = report(ab=rows, ab_weight=0.3).ab
    assert uneven is not None
    chi = stats.chisquare([520, 480], [700.0, 300.0])
    assert uneven.srm.p_value == pytest.approx(float(chi.pvalue), rel=1e-9, abs=1e-300)
    assert uneven.srm.mismatch
    assert a.served_by == {"baseline": ("model-baseline",), "candidate": ("model-candidate",)}


def test_delta_s_against_the_noise_floor_equals_scipy() -> None:
    rows = shadow_rows(200, 0.7, 0.7, seed=5)
    ds = report(rows).shadow.delta_s  # type: ignore[union-attr]
    x = np.array([r.delta_s for r in rows])
    y = np.array([r.delta_s_floor for r in rows])
    ref = stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic")
    assert ds.mwu is not None
    assert ds.mwu.p_value == pytest.approx(float(ref.pvalue), rel=1e-9)
    assert ds.median == float(np.quantile(x, 0.5, method="inverted_cdf"))
    assert ds.floor_p95 == float(np.quantile(y, 0.95, method="inverted_cdf"))
    assert sum(ds.hist) == sum(ds.floor_hist) == 200
    # no floor on the rows: the noise-floor candidate's own ΔS stands in
    bare = [replace(r, delta_s_floor=None) for r in rows]
    floor = [srow(1_000 + i, candidate="baseline", noise_floor=True, delta_s=0.01 * i) for i in range(10)]
    ds2 = report([*bare, *floor]).shadow.delta_s  # type: ignore[union-attr]
    assert (ds2.n_floor, ds2.floor_median) == (10, 0.04)
    # the excess needs both on one request: 200 paired rows above, none here
    assert ds.n_paired == 200
    assert (ds2.n_paired, ds2.excess_median, ds2.excess_p95) == (0, None, None)


@pytest.mark.parametrize(("improved", "regressed"), [(0, 1), (3, 9), (12, 12), (40, 22), (1, 0), (5, 30)])
def test_mcnemar_exact_equals_scipy_binomtest(improved: int, regressed: int) -> None:
    ref = stats.binomtest(improved, improved + regressed, 0.5).pvalue
    assert mcnemar_exact(improved, regressed) == pytest.approx(float(ref), rel=1e-9)
    assert mcnemar_exact(0, 0) is None


def test_disagreements_are_split_into_improved_regressed_and_neutral() -> None:
    rows = [
        srow(0, exact_match=False, prod_solved=False, shadow_solved=True, delta_s=0.3),  # improved
        srow(1, exact_match=False, prod_solved=False, shadow_solved=True, delta_s=0.6),  # improved
        srow(2, exact_match=False, prod_solved=True, shadow_solved=False, delta_s=0.5),  # regressed
        srow(3, exact_match=False, prod_solved=True, shadow_solved=True),  # neutral
        srow(4, exact_match=False, prod_solved=False, shadow_solved=False),  # neutral
        srow(5, exact_match=False, prod_solved=None, shadow_solved=None, grader=None),  # neutral, ungraded
        srow(6, exact_match=True, prod_solved=True, shadow_solved=True),  # agreement
        srow(7, exact_match=None, prod_solved=True, shadow_solved=False),  # shadow gave no answer
        srow(8, outcome="shadow_timeout", exact_match=None),
        srow(9, candidate="other", exact_match=False, prod_solved=False, shadow_solved=True),
    ]
    answers = {f"{1:032x}": AnswerText(prod="I goed", shadow="I went", gold="went")}
    data = ReportInput(0, 10_000, "cand", "baseline", None, shadow=rows, answers=answers)
    s = build_report(data, GRADER, ReportOptions(max_examples=1)).shadow
    assert s is not None
    d = s.disagreements
    assert (d.joined, d.total, d.improved, d.regressed, d.neutral, d.ungraded) == (8, 6, 2, 1, 3, 1)
    assert (s.comparisons, s.timeouts) == (9, 1)
    (top,) = d.examples["improved"]  # capped at 1, largest ΔS first
    assert (top.req_id, top.delta_s, top.buckets) == ("r-1", 0.6, {"verb": "be", "tense": "past"})
    assert top.text == answers[f"{1:032x}"]
    assert d.mcnemar_p == pytest.approx(float(stats.binomtest(1, 3, 0.5).pvalue))
    assert example_hashes(data, ReportOptions(max_examples=1)) == {
        e.req_hash for shown in d.examples.values() for e in shown
    }


def test_mixed_grader_versions_are_refused() -> None:
    rows = [srow(0), srow(1, grader="contains@2"), srow(2, grader=None)]
    with pytest.raises(GraderMixError, match=r"contains@1, contains@2"):
        report(rows)
    # the A/B answers would be graded by another grader than the comparisons were
    exact = [srow(i, grader="exact@1") for i in range(3)]
    with pytest.raises(GraderMixError, match=r"exact@1.*contains@1"):
        report(exact, ab_rows(3, 3, 0.5, 0.5, seed=6))
    assert report(exact).grader == "exact@1"  # no A/B rows: nothing is mixed
    # rows of candidates the report does not use do not count
    assert report([srow(0), srow(1, candidate="other", grader="exact@9")]).grader == "contains@1"


def test_enough_equal_data_promotes() -> None:
    r = report(shadow_rows(3000, 0.80, 0.83, seed=7), ab_rows(500, 500, 0.8, 0.8, seed=8))
    assert r.recommendation.decision == "promote", r.recommendation
    assert any("SRM" in reason for reason in r.recommendation.reasons)
    # the 500-per-arm A/B cannot show non-inferiority on its own; the shadow pairs do
    assert any(n.startswith("A/B: accuracy") and "not ruled out" in n for n in r.recommendation.notes)


def test_too_little_data_holds_even_when_the_candidate_looks_better() -> None:
    r = report(shadow_rows(20, 0.3, 0.95, seed=9))
    assert r.recommendation.decision == "hold"
    assert any("too little data" in reason for reason in r.recommendation.reasons)
    empty = report()
    assert empty.recommendation.decision == "hold"
    assert (empty.shadow, empty.ab) == (None, None)
    assert empty.notes


def test_significantly_worse_accuracy_retrains() -> None:
    r = report(shadow_rows(600, 0.85, 0.70, seed=10))
    assert r.recommendation.decision == "retrain"
    assert any("significantly worse" in reason for reason in r.recommendation.reasons)


def test_regressions_dominating_the_disagreements_retrain() -> None:
    rows = [srow(i, exact_match=False, prod_solved=True, shadow_solved=False) for i in range(8)]
    rows += [srow(100 + i, exact_match=False, prod_solved=False, shadow_solved=True) for i in range(1)]
    r = report(rows)
    assert r.recommendation.decision == "retrain"
    assert any("regressions dominate" in reason for reason in r.recommendation.reasons)


def test_an_accuracy_regression_beyond_delta_that_is_not_ruled_out_holds() -> None:
    r = report(shadow_rows(150, 0.8, 0.79, seed=11))
    s = r.shadow
    assert s is not None
    assert s.accuracy.test is not None
    assert s.accuracy.test.ci_low < -0.02 < 0 < s.accuracy.test.ci_high
    assert r.recommendation.decision == "hold"
    assert any("not ruled out" in reason for reason in r.recommendation.reasons)


def test_a_latency_regression_holds_and_an_srm_mismatch_holds() -> None:
    slow = report(shadow_rows(600, 0.8, 0.8, seed=12, cand_shift=1.6))
    assert slow.shadow is not None
    assert slow.shadow.latency.regression
    assert slow.recommendation.decision == "hold"
    assert any("significantly slower" in reason for reason in slow.recommendation.reasons)
    skewed = report(shadow_rows(600, 0.8, 0.8, seed=13), ab_rows(700, 300, 0.8, 0.8, seed=14))
    assert skewed.ab is not None
    assert skewed.ab.srm.mismatch
    assert skewed.recommendation.decision == "hold"
    assert any("sample ratio mismatch" in reason for reason in skewed.recommendation.reasons)


def test_rows_from_records() -> None:
    env = envelope(3, tag="rep").model_copy(
        update={
            "buckets": {"tense": "past", "person": "3s", "verb": "go"},
            "gold": GoldLabel(answer="went"),
            "exposure": Exposure(
                flag="f", arm="candidate", served_by="b", strategy="ab", epoch=2, bucket=0.1
            ),
        }
    )
    row = ab_row(env)
    assert row is not None
    assert (row.arm, row.flag, row.epoch, row.status, row.gold) == ("candidate", "f", 2, 200, "went")
    assert row.buckets == {"tense": "past", "person": "3s", "verb": "go"}
    assert ab_row(envelope(4)) is None
    c = Comparison(
        comparison_id="x",
        req_hash=env.req_hash,
        candidate="cand",
        ts_ms=5,
        complete=True,
        outcome="joined",
        prod_status="503",
        shadow_status="error:Timeout",
        grader="contains@1",
        prod_solved=True,
        shadow_solved=False,
        buckets={"verb": "go"},
    )
    r = shadow_row(c)
    assert (r.prod_error, r.shadow_error, r.noise_floor, r.buckets) == (True, True, False, {"verb": "go"})
    assert GRADER.name == "contains@1"
    assert (
        GRADER.solved("I went home", "went"),
        GRADER.solved("I goed", "went"),
        GRADER.solved("x", None),
    ) == (
        True,
        False,
        None,
    )


def test_delta_s_from_two_embedders_is_stated_in_one_note_and_from_one_is_not() -> None:
    rows = shadow_rows(60, 0.7, 0.7, seed=8)
    minilm, static = "all-MiniLM-L6-v2-onnx-int8", "static-minilm-l6-v1"
    one = [replace(r, delta_s_embedder=minilm) for r in rows]
    assert report(one).shadow.delta_s.embedders == ((minilm, 60),)  # type: ignore[union-attr]
    assert not [n for n in report(one).notes if "embedder" in n]
    # rows without a ΔS, and rows written before comparisons named their embedder, are not counted
    unscored = [srow(500 + i, delta_s_embedder=static) for i in range(3)]
    assert not [n for n in report([*one, *unscored, *rows[:5]]).notes if "embedder" in n]
    mixed = [replace(r, delta_s_embedder=static if i < 20 else minilm) for i, r in enumerate(rows)]
    r = report(mixed)
    assert r.shadow is not None
    assert r.shadow.delta_s.embedders == ((minilm, 40), (static, 20))
    assert [n for n in r.notes if "embedder" in n] == [
        f"shadow: ΔS mixes embedders: {minilm} (40), {static} (20); "
        "rescore the range with one embedder (shadowlane rescore --embedder)"
    ]
    # the noise floor's own rows count when their ΔS stands in for the floor
    bare = [replace(r, delta_s_floor=None, delta_s_excess=None) for r in one]
    floor = [srow(1_000 + i, candidate="baseline", noise_floor=True, delta_s=0.01 * i,
                  delta_s_embedder=static) for i in range(10)]  # fmt: skip
    assert report([*bare, *floor]).shadow.delta_s.embedders == ((minilm, 60), (static, 10))  # type: ignore[union-attr]


def test_rows_name_the_embedder_of_their_comparison() -> None:
    env = envelope(7)
    c = Comparison(
        comparison_id="x", req_hash=env.req_hash, candidate="cand", ts_ms=5, complete=True,
        outcome="joined", delta_s=0.25, delta_s_embedder="static-minilm-l6-v1",
    )  # fmt: skip
    assert shadow_row(c).delta_s_embedder == "static-minilm-l6-v1"
    assert shadow_row(c.model_copy(update={"delta_s_embedder": None})).delta_s_embedder is None
