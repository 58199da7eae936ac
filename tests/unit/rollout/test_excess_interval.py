"""Why the excess-ΔS interval stays the distribution-free one: on equal arms whose p95 sits at the
edge of the off-topic answers (the synthetic population), the Price-Bonett interval excludes the
true difference 0 far more often than its level allows; the conservative interval does not."""

from __future__ import annotations

import numpy as np
import pytest

from shadowlane.rollout.gate_stats import ExcessInterval, Window, delta_s
from shadowlane.rollout.gates import evaluate
from shadowlane.rollout.looks import sequence_look
from shadowlane.rollout.manifest import seed_spec
from shadowlane.rollout.synthetic import Population, generate, scenarios, summary_at
from shadowlane.stats.confidence_sequence import look_level

RUNS, N = 2_000, 1_600


@pytest.fixture(scope="module")
def misses() -> dict[ExcessInterval, float]:
    """Share of A/A windows (1,600 requests) whose excess-ΔS p95 interval, at the sequence's level
    for that look, lies wholly above or below 0."""
    aa = next(s for s in scenarios() if s.name == "A/A")
    data = generate(aa, Population(), np.random.default_rng(22), RUNS, N)
    conf = 1 - 2 * look_level(N, 3_000, 0.05)
    windows = [Window(summary_at(data, e, N)) for e in range(RUNS)]
    out: dict[ExcessInterval, float] = {}
    for method in ("conservative", "price_bonett"):
        compute = delta_s(0.95, method)
        stats = [compute(w, conf) for w in windows]
        out[method] = sum(not isinstance(st, str) and (st.low > 0 or st.high < 0) for st in stats) / RUNS
    return out


def test_price_bonett_misses_the_true_excess_far_more_often_than_its_level(
    misses: dict[ExcessInterval, float],
) -> None:
    nominal = 2 * look_level(N, 3_000, 0.05)  # two-sided: 0.5 %
    assert misses["price_bonett"] > 2.5 * nominal  # measured 3.5-5×
    assert misses["conservative"] <= nominal


def test_the_gates_use_the_conservative_interval_by_default() -> None:
    aa = next(s for s in scenarios() if s.name == "A/A")
    summary = summary_at(generate(aa, Population(), np.random.default_rng(1), 1, 800), 0, 800)
    decision = evaluate(seed_spec(), summary, look=sequence_look(800, 3_000), forecast=False)
    p95 = next(g for g in decision.gates if g.name == "delta_s.p95_max")
    assert "conservative interval" in p95.statistic
