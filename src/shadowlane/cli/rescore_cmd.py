"""``shadowlane rescore --from TIME --to TIME``: recompute comparisons and windows from retention."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import orjson

from shadowlane.cli.exit_codes import usage_error
from shadowlane.cli.help_format import add_command
from shadowlane.cli.progress import Progress
from shadowlane.cli.times import add_time_range, parse_time
from shadowlane.compare.embedder import build_embedder
from shadowlane.compare.rescore import live_comparisons, rescore, verify
from shadowlane.contracts.codec import encode
from shadowlane.kafka.bootstrap import client_kwargs, resolve_bootstrap
from shadowlane.report.blocks import iso
from shadowlane.settings import Settings

FILES = ("comparisons.jsonl", "summaries.jsonl", "alerts.jsonl")


def add_parsers(sub: Any) -> None:
    cmd = add_command(
        sub,
        "rescore",
        summary="recompute comparisons and windows from retained records (no model calls)",
        details="Reads requests and shadow-results in [--from, --to) from Kafka retention and runs "
        "the comparator's join and scoring again with the current config; nothing is written to "
        "Kafka. Each comparison names the embedder of its ΔS (delta_s_embedder): --embedder puts "
        "a range on one embedder. --verify compares the result byte for byte with the compare topic "
        "(after a config change: shows what it changed).",
        examples=[
            "shadowlane rescore --from -1h",
            "shadowlane rescore --from -2h --to -1h --verify",
            "shadowlane rescore --from 2025-01-01T00:00 --to 2025-01-02T00:00 --embedder none "
            "--out rescored/ --json",
        ],
        exit_codes="0 done (and identical with --verify), 1 --verify found a difference, "
        "3 operational (no broker, a missing topic), 64 usage",
    )
    add_time_range(cmd)
    cmd.add_argument(
        "--candidates",
        metavar="A,B",
        help="comma-separated candidates (default: the comparator's, $SHADOWLANE_COMPARE__CANDIDATES)",
    )
    cmd.add_argument(
        "--embedder",
        choices=("minilm", "static", "openai", "none"),
        help="how ΔS embeds answers (default: the comparator's, $SHADOWLANE_COMPARE__EMBEDDER)",
    )
    cmd.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write comparisons.jsonl, summaries.jsonl and alerts.jsonl here (default: write nothing)",
    )
    cmd.add_argument(
        "--verify",
        action="store_true",
        help="compare byte for byte with the compare topic; exit 1 on any change",
    )
    cmd.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    cmd.set_defaults(handler=run)


def _write(path: Path, records: list[Any]) -> None:
    path.write_bytes(b"".join(encode(r) + b"\n" for r in records))


def rescore_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    """``settings`` with the command line's candidates and embedder."""
    updates = {
        k: v
        for k, v in {
            "candidates": tuple(c for c in (args.candidates or "").split(",") if c) or None,
            "embedder": args.embedder,
        }.items()
        if v is not None
    }
    return settings.model_copy(update={"compare": settings.compare.model_copy(update=updates)})


def render(summary: dict[str, Any]) -> str:
    """The human summary of a rescore (``--json`` prints ``summary`` itself)."""
    lines = [
        f"rescored {iso(summary['from_ms'])} → {iso(summary['to_ms'])}",
        f"  records read      {summary['records']:,} ({summary['undecodable']:,} undecodable)",
        f"  comparisons       {summary['comparisons']:,}",
        *([f"  ΔS embedder       {summary['embedder'] or 'none (ΔS off)'}"] if "embedder" in summary else []),
        f"  window summaries  {summary['summaries']:,}",
        f"  drift alerts      {summary['alerts']:,}",
    ]
    if summary.get("out"):
        lines.append(f"  written to        {summary['out']}/ ({', '.join(FILES)})")
    check = summary.get("verify")
    if check is not None:
        same = check["different"] == check["missing_live"] == check["missing_rescored"] == 0
        lines.append(
            f"verify: {check['checked']:,} checked, {check['identical']:,} identical, "
            f"{check['different']:,} different, {check['missing_live']:,} missing from the compare topic, "
            f"{check['missing_rescored']:,} not rescored: {'IDENTICAL' if same else 'DIFFERENT'}"
        )
        if check["examples"]:
            lines.append(f"  e.g. {', '.join(check['examples'])}")
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: Settings) -> int:
    start, end = parse_time(args.start), parse_time(args.end)
    if end <= start:
        raise usage_error("shadowlane rescore: --to must be after --from")
    settings = rescore_settings(args, settings)

    async def go(progress: Progress) -> int:
        kwargs = client_kwargs(settings, resolve_bootstrap(settings))
        progress.step("reading requests and shadow results", unit="records")
        embedder = build_embedder(settings.compare, state_dir=settings.state_dir)
        result = await rescore(settings, kwargs, embedder, start, end, on_records=progress.advance)
        summary: dict[str, Any] = {
            "from_ms": start,
            "to_ms": end,
            "records": result.records,
            "undecodable": result.undecodable,
            "comparisons": len(result.comparisons),
            "embedder": embedder.name if embedder is not None else None,
            "summaries": len(result.summaries),
            "alerts": len(result.alerts),
        }
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            outputs: tuple[list[Any], ...] = (result.comparisons, result.summaries, result.alerts)
            for name, records in zip(FILES, outputs, strict=True):
                _write(args.out / name, records)
            summary["out"] = str(args.out)
        code = 0
        if args.verify:
            progress.step("reading the compare topic")
            report = verify(result.comparisons, await live_comparisons(settings, kwargs, start, end))
            summary["verify"] = report.as_dict()
            code = 0 if report.ok else 1
        progress.close()
        print(orjson.dumps(summary).decode() if args.json else render(summary))
        return code

    with Progress.for_command(as_json=args.json) as progress:
        return asyncio.run(go(progress))
