"""Decision quality of the rollout gates: seeded synthetic experiments judged by verdict rules.

Each experiment draws up to 10,000 paired requests (the horizon) for prod, the noise-floor
baseline (prod's model replayed) and the candidate, and looks every 400 requests (a window): the
cumulative, exactly merged summary of the requests so far goes to
:func:`shadowlane.rollout.gates.evaluate` under each :class:`Rule`. An experiment stops, per rule,
at its first PASS or FAIL, as a staged rollout does; otherwise it is INCONCLUSIVE at the horizon.
Every rule judges the same experiments (the same summary at each look), so their differences are
the rules' alone.

Two rules by default (``--compare`` adds :data:`ABLATIONS`):

- :data:`TODAY`: the rule before #22: O'Brien-Fleming-type alpha spending over the whole run (the
  horizon as the planned samples, its most favourable plan), union bound (or, ``exact=True``, the
  exact group-sequential levels), the conservative interval of the excess ΔS, FAIL tests per gate,
  and every gate must pass at one look;
- :data:`NEW` (the defaults now): the always-valid confidence sequence tuned at 15 × ``min_samples``
  (3,000 requests) with exact rate bounds, FAIL tests at α / G (Bonferroni), and a gate that
  passed at an earlier look stays passed (``held``); the excess-ΔS interval stays the distribution-
  free one (the Price-Bonett ablations show what a narrower, not valid, interval would gain).

The synthetic requests and their aggregation: :mod:`shadowlane.rollout.synthetic`; the figures
(time to a correct verdict, wrong-verdict rates, the speed-up): :mod:`shadowlane.rollout.simulate_report`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shadowlane.contracts.flag_manifest import FlagSpec
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.rollout.gate_stats import ExcessInterval
from shadowlane.rollout.gates import Decision, FailRule, Multiplicity, cleared, evaluate
from shadowlane.rollout.looks import (
    SEQUENCE_PLANNED_PER_MIN_SAMPLES,
    LookAlpha,
    LookRule,
    look_schedule,
    sequence_look,
)
from shadowlane.rollout.manifest import seed_spec
from shadowlane.rollout.simulate_report import Report, Row, speedups
from shadowlane.rollout.simulate_report import markdown as markdown  # the table: simulate.markdown
from shadowlane.rollout.synthetic import Population, Requests, Scenario, accumulate, generate, scenarios
from shadowlane.windows.accumulator import Accumulator

HORIZON = 10_000
LOOK_EVERY = 400


@dataclass(frozen=True, slots=True)
class Rule:
    """How the gates judge: which look levels, which excess-ΔS interval, which FAIL rule."""

    name: str
    look_rule: LookRule
    excess_interval: ExcessInterval
    fail_rule: FailRule = "worse_than_reference"
    multiplicity: Multiplicity = "bonferroni"
    hold_passes: bool = True  # a gate that PASSed at an earlier look stays PASS (evaluate's ``held``)

    def judge(
        self, spec: FlagSpec, summary: WindowSummary, look: LookAlpha, held: frozenset[str] = frozenset()
    ) -> Decision:
        return evaluate(
            spec,
            summary,
            look=look,
            fail_rule=self.fail_rule,
            multiplicity=self.multiplicity,
            excess_interval=self.excess_interval,
            held=held if self.hold_passes else frozenset(),
            forecast=False,
        )

    def definition(self, horizon: int, min_samples: int, exact: bool) -> str:
        if self.look_rule == "alpha_spending":
            kind = "exact group-sequential levels" if exact else "union bound"
            looks = f"O'Brien-Fleming alpha spending over {horizon:,} planned requests ({kind})"
        else:
            planned = SEQUENCE_PLANNED_PER_MIN_SAMPLES * min_samples
            looks = f"always-valid confidence sequence tuned at {planned:,} requests"
        interval = "Price-Bonett" if self.excess_interval == "price_bonett" else "conservative"
        held = "; a gate that passed stays passed" if self.hold_passes else "; every gate passes at one look"
        return (
            f"{looks}, α = 0.05 one-sided; {interval} excess-ΔS intervals; FAIL rule "
            f"{self.fail_rule}, {self.multiplicity.replace('_', ' ')}{held}"
        )

    def as_dict(self, horizon: int, min_samples: int, exact: bool) -> dict[str, Any]:
        return {
            "name": self.name, "look_rule": self.look_rule, "excess_interval": self.excess_interval,
            "fail_rule": self.fail_rule, "multiplicity": self.multiplicity, "hold_passes": self.hold_passes,
            "definition": self.definition(horizon, min_samples, exact),
        }  # fmt: skip


TODAY = Rule("today", "alpha_spending", "conservative", multiplicity="per_gate", hold_passes=False)
NEW = Rule("new", "confidence_sequence", "conservative")
ABLATIONS: tuple[Rule, ...] = (
    Rule("new, no held passes", "confidence_sequence", "conservative", hold_passes=False),
    Rule("new, per-gate FAIL", "confidence_sequence", "conservative", multiplicity="per_gate"),
    Rule("today's looks, rest new", "alpha_spending", "conservative"),
    Rule("new, Price-Bonett ΔS (not valid at sparse percentiles)", "confidence_sequence", "price_bonett"),
    Rule(
        "today, Price-Bonett ΔS", "alpha_spending", "price_bonett", multiplicity="per_gate", hold_passes=False
    ),
)
DEFAULT_RULES: tuple[Rule, ...] = (TODAY, NEW)
ALL_RULES: tuple[Rule, ...] = (*DEFAULT_RULES, *ABLATIONS)

Outcome = tuple[str, int, str]  # verdict, requests when decided, what failed


def default_spec() -> FlagSpec:
    """The seed's gates and aborts (``deploy/flags/feature_flags.yml`` spells out these defaults)."""
    return seed_spec()


def look_points(horizon: int, look_every: int) -> tuple[int, ...]:
    """Every ``look_every`` requests up to the horizon, and the horizon itself."""
    points = list(range(look_every, horizon + 1, look_every))
    return tuple(points if points and points[-1] == horizon else [*points, horizon])


def schedule(
    rule: Rule, looks_n: Sequence[int], horizon: int, min_samples: int, exact: bool
) -> tuple[LookAlpha, ...]:
    """The level of each look under the rule's look rule."""
    if rule.look_rule == "alpha_spending":
        return look_schedule(looks_n, horizon, exact=exact)
    planned = SEQUENCE_PLANNED_PER_MIN_SAMPLES * min_samples
    return tuple(sequence_look(n, planned, index=k + 1) for k, n in enumerate(looks_n))


def run(
    *,
    experiments: int = 300,
    requests: int = HORIZON,
    look_every: int = LOOK_EVERY,
    seed: int = 5,
    rules: Sequence[Rule] = DEFAULT_RULES,
    exact: bool = False,
    chosen: Sequence[Scenario] | None = None,
    spec: FlagSpec | None = None,
    population: Population | None = None,
    on_experiment: Callable[[], None] | None = None,
) -> Report:
    """Run every scenario ``experiments`` times (seeded) up to ``requests``, judged by each rule.
    One scenario's requests are in memory at a time. ``on_experiment`` is called after each
    experiment (progress)."""
    started = time.monotonic()
    spec, pop = spec or default_spec(), population or Population()
    looks_n = look_points(requests, look_every)
    levels = [schedule(rule, looks_n, requests, spec.min_samples, exact) for rule in rules]
    rows = []
    for i, scenario in enumerate(chosen or scenarios()):
        data = generate(scenario, pop, np.random.default_rng([seed, i]), experiments, requests)
        per_rule: list[list[Outcome]] = [[] for _ in rules]
        for e in range(experiments):
            for j, outcome in enumerate(judge_experiment(spec, data, e, looks_n, rules, levels)):
                per_rule[j].append(outcome)
            if on_experiment is not None:
                on_experiment()
        del data
        for rule, outcomes in zip(rules, per_rule, strict=True):
            fails = Counter(why for v, _, why in outcomes if v == "FAIL")
            verdicts, decided = tuple(v for v, _, _ in outcomes), tuple(n for _, n, _ in outcomes)
            rows.append(Row(scenario, rule.name, requests, verdicts, decided, dict(fails.most_common())))
    return Report(
        rows=tuple(rows),
        speedups=speedups(rows, TODAY.name, NEW.name),
        experiments=experiments,
        horizon=requests,
        look_every=look_every,
        looks=looks_n,
        seed=seed,
        rules=tuple(rule.as_dict(requests, spec.min_samples, exact) for rule in rules),
        new_rule=NEW.name,
        elapsed_s=time.monotonic() - started,
    )


def judge_experiment(
    spec: FlagSpec,
    data: Requests,
    e: int,
    looks_n: Sequence[int],
    rules: Sequence[Rule],
    levels: Sequence[Sequence[LookAlpha]],
) -> list[Outcome]:
    """Experiment ``e`` judged by every rule at every look until each has a PASS or FAIL: each look
    adds the requests since the previous one and every pending rule judges that one summary."""
    out: list[Outcome | None] = [None] * len(rules)
    held: list[frozenset[str]] = [frozenset()] * len(rules)
    acc: Accumulator | None = None
    previous = 0
    for k, n in enumerate(looks_n):
        acc = accumulate(data, e, n, into=acc, start=previous)
        previous = n
        summary = acc.summary()
        for j, rule in enumerate(rules):
            if out[j] is None:
                d = rule.judge(spec, summary, levels[j][k], held[j])
                held[j] |= cleared(d)
                if d.verdict != "INCONCLUSIVE":
                    why = "hard abort" if d.hard_stop else ",".join(g.name for g in d.failed)
                    out[j] = (d.verdict, n, why)
        if all(o is not None for o in out):
            break
    return [o if o is not None else ("INCONCLUSIVE", looks_n[-1], "") for o in out]
