"""``shadowlane simulate-gates``: the rollout gates' decision quality on seeded synthetic experiments.

Runs :func:`shadowlane.rollout.simulate.run` (every scenario ``--experiments`` times over ``--requests``
requests, looked at ``--looks`` times with alpha spending) and prints the markdown table of FAIL
rates with their 95 % Wilson intervals (``--json``: one JSON object). ``--compare`` adds the other
verdict variants (FAIL rule × multiplicity) next to the default one, ``--exact`` uses the exact
group-sequential levels instead of the union bound. Exits 0 when the default variant meets every
target (FAIL ≥ 0.95 for the regressions, ≤ 0.05 for the A/A), else 1. No broker, no model.
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from shadowlane.cli.exit_codes import usage_error
from shadowlane.cli.help_format import add_command
from shadowlane.cli.progress import Progress
from shadowlane.rollout import simulate
from shadowlane.rollout.synthetic import scenarios
from shadowlane.settings import Settings


def add_parsers(sub: Any) -> None:
    cmd = add_command(
        sub,
        "simulate-gates",
        summary="measure the gates' decision quality (power, false alarms) on simulated experiments",
        details="Seeded synthetic experiments per scenario (four regressions and an A/A), judged by "
        "the default gates with alpha spending over --looks looks. Prints the FAIL rate of each "
        "scenario with its 95 % interval and whether it meets its target (FAIL ≥ 0.95 for a "
        "regression, ≤ 0.05 for the A/A). No broker, no model.",
        examples=[
            "shadowlane simulate-gates",
            "shadowlane simulate-gates --experiments 50 --requests 1000 --looks 3",
            "shadowlane simulate-gates --compare --exact --json",
        ],
        exit_codes="0 every target met, 1 a target missed, 64 usage",
    )
    cmd.add_argument(
        "--experiments", type=int, default=300, metavar="N", help="seeded experiments per scenario"
    )
    cmd.add_argument("--requests", type=int, default=2_000, metavar="N", help="requests per experiment")
    cmd.add_argument(
        "--looks", type=int, default=5, metavar="N", help="evenly spaced looks (alpha spent over them)"
    )
    cmd.add_argument("--seed", type=int, default=5, help="random seed (the same seed gives the same table)")
    cmd.add_argument(
        "--compare", action="store_true", help="also run the other FAIL rules and multiplicity corrections"
    )
    cmd.add_argument(
        "--exact", action="store_true", help="exact group-sequential levels, not the union bound"
    )
    cmd.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    cmd.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.experiments < 1 or args.requests < args.looks or args.looks < 1:
        raise usage_error(
            "shadowlane simulate-gates: need --experiments ≥ 1, --looks ≥ 1 and --requests ≥ --looks"
        )
    variants = simulate.ALL_VARIANTS if args.compare else (simulate.DEFAULT_VARIANT,)
    with Progress.for_command(as_json=args.json) as progress:
        progress.step(
            f"simulating {len(scenarios())} scenarios",
            total=len(scenarios()) * args.experiments,
            unit="experiments",
        )
        report = simulate.run(
            experiments=args.experiments,
            requests=args.requests,
            looks=args.looks,
            seed=args.seed,
            variants=variants,
            exact=args.exact,
            on_experiment=progress.advance,
        )
    chosen = [r for r in report.rows if r.variant == simulate.DEFAULT_VARIANT]
    if args.json:
        print(orjson.dumps(report.as_dict()).decode())
    else:
        missed = [r.scenario.name for r in chosen if not r.met]
        verdict = f"missed: {', '.join(missed)}" if missed else "all met"
        print(f"{simulate.markdown(report)}\n\ntargets (default variant): {len(chosen) - len(missed)} "
              f"of {len(chosen)} met; {verdict}")  # fmt: skip
    return 0 if all(r.met for r in chosen) else 1
