"""The decision-quality simulation: its vectorised, incremental aggregation equals the real Accumulator,
the better candidate is what it claims, both rules judge the same experiments, and the report's
time-to-verdict figures (censored beyond the horizon) and speed-up follow from the outcomes."""

from __future__ import annotations

import numpy as np
import pytest

from shadowlane.contracts.comparison import Comparison, LambdaState
from shadowlane.rollout import simulate as sim
from shadowlane.rollout import simulate_report as rep
from shadowlane.rollout import synthetic as syn
from shadowlane.rollout.gates import evaluate
from shadowlane.rollout.looks import look_schedule
from shadowlane.rollout.simulate_report import Row, Speedup, censored_quantile
from shadowlane.windows import histograms as h
from shadowlane.windows.accumulator import Accumulator


def _state(divergent: bool, sampled: bool) -> LambdaState | None:
    if not sampled:
        return None
    return "divergent" if divergent else "convergent"


def _comparisons(r: syn.Requests, e: int, n: int) -> list[Comparison]:
    """The simulated requests as the comparator's records, one by one."""
    out = []
    for i in range(n):
        x = {name: getattr(r, name)[e, i] for name in syn.Requests.__dataclass_fields__}
        ok, lam = not x["shadow_error"], bool(x["lambda_sampled"])
        ds, floor = (float(x["delta_s"]) if ok else None), float(x["floor"])
        out.append(
            Comparison(
                comparison_id=f"c{i}",
                req_hash=f"{i:032x}",
                candidate=syn.KEY[0],
                ts_ms=0,
                endpoint=syn.KEY[1],
                tenant=syn.KEY[2],
                complete=True,
                outcome="joined",
                delta_s=ds,
                exact_match=None if ds is None else ds == 0,
                prod_latency_ms=float(x["prod_ms"]),
                shadow_latency_ms=float(x["shadow_ms"]),
                prod_status="503" if x["prod_error"] else "200",
                shadow_status="ok" if ok else "error:http_500",
                delta_s_floor=floor,
                delta_s_excess=None if ds is None else round(ds - floor, 6),
                prod_solved=bool(x["prod_solved"]),
                shadow_solved=bool(x["shadow_solved"]),
                lambda_state=_state(bool(x["cand_divergent"]), lam),
                baseline_lambda_state=_state(bool(x["base_divergent"]), lam),
                lambda_flip=(not x["base_divergent"] and bool(x["cand_divergent"])) if lam else None,
                coverage=float(x["coverage"]) if ok else None,
                tool_calls=int(ok),
                tool_valid=int(x["tool_valid"]),
                tool_matched_prod=int(x["tool_matched"]),
                prod_cost_usd=float(x["prod_cost"]),
                shadow_cost_usd=float(x["shadow_cost"]) if ok else None,
            )
        )
    return out


@pytest.mark.parametrize("scenario", syn.scenarios(), ids=lambda s: s.name)
def test_vectorised_aggregation_equals_the_accumulator(scenario: syn.Scenario) -> None:
    data = syn.generate(scenario, syn.Population(), np.random.default_rng(3), 2, 700)
    for e in range(2):
        fast = syn.summary_at(data, e, 700)
        acc = Accumulator(0, 60_000, syn.KEY)
        for c in _comparisons(data, e, 700):
            acc.add(c)
        slow = acc.summary()
        for name in type(slow).model_fields:
            got, want = getattr(fast, name), getattr(slow, name)
            if isinstance(want, float):
                assert got == pytest.approx(want, rel=1e-9, abs=1e-12), name
            else:
                assert got == want, name  # histograms: the same encoded bytes
        assert h.decode(fast.hist_delta_s_paired_e4).get_total_count() == slow.excess_count
    assert slow.shadow_errors + slow.lambda_flips + slow.solved_lost + slow.solved_gained > 0


def test_incremental_accumulation_equals_accumulating_from_the_start() -> None:
    aa = next(s for s in syn.scenarios() if s.name == "A/A")
    data = syn.generate(aa, syn.Population(), np.random.default_rng(5), 1, 1_200)
    acc, previous = None, 0
    for n in (400, 800, 1_200):
        acc = syn.accumulate(data, 0, n, into=acc, start=previous)
        previous = n
        fast, whole = acc.summary(), syn.summary_at(data, 0, n)
        for name in type(whole).model_fields:
            got, want = getattr(fast, name), getattr(whole, name)
            expected = pytest.approx(want, rel=1e-9, abs=1e-12) if isinstance(want, float) else want
            assert got == expected, name
        assert fast.count == n


def test_the_better_candidate_gains_three_points_and_is_ten_percent_faster() -> None:
    better = next(s for s in syn.scenarios() if s.name == "better")
    assert (better.regression, better.correct, better.accuracy_drop, better.latency_factor) == (
        False, "PASS", -0.03, 0.9,
    )  # fmt: skip
    data = syn.generate(better, syn.Population(), np.random.default_rng(8), 20, 4_000)
    answered = ~data.shadow_error & ~data.prod_error
    prod, shadow = data.prod_solved[answered].mean(), data.shadow_solved[answered].mean()
    assert prod == pytest.approx(0.80, abs=0.006)
    assert shadow == pytest.approx(0.83, abs=0.006)
    assert shadow - prod == pytest.approx(0.03, abs=0.006)
    p95 = np.percentile(data.shadow_ms, 95) / np.percentile(data.prod_ms, 95)
    assert p95 == pytest.approx(0.9, abs=0.015)
    assert np.median(data.shadow_ms / data.prod_ms) == pytest.approx(0.9, rel=0.01)


def test_a_gain_scales_the_failures_and_never_leaves_zero_to_one() -> None:
    p = np.array([0.0, 0.5, 0.97, 1.0])
    gain = syn.shadow_solve_probability(p, -0.03, 0.8)
    np.testing.assert_allclose(gain, 1 - (1 - p) * 0.85)
    assert gain.max() <= 1.0
    assert gain[-1] == 1.0
    np.testing.assert_allclose(syn.shadow_solve_probability(p, 0.05, 0.8), p * (1 - 0.05 / 0.8))
    np.testing.assert_array_equal(syn.shadow_solve_probability(p, 0.0, 0.8), p)  # A/A: prod's own model
    assert syn.shadow_solve_probability(p, -0.5, 0.8).min() >= 0.0  # beyond the possible gain: clipped


def test_censored_quantiles_are_beyond_the_horizon() -> None:
    inf = float("inf")
    assert censored_quantile([400, 800, 1_200, inf], 0.5) == 800
    assert censored_quantile([400, 800, 1_200, inf], 0.75) == 1_200
    assert censored_quantile([400, 800, 1_200, inf], 0.9) is None
    assert censored_quantile([400, inf, inf, inf], 0.5) is None
    aa = next(s for s in syn.scenarios() if s.name == "A/A")
    row = Row(aa, "new", 4_000, ("PASS", "FAIL", "INCONCLUSIVE", "INCONCLUSIVE"), (800, 400, 4_000, 4_000))
    assert row.to_correct == (800.0, inf, inf, inf)  # a FAIL never reaches the correct PASS
    assert (row.median, row.p90) == (None, None)
    assert (row.wrong.k, row.inconclusive.k, row.by_horizon.k) == (1, 2, 1)
    assert row.as_dict()["censored"] == {"median": True, "p90": True}
    report = rep.Report((row,), (), 4, 4_000, 400, (400,), 1, (), "new", 0.0)
    assert "| >4,000 | >4,000 |" in rep.markdown(report)


def test_the_speedup_is_today_median_over_the_new_median() -> None:
    assert Speedup("A/A", 6_000, 2_400, 10_000).ratio == pytest.approx(2.5)
    assert Speedup("A/A", 6_000, 2_400, 10_000).met
    censored_today = Speedup("A/A", None, 4_000, 10_000)  # today never got there: a lower bound
    assert (censored_today.ratio, censored_today.at_least, censored_today.text()) == (2.5, True, "> 2.50×")
    assert Speedup("A/A", 6_000, None, 10_000).ratio is None
    assert not Speedup("A/A", 6_000, None, 10_000).met
    assert not Speedup("A/A", 3_000, 2_000, 10_000).met
    aa, drop = (next(s for s in syn.scenarios() if s.name == name) for name in ("A/A", "accuracy −5 pts"))
    rows = [
        Row(aa, "today", 10_000, ("PASS",) * 3, (6_000, 7_200, 8_000)),
        Row(aa, "new", 10_000, ("PASS",) * 3, (2_000, 2_400, 9_600)),
        Row(drop, "today", 10_000, ("FAIL",) * 3, (800, 800, 800)),
        Row(drop, "new", 10_000, ("FAIL",) * 3, (400, 400, 400)),
    ]
    (only,) = rep.speedups(rows, "today", "new")  # PASS scenarios only
    assert (only.scenario, only.today_median, only.new_median) == ("A/A", 7_200, 2_400)
    assert only.ratio == pytest.approx(3.0)


def test_both_rules_judge_the_same_summaries(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, list[tuple[int, str]]] = {"today": [], "new": []}
    judge = sim.Rule.judge

    def spy(rule: sim.Rule, spec: object, summary: object, look: object, held: frozenset[str]) -> object:
        seen[rule.name].append((id(summary), summary.summary_id + str(summary.count)))  # type: ignore[attr-defined]
        return judge(rule, spec, summary, look, held)  # type: ignore[arg-type]

    monkeypatch.setattr(sim.Rule, "judge", spy)
    aa = next(s for s in syn.scenarios() if s.name == "A/A")
    sim.run(experiments=2, requests=1_200, look_every=400, chosen=(aa,))
    today, new = seen["today"], seen["new"]
    assert len(today) == len(new) == 2 * 3  # nothing decides an A/A at 1,200: every look, both rules
    assert [i for i, _ in today] == [i for i, _ in new]  # the very same summary object at every look


def test_a_rule_and_its_copy_reach_the_same_outcomes() -> None:
    twin = sim.Rule("twin", sim.NEW.look_rule, sim.NEW.excess_interval)
    drop = next(s for s in syn.scenarios() if s.name == "accuracy −5 pts")
    report = sim.run(experiments=6, requests=2_000, look_every=400, rules=(sim.NEW, twin), chosen=(drop,))
    new, copy = report.rows
    assert (new.verdicts, new.decided_n) == (copy.verdicts, copy.decided_n)
    assert "FAIL" in new.verdicts


@pytest.fixture(scope="module")
def report() -> rep.Report:
    """20 experiments × 4,000 requests of every scenario, today's rule and the new one."""
    return sim.run(experiments=20, requests=4_000, look_every=400, seed=3)


def test_the_report_covers_every_scenario_and_rule(report: rep.Report) -> None:
    names = [s.name for s in syn.scenarios()]
    assert [(r.scenario.name, r.rule) for r in report.rows] == [
        (n, r) for n in names for r in ("today", "new")
    ]
    assert report.looks == tuple(range(400, 4_001, 400))
    for row in report.rows:
        assert row.experiments == 20
        assert row.horizon == 4_000
        assert all(n in report.looks for n in row.decided_n)
        assert all(
            n == 4_000 for v, n in zip(row.verdicts, row.decided_n, strict=True) if v == "INCONCLUSIVE"
        )
        early, late = row.by_milestone, row.by_horizon
        assert early.k <= late.k
        assert late.k + row.wrong.k + row.inconclusive.k == 20
        for rate in (early, late, row.wrong):
            low, high = rate.ci
            assert 0.0 <= low <= rate.rate <= high <= 1.0
        if row.median is not None:
            assert row.correct_by(row.median).rate >= 0.5 > row.correct_by(row.median - 400).rate
    by = {(r.scenario.name, r.rule): r for r in report.rows}
    for regression in (s.name for s in syn.scenarios() if s.regression):
        assert by[regression, "new"].by_horizon.rate >= 0.9  # every seeded regression FAILs by 4,000
        assert by[regression, "new"].wrong.k == 0
    assert by["A/A", "new"].wrong.k <= 1


def test_the_speedups_come_from_the_two_medians(report: rep.Report) -> None:
    by = {(r.scenario.name, r.rule): r for r in report.rows}
    assert [s.scenario for s in report.speedups] == ["A/A", "better"]
    for s in report.speedups:
        today, new = by[s.scenario, "today"], by[s.scenario, "new"]
        assert (s.today_median, s.new_median) == (today.median, new.median)
        if s.today_median is not None and s.new_median is not None:
            assert s.ratio == pytest.approx(today.median / new.median)  # type: ignore[operator]
    got = report.as_dict()
    assert got["speedups"][0]["today_median"] == by["A/A", "today"].median
    assert got["new_rule_error_targets_met"] == all(r.met for r in report.rows_of("new"))
    table = sim.markdown(report)
    assert sum(line.startswith("| ") for line in table.splitlines()) == len(report.rows) + 1 + 2 + 1
    assert "| A/A | today | PASS |" in table
    assert "today / new" in table


def test_a_drifted_candidate_fails_the_median_gate_on_the_excess_delta_s() -> None:
    drift = next(s for s in syn.scenarios() if s.drift)
    data = syn.generate(drift, syn.Population(), np.random.default_rng(4), 1, 1_000)
    look = look_schedule([1_000], 1_000)[0]
    decision = evaluate(sim.default_spec(), syn.summary_at(data, 0, 1_000), look=look)
    gate = next(g for g in decision.gates if g.name == "delta_s.median_max")
    assert gate.metric == "delta_s_excess_median"
    assert gate.value == pytest.approx(drift.drift, abs=0.015)
    assert gate.verdict == "FAIL"
    assert decision.verdict == "FAIL"
