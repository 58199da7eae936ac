"""``shadowlane demo``: run the end-to-end demo and print its summary (``--json``: one JSON line)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import orjson

from shadowlane.demo.run import DemoOptions, run_demo
from shadowlane.settings import Settings


def add_parsers(sub: Any) -> None:
    demo = sub.add_parser("demo", help="run the whole pipeline on the embedded default and summarise")
    demo.add_argument("--requests", type=int, default=200, help="the lab's shadow phase")
    demo.add_argument("--ab-requests", type=int, default=200, help="then its A/B phase (0: skip it)")
    demo.add_argument("--concurrency", type=int, default=4, help="concurrent prod clients")
    demo.add_argument("--candidate-error-rate", type=float, default=0.02)
    demo.add_argument("--rate-cap", type=float, default=80.0, help="replays per second per shadow group")
    demo.add_argument("--timeout", type=float, default=180.0)
    demo.add_argument("--json", action="store_true", help="last line of stdout is one JSON object")
    demo.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    opts = DemoOptions(
        requests=args.requests,
        ab_requests=args.ab_requests,
        concurrency=args.concurrency,
        candidate_error_rate=args.candidate_error_rate,
        rate_cap=args.rate_cap,
        timeout_s=args.timeout,
    )
    summary = asyncio.run(run_demo(settings, opts))
    if args.json:
        print(orjson.dumps(summary).decode())
    else:
        width = max(len(k) for k in summary)
        for key, value in summary.items():
            print(f"{key:<{width}}  {value}")
    expected = summary["published"] - summary["candidate_served"]  # B's own A/B answers: not compared
    ok = summary["compared"] == expected and summary["published"] > 0
    return 0 if ok else 1
