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
from shadowlane.rollout import simulate
from shadowlane.settings import Settings


def add_parsers(sub: Any) -> None:
    cmd = sub.add_parser("simulate-gates", help="gate decision quality: power and false alarms, simulated")
    cmd.add_argument("--experiments", type=int, default=300, help="seeded experiments per scenario")
    cmd.add_argument("--requests", type=int, default=2_000, help="requests per experiment")
    cmd.add_argument("--looks", type=int, default=5, help="evenly spaced looks (alpha spent over them)")
    cmd.add_argument("--seed", type=int, default=5)
    cmd.add_argument("--compare", action="store_true", help="also run the other FAIL rules / multiplicity")
    cmd.add_argument(
        "--exact", action="store_true", help="exact group-sequential levels, not the union bound"
    )
    cmd.add_argument("--json", action="store_true", help="print one JSON object")
    cmd.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.experiments < 1 or args.requests < args.looks or args.looks < 1:
        raise usage_error(
            "shadowlane simulate-gates: need --experiments ≥ 1, --looks ≥ 1 and --requests ≥ --looks"
        )
    variants = simulate.ALL_VARIANTS if args.compare else (simulate.DEFAULT_VARIANT,)
    report = simulate.run(
        experiments=args.experiments,
        requests=args.requests,
        looks=args.looks,
        seed=args.seed,
        variants=variants,
        exact=args.exact,
    )
    print(orjson.dumps(report.as_dict()).decode() if args.json else simulate.markdown(report))
    chosen = [r for r in report.rows if r.variant == simulate.DEFAULT_VARIANT]
    return 0 if all(r.met for r in chosen) else 1
