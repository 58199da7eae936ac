"""``shadowlane simulate-gates``: the rollout gates' time to a correct verdict and their error rates,
on seeded synthetic experiments.

Runs :func:`shadowlane.rollout.simulate.run` (every scenario ``--experiments`` times up to
``--requests`` requests, a look every ``--look-every``, each experiment stopping at its first PASS
or FAIL) under today's rule and the new one, and prints the markdown tables (requests to the
correct verdict, the shares decided by 2,000 and by the horizon, the false-verdict rates with 95 %
Wilson intervals, and today's / the new rule's median requests to a correct PASS), then whether
each target is met (``--json``: one JSON object). ``--compare`` adds the ablations, ``--exact``
gives the alpha-spending rules the exact group-sequential levels instead of the union bound.
Exits 0 when the new rule meets every error-rate target (false FAIL and false PASS ≤ 5 %, FAIL
power ≥ 95 %), else 1; the speed-up is reported, not an exit criterion. No broker, no model.
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from shadowlane.cli.exit_codes import usage_error
from shadowlane.cli.help_format import add_command
from shadowlane.cli.progress import Progress
from shadowlane.rollout import simulate
from shadowlane.rollout.simulate_report import SPEEDUP_TARGET, Report
from shadowlane.rollout.synthetic import scenarios
from shadowlane.settings import Settings


def add_parsers(sub: Any) -> None:
    cmd = add_command(
        sub,
        "simulate-gates",
        summary="measure the gates' time to a correct verdict and their error rates on simulated experiments",
        details="Seeded synthetic experiments per scenario (four regressions, an A/A and a better "
        "candidate), each run to --requests requests with a look every --look-every and stopped at "
        "its first PASS or FAIL, judged by today's rule (alpha spending) and the new one (a "
        "confidence sequence) on the same data. Prints the median and p90 requests to the correct "
        "verdict, the shares decided correctly by 2,000 and by the horizon, the false-FAIL and "
        "false-PASS rates with 95 % intervals, today's / the new median requests to a correct PASS, "
        "and whether each target is met. No broker, no model.",
        examples=[
            "shadowlane simulate-gates",
            "shadowlane simulate-gates --experiments 50 --requests 4000 --look-every 500",
            "shadowlane simulate-gates --compare --exact --json",
        ],
        exit_codes="0 the new rule meets every error-rate target, 1 one missed, 64 usage",
    )
    cmd.add_argument(
        "--experiments", type=int, default=300, metavar="N", help="seeded experiments per scenario"
    )
    cmd.add_argument(
        "--requests",
        type=int,
        default=simulate.HORIZON,
        metavar="N",
        help="requests per experiment at most (the horizon)",
    )
    cmd.add_argument(
        "--look-every",
        type=int,
        default=simulate.LOOK_EVERY,
        metavar="N",
        help="requests between looks (a window); the last look is at --requests",
    )
    cmd.add_argument("--seed", type=int, default=5, help="random seed (the same seed gives the same table)")
    cmd.add_argument(
        "--compare",
        action="store_true",
        help="also run the ablations (new without held passes, new with per-gate FAIL tests, today's "
        "looks with the rest new, and the Price-Bonett excess-ΔS interval under both look rules)",
    )
    cmd.add_argument(
        "--exact",
        action="store_true",
        help="exact group-sequential levels for the alpha-spending rules, not the union bound",
    )
    cmd.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    cmd.set_defaults(handler=run)


def verdict_lines(report: Report) -> list[str]:
    """Whether each target is met: the new rule's error rates (the exit code) and the speed-ups."""
    chosen = report.rows_of(report.new_rule)
    missed = [r.scenario.name for r in chosen if not r.met]
    verdict = f"missed: {', '.join(missed)}" if missed else "all met"
    lines = [
        f"error-rate targets ({report.new_rule} rule): {len(chosen) - len(missed)} of {len(chosen)} "
        f"scenarios met; {verdict}"
    ]
    for s in report.speedups:
        lines.append(
            f"speed-up to a correct PASS on {s.scenario} (today / new median requests): {s.text()}, "
            f"target ≥ {SPEEDUP_TARGET:g}×: {'met' if s.met else 'NOT met'}"
        )
    return lines


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.experiments < 1 or args.look_every < 1 or args.requests < args.look_every:
        raise usage_error(
            "shadowlane simulate-gates: need --experiments ≥ 1, --look-every ≥ 1 and "
            "--requests ≥ --look-every"
        )
    rules = simulate.ALL_RULES if args.compare else simulate.DEFAULT_RULES
    with Progress.for_command(as_json=args.json) as progress:
        progress.step(
            f"simulating {len(scenarios())} scenarios",
            total=len(scenarios()) * args.experiments,
            unit="experiments",
        )
        report = simulate.run(
            experiments=args.experiments,
            requests=args.requests,
            look_every=args.look_every,
            seed=args.seed,
            rules=rules,
            exact=args.exact,
            on_experiment=progress.advance,
        )
    if args.json:
        print(orjson.dumps(report.as_dict()).decode())
    else:
        print("\n".join([simulate.markdown(report), "", *verdict_lines(report)]))
    return 0 if report.new_met else 1
