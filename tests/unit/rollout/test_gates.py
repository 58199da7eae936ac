"""Gate verdicts on crafted window summaries, alpha spending, and the gate command's pure part.

Summaries are built the way the comparator builds them: hand-made comparisons through the real
Accumulator, with knobs for each kind of regression.
"""

from __future__ import annotations

import argparse
import math
import random
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from shadowlane.cli import gate_cmd
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.flag_manifest import (
    AbortRules,
    FlagManifest,
    FlagSpec,
    Gates,
    SoftAbortRule,
    Traffic,
)
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.rollout.gates import (
    Decision,
    GateResult,
    evaluate,
)
from shadowlane.rollout.looks import fixed_look, look_alpha_for, look_schedule
from shadowlane.rollout.summaries import judge_flag
from shadowlane.settings import load_settings
from shadowlane.windows.accumulator import Accumulator

TRAFFIC = Traffic(baseline_weight=0.95, canary_weight=0.05)


def _comparisons(
    n: int,
    *,
    seed: int = 1,
    candidate: str = "cand",
    endpoint: str = "/v1/chat",
    tenant: str = "t1",
    errors: float = 0.0,
    lost: float = 0.0,
    gained: float = 0.0,
    latency: float = 1.0,
    spread: float = 0.3,
    shift: float = 0.0,
    floor: bool = True,
    cost: float = 1.0,
    coverage: bool = True,
    tools: bool = True,
    graded: bool = True,
    lam_flips: int = 0,
    retrieval: bool = True,
    retrieval_shift: float = 0.0,
    retrieval_coverage: float = 1.0,
) -> list[Comparison]:
    rng = random.Random(seed)
    rag = random.Random(seed + 10_000)  # its own stream: the other figures stay as they were
    out = []
    for i in range(n):
        error = rng.random() < errors
        prod_ms = round(800 * math.exp(0.3 * rng.gauss(0, 1)), 3)
        prod_ok = rng.random() < 0.8
        shadow_ok = (prod_ok and rng.random() >= lost / 0.8) or (not prod_ok and rng.random() < gained / 0.2)
        ds = None if error else round(min(1.0, rng.uniform(0.0, spread) + shift), 4)
        fl = round(rng.uniform(0.0, spread), 4) if floor else None
        sampled = i % 10 == 0
        prod_cost = round(0.002 * math.exp(0.3 * rng.gauss(0, 1)), 9)
        out.append(
            Comparison(
                comparison_id=f"c{i}",
                req_hash=f"{seed:08x}{i:024x}",
                candidate=candidate,
                ts_ms=i,
                endpoint=endpoint,
                tenant=tenant,
                complete=True,
                outcome="joined",
                delta_s=ds,
                prod_latency_ms=prod_ms,
                shadow_latency_ms=round(prod_ms * latency, 3),
                prod_status="200",
                shadow_status="error:http_500" if error else "ok",
                delta_s_floor=fl,
                delta_s_excess=None if ds is None or fl is None else round(ds - fl, 6),
                prod_solved=prod_ok if graded else None,
                shadow_solved=(shadow_ok and not error) if graded else None,
                lambda_state=("divergent" if i // 10 < lam_flips else "convergent") if sampled else None,
                baseline_lambda_state="convergent" if sampled else None,
                lambda_flip=(i // 10 < lam_flips) if sampled else None,
                coverage=1.0 if coverage and not error else None,
                tool_calls=1 if tools and not error else 0,
                tool_valid=1 if tools and not error else 0,
                prod_cost_usd=prod_cost,
                shadow_cost_usd=None if error else round(prod_cost * cost, 9),
                prod_retrieval_delta_s=round(rag.uniform(0.1, 0.3), 4) if retrieval else None,
                retrieval_delta_s=round(min(1.0, rag.uniform(0.1, 0.3) + retrieval_shift), 4)
                if retrieval and not error
                else None,
                retrieval_paraphrases=0 if retrieval and not error else None,
                retrieval_overlap=1.0 if retrieval and not error else None,
                retrieval_coverage=retrieval_coverage if retrieval and not error else None,
                retrieval_coverage_target="gold" if retrieval and not error else None,
            )
        )
    return out


def _summary(n: int = 2_000, start_ms: int = 0, **knobs: Any) -> WindowSummary:
    comps = _comparisons(n, **knobs)
    acc = Accumulator(start_ms, start_ms + 60_000, (comps[0].candidate, comps[0].endpoint, comps[0].tenant))
    for c in comps:
        acc.add(c)
    return acc.summary()


def _spec(**gates: Any) -> FlagSpec:
    return FlagSpec(traffic=TRAFFIC, gates=Gates(**gates))


def _gate(decision: Decision, name: str) -> GateResult:
    return next(g for g in decision.gates if g.name == name)


@pytest.fixture(scope="module")
def green() -> WindowSummary:
    return _summary()


# ---------------------------------------------------------------------- verdicts
def test_all_green_passes_with_every_gate_judged(green: WindowSummary) -> None:
    decision = evaluate(_spec(), green, flag="f")
    assert decision.verdict == "PASS", decision.reason
    assert decision.exit_code == 0
    assert not decision.hard_stop
    assert not decision.soft_hold
    assert [g.verdict for g in decision.gates] == ["PASS"] * 11
    assert _gate(decision, "delta_s.median_max").metric == "delta_s_excess_median"  # a floor: excess ΔS
    assert decision.n == 2_000
    assert decision.look.confidence == pytest.approx(0.90)


def test_every_interval_contains_its_value(green: WindowSummary) -> None:
    regressed = _summary(lost=0.05, latency=1.3, shift=0.05, cost=1.2, errors=0.01)
    for summary in (green, regressed):
        for g in evaluate(_spec(), summary).gates:
            assert g.value is not None
            assert g.ci_low is not None
            assert g.ci_high is not None
            assert g.ci_low <= g.value <= g.ci_high, g.name
            assert g.statistic


def test_one_breached_gate_fails_naming_the_gate_and_its_interval() -> None:
    decision = evaluate(_spec(), _summary(latency=1.3), flag="f")
    assert decision.verdict == "FAIL"
    assert decision.exit_code == 1
    assert decision.reason == "gate failed: latency_p95_uplift_max"
    assert [g.name for g in decision.failed] == ["latency_p95_uplift_max"]
    gate = _gate(decision, "latency_p95_uplift_max")
    assert gate.value == pytest.approx(0.30, abs=0.01)
    assert gate.ci_low is not None
    assert gate.ci_high is not None
    assert 0.15 < gate.ci_low < 0.30 < gate.ci_high  # the interval says the uplift is past the budget
    assert gate.worse_low is not None
    assert gate.worse_low > 0
    assert "p95(candidate) / p95(prod)" in gate.statistic
    assert "beyond 0.15" in gate.reason


def test_an_accuracy_regression_fails_on_the_paired_drop() -> None:
    decision = evaluate(_spec(), _summary(lost=0.10), flag="f")
    gate = _gate(decision, "accuracy_drop_max")
    assert decision.verdict == "FAIL"
    assert gate.verdict == "FAIL"
    assert gate.value == pytest.approx(0.10, abs=0.025)
    assert gate.ci_low is not None
    assert gate.ci_low > 0.02
    assert "paired" in gate.statistic


def test_too_few_samples_is_inconclusive_never_pass_and_aborts_nothing() -> None:
    for summary in (_summary(150), _summary(150, errors=0.3)):
        decision = evaluate(_spec(), summary)
        assert decision.verdict == "INCONCLUSIVE"
        assert decision.exit_code == 2
        assert "min_samples" in decision.reason
        assert {g.verdict for g in decision.gates} == {"INCONCLUSIVE"}
        assert not any(a.fired for a in decision.aborts)
        assert not decision.hard_stop


def test_no_summary_is_inconclusive() -> None:
    decision = evaluate(_spec(), None, flag="f")
    assert (decision.verdict, decision.n, decision.gates) == ("INCONCLUSIVE", 0, ())
    assert "no data" in decision.reason


def test_hard_abort_fails_at_once_even_at_an_early_look() -> None:
    early = look_alpha_for(400, 20_000)  # t = 0.02: almost no α spent yet
    decision = evaluate(_spec(), _summary(400, errors=0.06), look=early)
    assert decision.verdict == "FAIL"
    assert decision.hard_stop
    fired = [a for a in decision.aborts if a.fired]
    assert [(a.kind, a.severity) for a in fired] == [("error_rate_over", "hard")]
    assert "hard abort" in decision.reason
    assert _gate(decision, "error_rate_max").verdict != "FAIL"  # the gate itself waits for its α


def test_soft_abort_holds_without_failing() -> None:
    spec = FlagSpec(
        traffic=TRAFFIC,
        gates=Gates(latency_p95_uplift_max=None),
        abort_rules=AbortRules(soft=(SoftAbortRule(kind="latency_p95_uplift_over", value=0.10),)),
    )
    decision = evaluate(spec, _summary(latency=1.2))
    assert decision.verdict == "INCONCLUSIVE"
    assert decision.soft_hold
    assert not decision.hard_stop
    assert all(g.verdict == "PASS" for g in decision.gates)
    assert "latency_p95_uplift_over" in decision.reason
    assert "latency_p95_uplift_max" not in {g.name for g in decision.gates}  # a null gate is left out


def test_a_proven_quality_gain_waives_the_cost_budget() -> None:
    pricier = _summary(cost=1.25, gained=0.10)
    decision = evaluate(_spec(), pricier)
    cost = _gate(decision, "cost_uplift_max")
    assert cost.value is not None
    assert cost.value > 0.10
    assert cost.verdict == "PASS"
    assert "waived" in cost.reason
    budget = next(a for a in decision.aborts if a.kind == "cost_per_solved_over_budget")
    assert not budget.fired
    assert "waived" in budget.reason
    without_gain = evaluate(_spec(), _summary(cost=1.25))
    assert _gate(without_gain, "cost_uplift_max").verdict == "FAIL"


def test_a_gate_whose_metric_is_missing_is_skipped() -> None:
    bare = _summary(coverage=False, tools=False, graded=False, floor=False, spread=0.02, retrieval=False)
    decision = evaluate(_spec(), bare)
    skipped = {g.name for g in decision.gates if g.verdict == "SKIPPED"}
    assert skipped == {
        "coverage_min",
        "tool_success_min",
        "accuracy_drop_max",
        "retrieval_delta_s_max",
        "retrieval_coverage_min",
    }
    assert decision.verdict == "PASS"  # every gate that could be judged passed
    median = _gate(decision, "delta_s.median_max")
    assert median.metric == "delta_s_median"  # no floor: raw ΔS, and the statistic says so
    assert "raw ΔS" in median.statistic


def test_drift_fails_on_the_excess_delta_s_median() -> None:
    decision = evaluate(_spec(), _summary(shift=0.08))
    gate = _gate(decision, "delta_s.median_max")
    assert gate.verdict == "FAIL"
    assert gate.value == pytest.approx(0.08, abs=0.02)
    assert "noise floor" in gate.statistic


def test_the_ci_rule_needs_the_whole_interval_beyond_the_threshold() -> None:
    summary = _summary(lost=0.055, gained=0.03, seed=1)
    by_reference = _gate(evaluate(_spec(), summary), "accuracy_drop_max")
    by_interval = _gate(evaluate(_spec(), summary, fail_rule="ci_beyond_threshold"), "accuracy_drop_max")
    assert by_reference.value is not None
    assert by_reference.value > 0.02
    assert by_reference.verdict == "FAIL"
    assert by_interval.verdict == "INCONCLUSIVE"
    assert by_interval.ci_low is not None
    assert by_interval.ci_low < 0.02


def test_bonferroni_splits_the_fail_level_over_the_judged_gates(green: WindowSummary) -> None:
    decision = evaluate(_spec(), green, multiplicity="bonferroni")
    assert all(g.fail_alpha == pytest.approx(0.05 / 11) for g in decision.gates)


def test_a_summary_without_discordance_falls_back_to_the_unpaired_test() -> None:
    legacy = _summary(lost=0.05).model_copy(update={"solved_lost": 0, "solved_gained": 0})
    gate = _gate(evaluate(_spec(), legacy), "accuracy_drop_max")
    assert "unpaired" in gate.statistic


def test_decision_is_json_ready(green: WindowSummary) -> None:
    data = orjson.loads(orjson.dumps(evaluate(_spec(), _summary(300)).as_dict()))
    assert data["verdict"] in ("PASS", "INCONCLUSIVE")
    assert len(data["gates"]) == 11
    assert data["look"]["alpha"] == 0.05


# ---------------------------------------------------------------------- peeking
def test_alpha_spending_makes_an_early_look_stricter() -> None:
    summary = _summary(lost=0.055, gained=0.03, seed=1)  # a 2.5-point drop, noisy discordance
    fixed = evaluate(_spec(), summary, look=fixed_look())
    early = evaluate(_spec(), summary, look=look_alpha_for(2_000, 10_000))
    assert _gate(fixed, "accuracy_drop_max").verdict == "FAIL"
    assert _gate(early, "accuracy_drop_max").verdict == "INCONCLUSIVE"
    f, e = _gate(fixed, "accuracy_drop_max"), _gate(early, "accuracy_drop_max")
    assert e.ci_low is not None
    assert f.ci_low is not None
    assert e.ci_low < f.ci_low
    assert early.look.alpha < fixed.look.alpha


@pytest.mark.parametrize("exact", [False, True])
def test_a_look_schedule_spends_at_most_alpha(exact: bool) -> None:
    looks = look_schedule([400, 800, 1_200, 1_600, 2_000], 2_000, exact=exact)
    alphas = [look.alpha for look in looks]
    assert alphas == sorted(alphas)  # O'Brien-Fleming: almost nothing early
    assert alphas[0] < 1e-3
    assert looks[-1].spent == pytest.approx(0.05)
    if not exact:
        assert sum(alphas) == pytest.approx(0.05)  # union bound: increments add up to α
    else:
        assert alphas[-1] > look_schedule([400, 800, 1_200, 1_600, 2_000], 2_000)[-1].alpha
    assert look_alpha_for(2_000, 2_000, n_prev=2_000).alpha == 0.0  # no new information: no α


def test_a_look_without_alpha_decides_nothing(green: WindowSummary) -> None:
    decision = evaluate(_spec(), green, look=look_alpha_for(2_000, 1_000, n_prev=1_000))
    assert decision.verdict == "INCONCLUSIVE"
    assert {g.verdict for g in decision.gates} == {"SKIPPED"}


# ---------------------------------------------------------------------- the gate command's pure part
def _manifest(**spec: Any) -> FlagManifest:
    return FlagManifest(flags={"f": FlagSpec(traffic=TRAFFIC, candidate="cand", **spec)})


def test_command_merges_the_scope_and_maps_verdicts_to_exit_codes() -> None:
    parts = [
        _summary(700, seed=1, start_ms=0, endpoint="/a", tenant="t1"),
        _summary(700, seed=2, start_ms=60_000, endpoint="/b", tenant="t2"),
        _summary(600, seed=3, start_ms=120_000, endpoint="/a", tenant="t2"),
    ]
    noise = [
        _summary(300, seed=4, start_ms=0, candidate="other"),  # another candidate
        _summary(300, seed=5, start_ms=600_000),  # outside the range
        parts[0],  # a duplicate partial (same summary_id)
    ]
    records = parts + noise
    decision, candidate, partials = judge_flag(_manifest(), "f", records, start_ms=0, end_ms=180_000)
    assert (candidate, partials, decision.n) == ("cand", 3, 2_000)
    assert (decision.window_start_ms, decision.window_end_ms) == (0, 180_000)
    assert decision.verdict == "PASS"
    assert decision.exit_code == 0
    scoped = _manifest(scope={"endpoints": ["/b"]})
    decision, _, partials = judge_flag(scoped, "f", parts, start_ms=0, end_ms=180_000)
    assert (partials, decision.n) == (1, 700)
    bad = [_summary(2_000, lost=0.10, start_ms=0)]
    assert judge_flag(_manifest(), "f", bad, start_ms=0, end_ms=60_000)[0].exit_code == 1
    nothing, _, partials = judge_flag(_manifest(), "f", [], start_ms=0, end_ms=60_000)
    assert (nothing.verdict, nothing.exit_code, partials) == ("INCONCLUSIVE", 2, 0)


def test_command_table_shows_each_gate_with_its_interval(green: WindowSummary) -> None:
    decision, candidate, partials = judge_flag(_manifest(), "f", [green], start_ms=0, end_ms=60_000)
    text = gate_cmd.render(decision, candidate, partials)
    for name in ("delta_s.median_max", "accuracy_drop_max", "latency_p95_uplift_max", "PASS:"):
        assert name in text
    assert re.search(r"\d\d\.\d% \[", text)  # the interval at the look's level
    assert "threshold" in text
    assert "verdict" in text


def test_command_refuses_an_unknown_flag_and_a_bad_manifest_with_exit_3(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not in the manifest"):
        judge_flag(_manifest(), "nope", [], start_ms=0, end_ms=1)
    bad = tmp_path / "flags.yml"
    bad.write_text("flags:\n  f:\n    gates: {coverage_min: 3}\n")
    args = argparse.Namespace(manifest=bad, flag="f", start=None, end="now", window=None)
    assert gate_cmd.run(args, load_settings()) == 3
    good = tmp_path / "good.yml"
    good.write_text("flags:\n  f:\n    traffic: {baseline_weight: 1, canary_weight: 0}\n")
    args = argparse.Namespace(manifest=good, flag="nope", start=None, end="now", window=None)
    assert gate_cmd.run(args, load_settings()) == 3
