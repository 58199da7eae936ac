"""``shadowlane watch``: a rolling per-candidate summary of the compare topic (via FastStream)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from shadowlane.cli.help_format import add_command
from shadowlane.contracts.comparison import Comparison
from shadowlane.kafka.bootstrap import resolve_bootstrap
from shadowlane.reader import compare_reader
from shadowlane.settings import Settings
from shadowlane.stats.quantiles import quantile


def add_parsers(sub: Any) -> None:
    watch = add_command(
        sub,
        "watch",
        summary="print a rolling per-candidate summary of the compare topic",
        details="Every --every seconds, one line per candidate: comparisons, unmatched, exact "
        "matches, median ΔS, shadow errors and blocked writes, counted since it started.",
        examples=["shadowlane watch", "shadowlane watch --every 10 --duration 60"],
    )
    watch.add_argument("--group", default="shadowlane.watch", help="consumer group of this reader")
    watch.add_argument("--every", type=float, default=5.0, metavar="S", help="seconds between summaries")
    watch.add_argument(
        "--duration", type=float, default=0.0, metavar="S", help="stop after S seconds (0: until Ctrl-C)"
    )
    watch.set_defaults(handler=run)


@dataclass
class Tally:
    total: int = 0
    joined: int = 0
    exact: int = 0
    errors: int = 0
    blocked: int = 0
    drift: list[float] = field(default_factory=list)

    def add(self, c: Comparison) -> None:
        self.total += 1
        self.joined += c.complete
        self.exact += bool(c.exact_match)
        self.errors += c.shadow_status not in (None, "ok")
        self.blocked += c.tools_blocked
        if c.delta_s is not None:
            self.drift.append(c.delta_s)

    def line(self, candidate: str) -> str:
        mid = quantile(self.drift, 0.5)
        ds = "-" if mid is None else f"{mid:.3f}"
        return (
            f"{candidate}: {self.total} compared, {self.total - self.joined} unmatched, "
            f"exact {self.exact}/{self.joined}, ΔS median {ds}, shadow errors {self.errors}, "
            f"writes blocked {self.blocked}"
        )


def run(args: argparse.Namespace, settings: Settings) -> int:
    tallies: dict[str, Tally] = defaultdict(Tally)

    async def handle(comparison: Comparison) -> None:
        tallies[comparison.candidate].add(comparison)

    async def go() -> None:
        # FastStream's own logger prints every message on stdout: this one goes where the CLI's
        # logging goes (stderr, warnings and up unless --verbose), so stdout holds the summaries only
        reader_log = logging.getLogger("shadowlane.watch.reader")
        broker = compare_reader(
            settings, resolve_bootstrap(settings), handle, group_id=args.group, logger=reader_log
        )
        await broker.start()
        started = time.monotonic()
        try:
            while not args.duration or time.monotonic() - started < args.duration:
                await asyncio.sleep(args.every if not args.duration else min(args.every, args.duration))
                for candidate, tally in sorted(tallies.items()):
                    print(tally.line(candidate), flush=True)
        finally:
            await broker.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go())
    return 0
