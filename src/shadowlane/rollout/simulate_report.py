"""The figures of a gate simulation: time to a correct verdict, wrong-verdict rates, the speed-up.

One :class:`Row` holds the outcomes of one scenario's experiments under one verdict rule (each
experiment's verdict and the requests it had taken then) and derives from them, with 95 % Wilson
intervals on every rate:

- **requests to the first correct verdict** (PASS for the A/A and the better candidate, FAIL for a
  regression): median and p90 over all experiments. An experiment that never reaches it (a wrong
  verdict stopped it, or it stayed INCONCLUSIVE) counts as beyond the horizon, so a quantile that
  lands on such experiments is *censored*: reported as ``None`` (markdown ">10,000"). A quantile is
  the smallest look ``n`` by which at least that share of experiments had decided correctly;
- the share decided correctly by 2,000 requests and by the horizon (for a regression the latter is
  the FAIL power, target ≥ 0.95);
- the wrong-verdict rate: false FAIL for a PASS scenario, false PASS for a regression (target ≤ 0.05).

A :class:`Speedup` is, per PASS scenario, today's median requests to a correct PASS over the new
rule's, from the same run (the same experiments judged by both rules). Today's median censored
makes the ratio a lower bound (horizon / new median); the new one censored leaves it undefined.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shadowlane.rollout.synthetic import Scenario
from shadowlane.stats.proportions import wilson_interval
from shadowlane.stats.quantiles import quantile

MILESTONE = 2_000  # "decided by 2,000 requests": the earlier horizon
ERROR_TARGET = 0.05  # false FAIL (PASS scenarios) and false PASS (regressions) at most
POWER_TARGET = 0.95  # FAIL power on a regression, by the horizon, at least
SPEEDUP_TARGET = 2.0  # today's median requests to a correct PASS / the new rule's, at least


@dataclass(frozen=True, slots=True)
class Rate:
    """``k`` of ``n`` with its 95 % Wilson interval."""

    k: int
    n: int

    @property
    def rate(self) -> float:
        return self.k / self.n

    @property
    def ci(self) -> tuple[float, float]:
        w = wilson_interval(self.k, self.n)
        return w.ci_low, w.ci_high

    def as_dict(self) -> dict[str, Any]:
        return {"rate": round(self.rate, 4), "count": self.k, "ci95": [round(v, 4) for v in self.ci]}

    def cell(self) -> str:
        low, high = self.ci
        return f"{self.rate:.3f} [{low:.3f}, {high:.3f}]"


def censored_quantile(to_correct: Sequence[float], q: float) -> int | None:
    """The ``q`` quantile of the requests to a correct verdict (the one percentile rank rule,
    :func:`shadowlane.stats.quantiles.quantile`; an experiment that never decided correctly is
    ``inf``); None when it is censored (beyond the horizon)."""
    value = quantile(to_correct, q)
    return None if value is None or math.isinf(value) else int(value)


@dataclass(frozen=True, slots=True)
class Row:
    """One scenario under one rule: per experiment its verdict and the requests at it."""

    scenario: Scenario
    rule: str
    horizon: int
    verdicts: tuple[str, ...]  # PASS | FAIL | INCONCLUSIVE (after the last look)
    decided_n: tuple[int, ...]  # requests when it decided (the last look when it did not)
    reasons: dict[str, int] = field(default_factory=dict)  # what failed, over the FAILs

    @property
    def experiments(self) -> int:
        return len(self.verdicts)

    @property
    def to_correct(self) -> tuple[float, ...]:
        """Requests to the correct verdict per experiment, ``inf`` beyond the horizon."""
        right = self.scenario.correct
        return tuple(
            float(n) if v == right else math.inf for v, n in zip(self.verdicts, self.decided_n, strict=True)
        )

    @property
    def median(self) -> int | None:
        return censored_quantile(self.to_correct, 0.5)

    @property
    def p90(self) -> int | None:
        return censored_quantile(self.to_correct, 0.9)

    def correct_by(self, n: int) -> Rate:
        return Rate(sum(x <= n for x in self.to_correct), self.experiments)

    @property
    def milestone(self) -> int:
        """2,000 requests, or the horizon when it comes first."""
        return min(MILESTONE, self.horizon)

    @property
    def by_milestone(self) -> Rate:
        return self.correct_by(self.milestone)

    @property
    def by_horizon(self) -> Rate:
        return self.correct_by(self.horizon)

    @property
    def wrong(self) -> Rate:
        """False FAIL (PASS scenarios) or false PASS (regressions)."""
        return Rate(self.verdicts.count(self.scenario.wrong), self.experiments)

    @property
    def inconclusive(self) -> Rate:
        return Rate(self.verdicts.count("INCONCLUSIVE"), self.experiments)

    @property
    def error_met(self) -> bool:
        return self.wrong.rate <= ERROR_TARGET

    @property
    def power_met(self) -> bool | None:
        """FAIL power ≥ 0.95 by the horizon (None: no power target, a PASS scenario)."""
        return self.by_horizon.rate >= POWER_TARGET if self.scenario.regression else None

    @property
    def met(self) -> bool:
        return self.error_met and self.power_met is not False

    def as_dict(self) -> dict[str, Any]:
        s, wrong = self.scenario, "false_pass" if self.scenario.regression else "false_fail"
        out: dict[str, Any] = {
            "scenario": s.name, "definition": s.description, "rule": self.rule, "correct": s.correct,
            "experiments": self.experiments, "horizon": self.horizon,
            "median_n_to_correct": self.median, "p90_n_to_correct": self.p90,
            "censored": {"median": self.median is None, "p90": self.p90 is None},
            "milestone": self.milestone, "correct_by_milestone": self.by_milestone.as_dict(),
            "correct_by_horizon": self.by_horizon.as_dict(),
            wrong: self.wrong.as_dict(), "inconclusive": self.inconclusive.as_dict(),
            "targets": _targets(s), "error_met": self.error_met, "met": self.met,
            "fail_reasons": self.reasons,
        }  # fmt: skip
        if s.regression:
            out["fail_power"] = self.by_horizon.as_dict()
            out["power_met"] = self.power_met
        return out


@dataclass(frozen=True, slots=True)
class Speedup:
    """Today's median requests to a correct PASS over the new rule's, on one PASS scenario."""

    scenario: str
    today_median: int | None
    new_median: int | None
    horizon: int

    @property
    def ratio(self) -> float | None:
        """The ratio; a lower bound when today's median is censored; None when the new one is."""
        if self.new_median is None:
            return None
        return (self.today_median if self.today_median is not None else self.horizon) / self.new_median

    @property
    def at_least(self) -> bool:
        return self.today_median is None and self.new_median is not None

    @property
    def met(self) -> bool:
        return self.ratio is not None and self.ratio >= SPEEDUP_TARGET

    def text(self) -> str:
        if self.ratio is None:
            return "undefined (the new rule's median is beyond the horizon)"
        return f"{'> ' if self.at_least else ''}{self.ratio:.2f}×"

    def as_dict(self) -> dict[str, Any]:
        ratio = None if self.ratio is None else round(self.ratio, 3)
        return {
            "scenario": self.scenario, "today_median": self.today_median, "new_median": self.new_median,
            "ratio": ratio, "ratio_is_lower_bound": self.at_least, "target": f"≥ {SPEEDUP_TARGET:g}×",
            "met": self.met,
        }  # fmt: skip


def speedups(rows: Sequence[Row], today: str, new: str) -> tuple[Speedup, ...]:
    """One :class:`Speedup` per PASS scenario judged by both rules."""
    by = {(r.scenario.name, r.rule): r for r in rows}
    out = []
    for r in rows:
        if r.rule == new and not r.scenario.regression and (r.scenario.name, today) in by:
            out.append(Speedup(r.scenario.name, by[r.scenario.name, today].median, r.median, r.horizon))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Report:
    rows: tuple[Row, ...]
    speedups: tuple[Speedup, ...]
    experiments: int
    horizon: int
    look_every: int
    looks: tuple[int, ...]
    seed: int
    rules: tuple[dict[str, Any], ...]  # each rule's definition (name, looks, ΔS interval, ...)
    new_rule: str
    elapsed_s: float

    def rows_of(self, rule: str) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.rule == rule)

    @property
    def new_met(self) -> bool:
        """The new rule meets every error-rate target (false verdicts ≤ 5 %, power ≥ 95 %)."""
        chosen = self.rows_of(self.new_rule)
        return bool(chosen) and all(r.met for r in chosen)

    def as_dict(self) -> dict[str, Any]:
        return {
            "experiments": self.experiments, "horizon": self.horizon, "look_every": self.look_every,
            "looks": list(self.looks), "seed": self.seed, "milestone": min(MILESTONE, self.horizon),
            "rules": list(self.rules),
            "new_rule": self.new_rule, "new_rule_error_targets_met": self.new_met,
            "speedups": [s.as_dict() for s in self.speedups], "elapsed_s": round(self.elapsed_s, 1),
            "rows": [r.as_dict() for r in self.rows],
        }  # fmt: skip


def _targets(s: Scenario) -> str:
    if s.regression:
        return f"false PASS ≤ {ERROR_TARGET * 100:g} %, FAIL ≥ {POWER_TARGET * 100:g} % by the horizon"
    return f"false FAIL ≤ {ERROR_TARGET * 100:g} %"


def _n(value: int | None, horizon: int) -> str:
    return f"{value:,}" if value is not None else f">{horizon:,}"


def markdown(report: Report) -> str:
    """The tables for the docs: per scenario and rule, then the speed-up per PASS scenario."""
    h, early = report.horizon, min(MILESTONE, report.horizon)
    lines = [
        f"| scenario | rule | correct | median n | p90 n | correct by {early:,} | correct by {h:,} "
        "| false verdict | targets | met |",
        "|---" * 10 + "|",
    ]
    for r in report.rows:
        wrong = f"{'PASS' if r.scenario.regression else 'FAIL'} {r.wrong.cell()}"
        lines.append(
            f"| {r.scenario.name} | {r.rule} | {r.scenario.correct} | {_n(r.median, h)} | {_n(r.p90, h)} | "
            f"{r.by_milestone.cell()} | {r.by_horizon.cell()} | {wrong} | {_targets(r.scenario)} | "
            f"{'yes' if r.met else 'NO'} |"
        )
    if report.speedups:
        lines += [
            "",
            "| PASS scenario | today: median n to PASS | new: median n to PASS | today / new "
            "| target | met |",
            "|---" * 6 + "|",
        ]
        for s in report.speedups:
            lines.append(
                f"| {s.scenario} | {_n(s.today_median, h)} | {_n(s.new_median, h)} | {s.text()} | "
                f"≥ {SPEEDUP_TARGET:g}× | {'yes' if s.met else 'NO'} |"
            )
    defined = "; ".join(f"**{d['name']}**: {d['definition']}" for d in report.rules)
    seen = {r.scenario.name: r.scenario.description for r in report.rows}
    scenarios = "; ".join(f"**{name}**: {text}" for name, text in seen.items())
    looks = f"looks every {report.look_every:,} requests up to {h:,}"
    lines.append(
        f"\n{report.experiments} seeded experiments per scenario (seed {report.seed}), {looks}; an "
        f"experiment stops at its first PASS or FAIL, and one that never reaches the correct verdict "
        f'counts as beyond {h:,} (">{h:,}"). Every rule judges the same experiments. Rates with '
        f"95 % Wilson intervals. Scenarios: {scenarios}. Rules: {defined}. Ran in {report.elapsed_s:.0f} s."
    )
    return "\n".join(lines)
