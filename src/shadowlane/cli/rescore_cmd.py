"""``shadowlane rescore --from TIME --to TIME``: recompute comparisons and windows from retention."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import orjson

from shadowlane.cli.exit_codes import usage_error
from shadowlane.cli.times import parse_time
from shadowlane.compare.embedder import build_embedder
from shadowlane.compare.rescore import live_comparisons, rescore, verify
from shadowlane.contracts.codec import encode
from shadowlane.kafka.bootstrap import client_kwargs, resolve_bootstrap
from shadowlane.settings import Settings


def add_parsers(sub: Any) -> None:
    cmd = sub.add_parser(
        "rescore", help="recompute comparisons and windows from retained records (no model calls)"
    )
    cmd.add_argument("--from", dest="start", required=True, help="now, -15m, epoch ms or ISO 8601")
    cmd.add_argument("--to", dest="end", default="now", help="end of the range (exclusive)")
    cmd.add_argument("--candidates", help="comma-separated candidates (default: the comparator's config)")
    cmd.add_argument("--embedder", choices=("minilm", "openai", "none"))
    cmd.add_argument("--out", type=Path, help="write comparisons/summaries/alerts .jsonl files here")
    cmd.add_argument(
        "--verify",
        action="store_true",
        help="compare byte for byte with the compare topic; exit 1 on any change",
    )
    cmd.set_defaults(handler=run)


def _write(path: Path, records: list[Any]) -> None:
    path.write_bytes(b"".join(encode(r) + b"\n" for r in records))


def run(args: argparse.Namespace, settings: Settings) -> int:
    start, end = parse_time(args.start), parse_time(args.end)
    if end <= start:
        raise usage_error("shadowlane rescore: --to must be after --from")
    updates = {
        k: v
        for k, v in {
            "candidates": tuple(c for c in (args.candidates or "").split(",") if c) or None,
            "embedder": args.embedder,
        }.items()
        if v is not None
    }
    settings = settings.model_copy(update={"compare": settings.compare.model_copy(update=updates)})

    async def go() -> int:
        kwargs = client_kwargs(settings, resolve_bootstrap(settings))
        result = await rescore(settings, kwargs, build_embedder(settings.compare), start, end)
        summary: dict[str, Any] = {
            "from_ms": start,
            "to_ms": end,
            "records": result.records,
            "undecodable": result.undecodable,
            "comparisons": len(result.comparisons),
            "summaries": len(result.summaries),
            "alerts": len(result.alerts),
        }
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            _write(args.out / "comparisons.jsonl", result.comparisons)
            _write(args.out / "summaries.jsonl", result.summaries)
            _write(args.out / "alerts.jsonl", result.alerts)
        code = 0
        if args.verify:
            report = verify(result.comparisons, await live_comparisons(settings, kwargs, start, end))
            summary["verify"] = report.as_dict()
            code = 0 if report.ok else 1
        print(orjson.dumps(summary).decode())
        return code

    return asyncio.run(go())
