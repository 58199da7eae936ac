"""Decision quality of the rollout gates: the new rule's error rates and its speed-up to a correct PASS.

No broker: :func:`shadowlane.rollout.simulate.run` draws seeded experiments (up to 10,000 requests,
a look every 400, each stopped at its first PASS or FAIL) and judges the same data by today's rule
(alpha spending) and the new one (a confidence sequence). Rows:

- ``gates.<scenario>``: the new rule's wrong-verdict rate in % against its target (≤ 5: false FAIL
  on the A/A and the better candidate, false PASS on a regression); a regression also needs FAIL
  power ≥ 95 % by the horizon (in the verdict and the extras);
- ``gates.speedup.<scenario>``: today's median requests to a correct PASS against the new rule's
  (A/A and better), target ratio ≥ 2 (a censored median: the horizon, and the row says so).

The Wilson intervals, medians, p90s and shares by 2,000 / 10,000 are in the JSON extras. ``--quick``
runs 40 experiments per scenario, the full run 300.
"""

from __future__ import annotations

from shadowlane.rollout import simulate
from shadowlane.rollout.simulate_report import ERROR_TARGET, SPEEDUP_TARGET
from tests.bench.common import BenchResult


async def run(quick: bool) -> list[BenchResult]:
    report = simulate.run(experiments=40 if quick else 300)
    results = []
    common = {"experiments": report.experiments, "elapsed_s": round(report.elapsed_s, 1)}
    target = 100 * ERROR_TARGET
    for row in report.rows_of(report.new_rule):
        measured = 100 * row.wrong.rate
        wrong = "false PASS" if row.scenario.regression else "false FAIL"
        power = f", FAIL ≥ 95 % ({100 * row.by_horizon.rate:.1f})" if row.scenario.regression else ""
        results.append(
            BenchResult(
                name=f"gates.{row.scenario.name}",
                unit=f"% {wrong}",
                baseline_name="target",
                baseline=target,
                variant_name="new rule",
                variant=measured,
                ratio=measured / target,
                target=f"≤ {target:g} %{power}",
                passed=row.met,
                higher_is_better=False,
                extra={**row.as_dict(), **common},
            )
        )
    for s in report.speedups:
        today = s.today_median if s.today_median is not None else report.horizon
        new = s.new_median if s.new_median is not None else report.horizon
        results.append(
            BenchResult(
                name=f"gates.speedup.{s.scenario}",
                unit="median requests to PASS",
                baseline_name="today" + (" >" if s.today_median is None else ""),
                baseline=today,
                variant_name="new" + (" >" if s.new_median is None else ""),
                variant=new,
                ratio=s.ratio if s.ratio is not None else 0.0,
                target=f"today / new ≥ {SPEEDUP_TARGET:g}×",
                passed=s.met,
                higher_is_better=False,
                extra={**s.as_dict(), **common},
            )
        )
    return results
