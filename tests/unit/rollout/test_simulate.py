"""The decision-quality simulation: its vectorised aggregation equals the real Accumulator, and small
seeded runs have the expected structure, no A/A false alarms and FAIL gross regressions."""

from __future__ import annotations

import numpy as np
import pytest

from shadowlane.contracts.comparison import Comparison, LambdaState
from shadowlane.rollout import simulate as sim
from shadowlane.rollout import synthetic as syn
from shadowlane.rollout.gates import evaluate
from shadowlane.rollout.looks import look_schedule
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


def test_small_run_structure_and_table() -> None:
    report = sim.run(experiments=12, requests=800, looks=2, seed=1)
    assert [r.scenario.name for r in report.rows] == [s.name for s in syn.scenarios()]
    assert report.looks == (400, 800)
    for row in report.rows:
        assert row.fail + row.passed + row.inconclusive == row.experiments == 12
        assert 0.0 <= row.fail_ci[0] <= row.fail_rate <= row.fail_ci[1] <= 1.0
        assert row.variant == sim.DEFAULT_VARIANT
    table = sim.markdown(report)
    assert sum(line.startswith("| ") for line in table.splitlines()) == len(report.rows) + 1  # + header
    assert "FAIL rate [95 % CI]" in table
    assert report.as_dict()["rows"][0]["fail_rule"] == "worse_than_reference"


def test_aa_does_not_fail_and_a_gross_regression_does() -> None:
    gross = syn.Scenario("accuracy −20 pts", "gross", True, accuracy_drop=0.20)
    aa = next(s for s in syn.scenarios() if not s.regression)
    report = sim.run(experiments=20, requests=1_000, looks=2, seed=2, chosen=(gross, aa))
    by_name = {r.scenario.name: r for r in report.rows}
    assert by_name["accuracy −20 pts"].fail == 20
    assert all("accuracy_drop_max" in why for why in by_name["accuracy −20 pts"].reasons)
    assert by_name["A/A"].fail <= 1


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
