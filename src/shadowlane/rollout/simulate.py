"""Decision quality of the rollout gates: many seeded synthetic experiments → power and false alarms.

Each experiment draws 2,000 paired requests for prod, the noise-floor baseline (prod's model
replayed) and the candidate, aggregates the first ``n`` into a ``WindowSummary`` at every look
(5 looks of 400 by default: the cumulative, exactly merged summary of the windows so far) and calls
:func:`shadowlane.rollout.gates.evaluate` with that look's alpha-spending level (O'Brien-Fleming-type,
union bound, α = 0.05 over the 2,000 planned requests). An experiment stops at its first PASS or
FAIL, as a staged rollout does; its outcome is that verdict, or INCONCLUSIVE after the last look.

The synthetic requests and their aggregation: :mod:`shadowlane.rollout.synthetic`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from shadowlane.contracts.flag_manifest import FlagSpec, Traffic
from shadowlane.rollout.gates import FailRule, Multiplicity, evaluate
from shadowlane.rollout.looks import LookAlpha, look_schedule
from shadowlane.rollout.synthetic import Population, Requests, Scenario, generate, scenarios, summary_at
from shadowlane.stats.proportions import wilson_interval

Bools = NDArray[np.bool_]
Floats = NDArray[np.float64]


Variant = tuple[FailRule, Multiplicity]
DEFAULT_VARIANT: Variant = ("worse_than_reference", "per_gate")
ALL_VARIANTS: tuple[Variant, ...] = (
    ("worse_than_reference", "per_gate"),
    ("ci_beyond_threshold", "per_gate"),
    ("worse_than_reference", "bonferroni"),
    ("ci_beyond_threshold", "bonferroni"),
)


@dataclass(frozen=True, slots=True)
class Row:
    """Outcomes of one scenario under one verdict rule."""

    scenario: Scenario
    variant: Variant
    experiments: int
    fail: int
    passed: int
    inconclusive: int
    fail_ci: tuple[float, float]
    mean_n_at_fail: float | None
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def fail_rate(self) -> float:
        return self.fail / self.experiments

    @property
    def met(self) -> bool:
        return self.fail_rate >= 0.95 if self.scenario.regression else self.fail_rate <= 0.05

    def as_dict(self) -> dict[str, Any]:
        s = self.scenario
        return {
            "scenario": s.name, "definition": s.description, "fail_rule": self.variant[0],
            "multiplicity": self.variant[1], "target": _target(s), "fail_rate": round(self.fail_rate, 4),
            "fail_ci95": [round(v, 4) for v in self.fail_ci],
            "pass_rate": round(self.passed / self.experiments, 4),
            "inconclusive_rate": round(self.inconclusive / self.experiments, 4), "met": self.met,
            "mean_n_at_fail": self.mean_n_at_fail, "fail_reasons": self.reasons,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Report:
    rows: tuple[Row, ...]
    experiments: int
    requests: int
    looks: tuple[int, ...]
    seed: int
    spending: str
    elapsed_s: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "experiments": self.experiments, "requests": self.requests, "looks": list(self.looks),
            "seed": self.seed, "spending": self.spending, "elapsed_s": round(self.elapsed_s, 1),
            "rows": [r.as_dict() for r in self.rows],
        }  # fmt: skip


def _target(s: Scenario) -> str:
    return "FAIL ≥ 0.95" if s.regression else "false FAIL ≤ 0.05"


def default_spec() -> FlagSpec:
    """The seed's gates and aborts (``deploy/flags/feature_flags.yml`` spells out these defaults)."""
    return FlagSpec(traffic=Traffic(baseline_weight=0.95, canary_weight=0.05))


def run(
    *,
    experiments: int = 300,
    requests: int = 2_000,
    looks: int = 5,
    seed: int = 5,
    variants: Sequence[Variant] = (DEFAULT_VARIANT,),
    exact: bool = False,
    chosen: Sequence[Scenario] | None = None,
    spec: FlagSpec | None = None,
    population: Population | None = None,
    on_experiment: Callable[[], None] | None = None,
) -> Report:
    """Run every scenario ``experiments`` times (seeded), judged by each verdict variant.
    ``on_experiment`` is called after each experiment (progress)."""
    started = time.monotonic()
    spec, pop = spec or default_spec(), population or Population()
    looks_n = tuple(requests * (k + 1) // looks for k in range(looks))
    schedule = look_schedule(looks_n, requests, exact=exact)
    rows = []
    for i, scenario in enumerate(chosen or scenarios()):
        data = generate(scenario, pop, np.random.default_rng([seed, i]), experiments, requests)
        outcomes = _outcomes(spec, data, experiments, looks_n, schedule, variants, on_experiment)
        for variant, verdicts in zip(variants, outcomes, strict=True):
            count = Counter(v for v, _, _ in verdicts)
            fails = [(n, why) for v, n, why in verdicts if v == "FAIL"]
            ci = wilson_interval(count["FAIL"], experiments)
            mean_n = float(np.mean([n for n, _ in fails])) if fails else None
            reasons = dict(Counter(why for _, why in fails).most_common())
            tally = (count["FAIL"], count["PASS"], count["INCONCLUSIVE"])
            rows.append(Row(scenario, variant, experiments, *tally, (ci.ci_low, ci.ci_high), mean_n, reasons))
    kind = "exact group-sequential levels" if exact else "union bound"
    spending = f"O'Brien-Fleming-type alpha spending, α = 0.05 one-sided over {requests} requests, {kind}"
    return Report(tuple(rows), experiments, requests, looks_n, seed, spending, time.monotonic() - started)


def _outcomes(
    spec: FlagSpec,
    data: Requests,
    experiments: int,
    looks_n: Sequence[int],
    schedule: Sequence[LookAlpha],
    variants: Sequence[Variant],
    on_experiment: Callable[[], None] | None = None,
) -> list[list[tuple[str, int, str]]]:
    """Per variant and experiment: (verdict, requests when decided, what failed). Stops at PASS/FAIL."""
    out: list[list[tuple[str, int, str]]] = [[] for _ in variants]
    for e in range(experiments):
        pending = dict(enumerate(variants))
        for n, look in zip(looks_n, schedule, strict=True):
            summary = summary_at(data, e, n)
            for j, (rule, multiplicity) in list(pending.items()):
                d = evaluate(spec, summary, look=look, fail_rule=rule, multiplicity=multiplicity)
                if d.verdict != "INCONCLUSIVE":
                    why = "hard abort" if d.hard_stop else ",".join(g.name for g in d.failed)
                    out[j].append((d.verdict, n, why))
                    del pending[j]
            if not pending:
                break
        for j in pending:
            out[j].append(("INCONCLUSIVE", looks_n[-1], ""))
        if on_experiment is not None:
            on_experiment()
    return out


def markdown(report: Report) -> str:
    """The decision-quality table, ready for the README."""
    several = len({r.variant for r in report.rows}) > 1
    head = "| scenario | definition |" + (" FAIL rule | multiplicity |" if several else "")
    lines = [
        head + " target | FAIL rate [95 % CI] | PASS | INCONCLUSIVE | mean n at FAIL | met |",
        "|---" * (head.count("|") + 5) + "|",
    ]
    for r in report.rows:
        low, high = r.fail_ci
        method = f" {r.variant[0]} | {r.variant[1]} |" if several else ""
        mean_n = f"{r.mean_n_at_fail:,.0f}" if r.mean_n_at_fail is not None else "–"
        lines.append(
            f"| {r.scenario.name} | {r.scenario.description} |{method} {_target(r.scenario)} | "
            f"{r.fail_rate:.3f} [{low:.3f}, {high:.3f}] | {r.passed / r.experiments:.3f} | "
            f"{r.inconclusive / r.experiments:.3f} | {mean_n} | {'yes' if r.met else 'NO'} |"
        )
    lines.append(
        f"\n{report.experiments} seeded experiments per scenario (seed {report.seed}), {report.requests} "
        f"requests each, looks at {', '.join(map(str, report.looks))} requests; {report.spending}; "
        f"ran in {report.elapsed_s:.0f} s."
    )
    return "\n".join(lines)
