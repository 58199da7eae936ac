"""Which error-rate thresholds a sample can prove: the requests after which the default look rule
(a confidence sequence tuned at 3,000) PASSes ``error_rate_max`` 0.5 % and ``error_rate_margin``
on windows holding exactly the expected error counts. ``docs/gates.md`` quotes this table;
``pytest tests/unit/rollout/test_feasibility.py -s`` prints it."""

from __future__ import annotations

import pytest

from shadowlane.contracts.flag_manifest import FlagSpec, Gates, Traffic
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.rollout.gates import evaluate
from shadowlane.rollout.looks import sequence_look
from tests.support.summaries import crafted_summary

TRAFFIC = Traffic(baseline_weight=0.95, canary_weight=0.05)
GRID = [round(200 * 1.05**k) for k in range(160)]  # 200 … ~470,000 requests, 5 % apart
BASE = crafted_summary("b", 0, 60_000, 300, seed=3)


def _window(n: int, rate: float) -> WindowSummary:
    errors = round(rate * n)
    return BASE.model_copy(update={"count": n, "joined": n, "shadow_errors": errors, "prod_errors": errors,
                                   "shadow_timeouts": 0})  # fmt: skip


def requests_to_prove(rate: float, **gates: float | None) -> int | None:
    """Fewest requests (on the grid) at which the gate PASSes, candidate and prod both at ``rate``."""
    spec = FlagSpec(traffic=TRAFFIC, gates=Gates.model_validate(gates))
    name = "error_rate_margin" if gates.get("error_rate_margin") is not None else "error_rate_max"
    for n in GRID:
        decision = evaluate(spec, _window(n, rate), look=sequence_look(n, 3_000), forecast=False)
        if next(g for g in decision.gates if g.name == name).verdict == "PASS":
            return n
    return None


@pytest.fixture(scope="module")
def table() -> dict[float, tuple[int | None, int | None, int | None]]:
    rows = {
        rate: (
            requests_to_prove(rate, error_rate_max=0.005),
            requests_to_prove(rate, error_rate_max=None, error_rate_margin=0.003),
            requests_to_prove(rate, error_rate_max=None, error_rate_margin=0.005),
        )
        for rate in (0.001, 0.002, 0.003, 0.004, 0.0045)
    }
    print("\nbase rate | error_rate_max 0.005 | margin 0.003 | margin 0.005")
    for rate, cells in rows.items():
        print(f"{rate:.2%} | " + " | ".join(f"{c:,}" if c else "> 470,000" for c in cells))
    return rows


def test_an_absolute_bound_near_prods_rate_needs_an_infeasible_sample(
    table: dict[float, tuple[int | None, int | None, int | None]],
) -> None:
    absolute = [table[r][0] for r in (0.001, 0.002, 0.003, 0.004, 0.0045)]
    assert all(a is not None for a in absolute)
    low, base, mid, high, near = (a or 0 for a in absolute)
    assert low < base < mid < high < near  # the closer prod's rate to the bound, the more requests
    assert 2_500 <= base <= 4_000  # 0.2 %: a few thousand requests (docs/gates.md)
    assert high > 40_000  # 0.4 % and 0.45 %: not within a shadow stage
    assert near > 150_000


def test_the_margin_form_stays_feasible_where_the_absolute_bound_does_not(
    table: dict[float, tuple[int | None, int | None, int | None]],
) -> None:
    for rate in (0.004, 0.0045):
        absolute, margin_3, margin_5 = table[rate]
        assert margin_3 is not None
        assert margin_5 is not None
        assert absolute is not None
        assert margin_5 < margin_3 < 10_000 < absolute
