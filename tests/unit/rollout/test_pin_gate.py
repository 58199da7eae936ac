"""The ``pin_mismatch_rate_over`` hard abort: one request served with other pins stops a rollout,
whatever the sample size; consistent pins leave the verdict to the other gates."""

from __future__ import annotations

from typing import Any

from shadowlane.contracts.flag_manifest import AbortRules, FlagSpec, Gates, HardAbortRule
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.rollout.gates import evaluate
from shadowlane.windows.accumulator import Accumulator
from tests.unit.rollout.test_gates import TRAFFIC, _comparisons


def _summary(n: int, mismatches: set[int], *, checked: bool = True, **knobs: Any) -> WindowSummary:
    comps = _comparisons(n, **knobs)
    acc = Accumulator(0, 60_000, (comps[0].candidate, comps[0].endpoint, comps[0].tenant))
    for i, c in enumerate(comps):
        if checked:
            bad = i in mismatches
            c = c.model_copy(update={"pin_mismatch": bad, "pin_mismatch_keys": ("model_rev",) if bad else ()})
        acc.add(c)
    return acc.summary()


def _fired(spec: FlagSpec, summary: WindowSummary) -> list[str]:
    return [a.kind for a in evaluate(spec, summary).aborts if a.fired]


def test_the_default_rule_aborts_on_one_mismatch() -> None:
    spec = FlagSpec(traffic=TRAFFIC)  # the defaults carry pin_mismatch_rate_over 0
    decision = evaluate(spec, _summary(2_000, {7}))
    assert decision.verdict == "FAIL"
    assert decision.hard_stop
    assert _fired(spec, _summary(2_000, {7})) == ["pin_mismatch_rate_over"]
    pins = next(a for a in decision.aborts if a.kind == "pin_mismatch_rate_over")
    assert pins.value == 1 / 2_000
    assert "any sample size" in pins.reason


def test_it_acts_below_min_samples() -> None:
    spec = FlagSpec(traffic=TRAFFIC)
    few = _summary(20, {3})  # min_samples is 200
    decision = evaluate(spec, few)
    assert (decision.verdict, decision.hard_stop) == ("FAIL", True)
    assert "pin_mismatch_rate_over" in decision.reason
    # every other rule still waits for min_samples
    assert [a.kind for a in decision.aborts if a.fired] == ["pin_mismatch_rate_over"]
    assert evaluate(spec, _summary(20, set())).verdict == "INCONCLUSIVE"


def test_consistent_pins_pass() -> None:
    spec = FlagSpec(traffic=TRAFFIC)
    consistent = _summary(2_000, set())
    decision = evaluate(spec, consistent)
    assert decision.verdict == "PASS"
    pins = next(a for a in decision.aborts if a.kind == "pin_mismatch_rate_over")
    assert (pins.fired, pins.value) == (False, 0.0)


def test_without_pin_checks_the_rule_is_quiet() -> None:
    spec = FlagSpec(traffic=TRAFFIC)
    decision = evaluate(spec, _summary(2_000, set(), checked=False))
    pins = next(a for a in decision.aborts if a.kind == "pin_mismatch_rate_over")
    assert not pins.fired
    assert "no candidate pin checks" in pins.reason
    assert decision.verdict == "PASS"


def test_a_tolerance_above_zero_is_honoured() -> None:
    rules = AbortRules(hard=(HardAbortRule(kind="pin_mismatch_rate_over", value=0.01),))
    spec = FlagSpec(traffic=TRAFFIC, gates=Gates(), abort_rules=rules)
    assert _fired(spec, _summary(2_000, set(range(10)))) == []  # 0.5 %
    assert _fired(spec, _summary(2_000, set(range(100)))) == ["pin_mismatch_rate_over"]  # 5 %
