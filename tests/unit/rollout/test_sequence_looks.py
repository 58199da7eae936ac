"""How the gates read a confidence-sequence look: held passes, exact rate bounds, hard aborts and
Bonferroni at the sequence's own levels (and that a fixed look does none of it)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.rollout.gates import HELD, WAIVED, Decision, GateResult, cleared, evaluate
from shadowlane.rollout.looks import fixed_look, look_alpha_for, sequence_look
from shadowlane.rollout.manifest import seed_spec
from shadowlane.stats.confidence_sequence import look_level
from tests.support.summaries import crafted_summary

SPEC = seed_spec()


def _window(n: int, shadow_errors: int, prod_errors: int) -> WindowSummary:
    base = crafted_summary("b", 0, 600_000, n, seed=11)
    return base.model_copy(update={"shadow_errors": shadow_errors, "prod_errors": prod_errors})


def _gate(d: Decision, name: str) -> GateResult:
    return next(g for g in d.gates if g.name == name)


def test_a_gate_that_passed_at_an_earlier_look_stays_passed_under_the_sequence() -> None:
    window = _window(1_000, 8, 8)  # 0.8 % errors, as prod: undecided against the 0.5 % bound
    held = frozenset({"error_rate_max"})
    fresh = _gate(evaluate(SPEC, window, look=sequence_look(1_000, 3_000)), "error_rate_max")
    assert fresh.verdict == "INCONCLUSIVE"
    kept = _gate(evaluate(SPEC, window, look=sequence_look(1_000, 3_000), held=held), "error_rate_max")
    assert kept.verdict == "PASS"
    assert HELD in kept.reason
    # other look rules hold nothing: a fixed look, and alpha spending's looks
    for look in (fixed_look(), look_alpha_for(1_000, 10_000, n_prev=600)):
        assert _gate(evaluate(SPEC, window, look=look, held=held), "error_rate_max").verdict != "PASS"


def test_a_pass_by_waiver_is_not_held() -> None:
    decision = evaluate(SPEC, _window(4_000, 8, 8), look=sequence_look(4_000, 3_000))
    waived = replace(
        decision, gates=tuple(replace(g, reason=f"{g.reason}; {WAIVED}") for g in decision.gates)
    )
    assert "error_rate_max" in cleared(decision)
    assert not cleared(waived)


def test_a_held_gate_still_fails_when_the_data_turn_against_it() -> None:
    window = _window(2_000, 60, 2)  # 3 % errors against prod's 0.1 %
    d = evaluate(SPEC, window, look=sequence_look(2_000, 3_000), held=frozenset({"error_rate_max"}))
    assert _gate(d, "error_rate_max").verdict == "FAIL"
    assert d.verdict == "FAIL"


def test_rates_take_the_exact_always_valid_bound_at_a_sequence_look_and_wilson_at_a_fixed_one() -> None:
    window = _window(4_000, 8, 8)
    exact = _gate(evaluate(SPEC, window, look=sequence_look(4_000, 3_000)), "error_rate_max")
    wilson = _gate(evaluate(SPEC, window, look=fixed_look()), "error_rate_max")
    assert "exact always-valid bound" in exact.statistic
    assert "Wilson" in wilson.statistic
    assert exact.verdict == "PASS"  # 8 errors in 4,000 prove ≤ 0.5 % at any look


@pytest.mark.parametrize(("errors", "fires_fixed", "fires_sequence"), [(34, True, False), (44, True, True)])
def test_a_hard_abort_at_a_sequence_look_needs_the_sequence_bound(
    errors: int, fires_fixed: bool, fires_sequence: bool
) -> None:
    """1.7 % errors in 2,000 (abort above 1 %): the fixed 95 % bound is past 1 %, the time-uniform one
    is not, so a rollout looking at every window does not roll back on it; 2.2 % does."""
    window = _window(2_000, errors, 2)

    def fired(decision: Decision) -> bool:
        return next(a for a in decision.aborts if a.kind == "error_rate_over").fired

    assert fired(evaluate(SPEC, window, look=fixed_look())) is fires_fixed
    assert fired(evaluate(SPEC, window, look=sequence_look(2_000, 3_000))) is fires_sequence


def test_bonferroni_at_a_sequence_look_is_the_sequence_at_alpha_over_g() -> None:
    d = evaluate(SPEC, _window(2_000, 4, 4), look=sequence_look(2_000, 3_000))
    judged = len(d.gates)  # the gates the manifest turns on: fixed for the stage
    fail_alpha = _gate(d, "error_rate_max").fail_alpha
    assert d.multiplicity == "bonferroni"
    assert fail_alpha == pytest.approx(look_level(2_000, 3_000, 0.05 / judged))
    assert fail_alpha is not None
    assert fail_alpha < d.look.alpha / judged  # stricter than splitting the look's nominal level
