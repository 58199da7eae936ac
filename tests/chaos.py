"""``make chaos``: the chaos run (``tests/support/chaos.py``) on the project's local broker, with
exactly-once on, repeated, and once with it off for comparison; prints each run's figures.

``python -m tests.chaos [--requests N] [--runs R] [--kills K] [--seed S] [--no-baseline]``
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from shadowlane.kafka.local import LocalKafka
from shadowlane.settings import load_settings
from tests.support.chaos import chaos_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=250.0, help="requests per second")
    parser.add_argument("--runs", type=int, default=2, help="runs with exactly-once on")
    parser.add_argument("--kills", type=int, default=6, help="SIGKILLs per run")
    parser.add_argument("--seed", type=int, help="first run's seed (each run adds 1)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run with exactly-once off")
    args = parser.parse_args(argv)
    defaults = load_settings()
    local = LocalKafka.from_settings(defaults)
    was_running = bool(local.status()["running"])
    bootstrap = local.start()  # reuses a running broker
    failed = False
    try:
        with tempfile.TemporaryDirectory(prefix="shadowlane-chaos-") as logs:
            plan = [True] * args.runs + ([] if args.no_baseline else [False])
            for i, exactly_once in enumerate(plan):
                seed = None if args.seed is None else args.seed + i
                figures = asyncio.run(
                    chaos_run(
                        bootstrap,
                        Path(logs),
                        requests=args.requests,
                        rate=args.rate,
                        kills=args.kills,
                        seed=seed,
                        exactly_once=exactly_once,
                    )
                )
                exact = figures.lost == figures.duplicates == figures.shadow_duplicates == 0 and (
                    figures.window_sum == figures.distinct
                )
                verdict = "exact" if exact else "NOT EXACT"
                print(f"chaos run {i + 1}: {verdict} {figures.line()}", flush=True)
                failed |= exactly_once and not exact
    finally:
        if not was_running:
            local.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
