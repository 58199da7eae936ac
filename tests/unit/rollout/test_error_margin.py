"""``error_rate_margin``: "no worse than prod by more than X", the form that can be proven when
prod's own error rate sits near an absolute bound (Newcombe's interval held to scipy's Wilson)."""

from __future__ import annotations

import math

import pytest
from scipy import stats  # type: ignore[import-untyped]

from shadowlane.contracts.flag_manifest import FlagSpec, Gates, Traffic
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.rollout.gates import GateResult, evaluate
from shadowlane.rollout.looks import fixed_look
from tests.support.summaries import crafted_summary

TRAFFIC = Traffic(baseline_weight=0.95, canary_weight=0.05)


def _window(n: int, shadow_errors: int, prod_errors: int) -> WindowSummary:
    base = crafted_summary("b", 0, 60_000, 300, seed=3)
    return base.model_copy(update={"count": n, "joined": n, "shadow_errors": shadow_errors,
                                   "prod_errors": prod_errors, "shadow_timeouts": 0})  # fmt: skip


def _gate(summary: WindowSummary, name: str, **gates: float | None) -> GateResult:
    spec = FlagSpec(traffic=TRAFFIC, gates=Gates.model_validate(gates))
    decision = evaluate(spec, summary, look=fixed_look())
    return next(g for g in decision.gates if g.name == name)


def _newcombe(x1: int, n1: int, x2: int, n2: int, conf: float) -> tuple[float, float]:
    l1, u1 = stats.binomtest(x1, n1).proportion_ci(conf, method="wilson")
    l2, u2 = stats.binomtest(x2, n2).proportion_ci(conf, method="wilson")
    p1, p2 = x1 / n1, x2 / n2
    return p1 - p2 - math.hypot(p1 - l1, u2 - p2), p1 - p2 + math.hypot(u1 - p1, p2 - l2)


def test_the_margin_is_off_by_default() -> None:
    names = {g.name for g in evaluate(FlagSpec(traffic=TRAFFIC), _window(4_000, 8, 8)).gates}
    assert "error_rate_max" in names
    assert "error_rate_margin" not in names


def test_near_its_bound_an_absolute_rate_stays_undecided_where_the_margin_passes() -> None:
    """Prod and candidate both at 0.45 %: 20,000 requests cannot prove ≤ 0.5 %, but they prove
    "no more than 0.5 points above prod"."""
    summary = _window(20_000, 90, 90)
    absolute = _gate(summary, "error_rate_max", error_rate_max=0.005)
    margin = _gate(summary, "error_rate_margin", error_rate_max=None, error_rate_margin=0.005)
    assert absolute.verdict == "INCONCLUSIVE"
    assert absolute.ci_high is not None
    assert absolute.ci_high > 0.005
    assert margin.verdict == "PASS"
    assert margin.metric == "error_rate_delta"
    assert margin.value == 0.0
    low, high = _newcombe(90, 20_000, 90, 20_000, margin.confidence)
    assert margin.ci_low == pytest.approx(low, abs=1e-12)
    assert margin.ci_high == pytest.approx(high, abs=1e-12)


def test_a_candidate_well_above_prod_fails_the_margin() -> None:
    margin = _gate(_window(4_000, 60, 8), "error_rate_margin", error_rate_margin=0.005)
    assert margin.verdict == "FAIL"
    assert margin.value == pytest.approx((60 - 8) / 4_000)
    assert margin.worse_low is not None
    assert margin.worse_low > 0


def test_the_margin_reads_as_yaml() -> None:
    gates = Gates.model_validate({"error_rate_max": None, "error_rate_margin": 0.003})
    assert gates.error_rate_margin == 0.003
    assert gates.error_rate_max is None
    with pytest.raises(ValueError, match="error_rate_margin"):
        Gates.model_validate({"error_rate_margin": -0.1})
