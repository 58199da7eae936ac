"""Decision quality of the rollout gates: FAIL rate per synthetic scenario against its target.

No broker: :func:`shadowlane.rollout.simulate.run` draws seeded experiments (2,000 requests, 5 looks
with O'Brien-Fleming alpha spending) and judges them with the gate evaluator. One row per scenario:
"target" is the required FAIL rate in % (≥ 95 for a regression: power; ≤ 5 for the A/A: false
alarms), "gates" the measured one; the 95 % Wilson interval and the PASS / INCONCLUSIVE shares are
in the JSON extras. ``--quick`` runs 40 experiments per scenario, the full run 300.
"""

from __future__ import annotations

from shadowlane.rollout import simulate
from tests.bench.common import BenchResult


async def run(quick: bool) -> list[BenchResult]:
    report = simulate.run(experiments=40 if quick else 300)
    results = []
    for row in report.rows:
        target = 95.0 if row.scenario.regression else 5.0
        measured = 100 * row.fail_rate
        results.append(
            BenchResult(
                name=f"gates.{row.scenario.name}",
                unit="% FAIL",
                baseline_name="target",
                baseline=target,
                variant_name="gates",
                variant=measured,
                ratio=measured / target,
                target=f"{'≥' if row.scenario.regression else '≤'} {target:g} %",
                passed=row.met,
                higher_is_better=row.scenario.regression,
                extra={**row.as_dict(), "experiments": report.experiments, "elapsed_s": report.elapsed_s},
            )
        )
    return results
