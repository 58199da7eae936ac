"""The way forward of an INCONCLUSIVE (shadowlane/rollout/forecast.py): who gets one, what moves it,
its time at the request rate, the alpha-spending limit, and its JSON."""

from __future__ import annotations

import orjson
import pytest

from shadowlane.contracts.flag_manifest import FlagSpec, Gates, Traffic
from shadowlane.rollout.forecast import NO_ALPHA, attach
from shadowlane.rollout.gates import Decision, FailRule, GateResult, evaluate
from shadowlane.rollout.looks import LookAlpha, look_alpha_for, sequence_look
from shadowlane.stats.distributions import norm_isf
from tests.support.summaries import crafted_summary

N, SE = 1_200, 0.01  # requests so far; the accuracy drop's standard error there


def _gate(value: float, *, name: str = "accuracy_drop_max", threshold: float = 0.02) -> GateResult:
    """An accuracy-drop gate at ``value`` with a symmetric interval of ``SE`` at the look's level."""
    look = _look()
    half = norm_isf(look.alpha) * SE
    return GateResult(name, "accuracy_drop", value, threshold, "max", "paired", value - half, value + half,
                      look.confidence, N, "INCONCLUSIVE", "straddles", 0.0, value - half, value + half,
                      look.alpha)  # fmt: skip


def _look(n: int = N) -> LookAlpha:
    return sequence_look(n, 3_000, index=n // 400)


def _decision(
    *gates: GateResult, look: LookAlpha | None = None, rule: FailRule = "worse_than_reference"
) -> Decision:
    why = "undecided: " + ", ".join(g.name for g in gates)
    return Decision("f", "INCONCLUSIVE", why, gates, (), False, False, N, 200, 0, 600_000, look or _look(),
                    rule, "per_gate")  # fmt: skip


def _summary(seconds: float = 600.0) -> object:
    return crafted_summary("c", 0, int(seconds * 1000), 50)


def test_decided_gates_and_decisions_carry_no_way_forward() -> None:
    spec = FlagSpec(traffic=Traffic(baseline_weight=0.95, canary_weight=0.05))
    green = evaluate(spec, crafted_summary("c", 0, 60_000, 3_000), look=_look(3_000))
    assert green.verdict == "PASS"
    assert (green.forward, green.blocking) == (None, ())
    assert all(g.forward is None for g in green.gates)
    held = evaluate(spec, crafted_summary("c", 0, 60_000, 600), look=_look(600))
    assert held.verdict == "INCONCLUSIVE"
    assert held.forward is not None
    for g in held.gates:  # only the undecided gates have one
        assert (g.forward is not None) == (g.verdict == "INCONCLUSIVE"), g.name
    assert set(held.blocking) == {g.name for g in held.gates if g.verdict == "INCONCLUSIVE"}
    assert (
        evaluate(spec, crafted_summary("c", 0, 60_000, 600), look=_look(600), forecast=False).forward is None
    )


def test_a_larger_margin_needs_fewer_requests() -> None:
    rate = crafted_summary("c", 0, 600_000, N)
    near = attach(_decision(_gate(0.0)), rate).forward
    far = attach(_decision(_gate(-0.015)), rate).forward
    assert near is not None
    assert far is not None
    assert near.heading == far.heading == "PASS"
    assert far.median is not None
    assert near.median is not None
    assert far.median < near.median
    assert far.chance is not None
    assert near.chance is not None
    assert far.chance >= near.chance


def test_a_gate_at_its_threshold_has_no_verdict_within_the_cap() -> None:
    summary = crafted_summary("c", 0, 600_000, N)
    # judged by its interval alone, a gate sitting on its threshold may never leave it
    forward = attach(_decision(_gate(0.02), rule="ci_beyond_threshold"), summary).forward
    assert forward is not None
    assert forward.high is None  # the slowest paths hover at the threshold for ever
    assert "beyond" in forward.reason
    assert forward.median is None or forward.median > 4 * N  # the typical one is far off, if any
    # by worse_than_reference (the default) it FAILs once the estimate strays past: prod is 2 points better
    worse = attach(_decision(_gate(0.02)), summary).forward
    assert worse is not None
    assert worse.heading == "FAIL"


def test_time_is_requests_over_the_window_rate() -> None:
    summary = crafted_summary("c", 0, 600_000, N)  # 1,200 requests in 10 minutes: 2 req/s
    decision = attach(_decision(_gate(-0.005)), summary)
    forward = decision.forward
    assert forward is not None
    assert forward.rate_per_s == pytest.approx(2.0)
    assert forward.median is not None
    assert forward.low is not None
    assert forward.high is not None
    assert forward.seconds_median == pytest.approx(forward.median / 2.0)
    assert (forward.seconds_low, forward.seconds_high) == pytest.approx(
        (forward.low / 2.0, forward.high / 2.0)
    )
    assert decision.reason.startswith("undecided: accuracy_drop_max blocks; ")
    assert "req/s" in decision.reason
    instant = attach(_decision(_gate(-0.005)), crafted_summary("c", 0, 0, N)).forward  # no duration
    assert instant is not None
    assert (instant.rate_per_s, instant.seconds_median) == (None, None)


def test_the_forecast_is_deterministic_and_spaced_like_the_looks() -> None:
    summary = crafted_summary("c", 0, 600_000, N)
    first, again = attach(_decision(_gate(0.0)), summary), attach(_decision(_gate(0.0)), summary)
    assert first.forward == again.forward
    assert first.forward is not None
    assert first.forward.low is not None
    assert first.forward.low % 400 == 0  # looks every 400 requests so far (n = 1,200 at look 3)


def test_alpha_spending_projects_to_its_planned_samples_and_says_when_none_is_left() -> None:
    summary = crafted_summary("c", 0, 600_000, N)
    spending = look_alpha_for(N, 6_000, n_prev=800)
    forward = attach(_decision(_gate(-0.01), look=spending), summary).forward
    assert forward is not None
    assert forward.cap == 6_000 - N
    assert forward.high is None or forward.high <= forward.cap
    spent = look_alpha_for(N, 1_000, n_prev=800)
    done = attach(_decision(_gate(-0.01), look=spent), summary)
    assert done.forward is not None
    assert done.forward.median is None
    assert done.forward.reason == NO_ALPHA
    assert NO_ALPHA in done.reason


def test_the_way_forward_is_json_ready() -> None:
    decision = attach(_decision(_gate(0.0), _gate(0.05, name="other")), crafted_summary("c", 0, 600_000, N))
    data = orjson.loads(orjson.dumps(decision.as_dict()))
    assert data["blocking"] == ["accuracy_drop_max", "other"]
    assert data["forward"]["reason"] == decision.reason.removeprefix(
        "undecided: accuracy_drop_max, other block; "
    )
    assert data["forward"]["heading"] == "FAIL"  # "other" sits far past its threshold
    assert {g["name"]: g["forward"]["heading"] for g in data["gates"]} == {
        "accuracy_drop_max": "PASS",
        "other": "FAIL",
    }


@pytest.mark.parametrize(
    "gates",
    [{"tool_success_min": 1.0}, {"lambda_flip_rate_max": 0.0}, {"error_rate_max": 0.0}],
    ids=["tool success 100 %", "no λ flip", "no error"],
)
def test_a_rate_bound_at_its_extreme_still_gets_a_way_forward(gates: dict[str, float]) -> None:
    """A manifest may ask for 100 % tool success or no error at all: the forecast must not fail on
    a rate bound at 0 or 1 (it used to raise inside the exact mixture)."""
    base = crafted_summary("c", 0, 600_000, 600, seed=4)
    counts = {"tool_calls": 600, "tool_valid": 597, "lambda_paired": 60, "lambda_flips": 2,
              "shadow_errors": 3, "prod_errors": 3}  # fmt: skip
    window = base.model_copy(update=counts)
    spec = FlagSpec(
        traffic=Traffic(baseline_weight=0.95, canary_weight=0.05), gates=Gates.model_validate(gates)
    )
    rules: tuple[FailRule, ...] = ("worse_than_reference", "ci_beyond_threshold")
    for rule in rules:
        d = evaluate(spec, window, look=_look(600), fail_rule=rule)
        assert d.verdict in ("INCONCLUSIVE", "FAIL")
        if d.verdict == "INCONCLUSIVE":
            assert d.forward is not None


def test_a_soft_abort_hold_names_its_rule_as_blocking() -> None:
    """Every gate passes but a soft rule holds: the way forward names the rule, not "nothing"."""
    spec = FlagSpec.model_validate({
        "traffic": {"baseline_weight": 0.95, "canary_weight": 0.05},
        "abort_rules": {"soft": [{"kind": "latency_p95_uplift_over", "value": 0.05}]},
    })  # fmt: skip
    # p95 latency +10 %: within the 15 % gate, beyond the soft rule's 5 %
    d = evaluate(spec, crafted_summary("c", 0, 600_000, 3_000, latency_ms=(40.0, 44.0)), look=_look(3_000))
    assert d.verdict == "INCONCLUSIVE"
    assert d.soft_hold
    assert "latency_p95_uplift_over" in d.blocking
    assert d.forward is not None
    assert "soft abort" in d.forward.reason
