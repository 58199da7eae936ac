"""``shadowlane demo``: run the end-to-end lab and print what it showed (``--json``: one JSON object).

The summary ends with the path of the HTML report and how to look around (the run's topics, the
workers' logs, stopping the broker). Progress goes to stderr while it is a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson

from shadowlane.cli.exit_codes import NO, OK, OPERATIONAL
from shadowlane.cli.help_format import add_command
from shadowlane.cli.progress import Progress
from shadowlane.demo.run import DemoError, DemoOptions, run_demo
from shadowlane.demo.window_report import headline
from shadowlane.settings import Settings

DEFAULTS = DemoOptions()


def add_parsers(sub: Any) -> None:
    demo = add_command(
        sub,
        "demo",
        summary="run the whole pipeline on a grammar-tutor lab (shadow, then A/B) and summarise it",
        details="Starts the local broker if none is configured (and leaves it running), a prod "
        "service with the hook, two model servers, two shadow workers (candidate B and the noise "
        "floor) and the comparator; sends --requests in a shadow phase and --ab-requests in an A/B "
        "phase, waits until every comparable request is compared, and writes the lab's report to "
        "$SHADOWLANE_HOME/demo-report/. Each run has its own topic prefix.",
        examples=[
            "shadowlane demo",
            "shadowlane demo --requests 50 --ab-requests 0",
            "shadowlane demo --json > demo.json",
        ],
        exit_codes="0 every comparable request compared, 1 some were not (see missing), "
        "3 operational (no broker, --timeout reached), 64 usage",
    )
    demo.add_argument("--requests", type=int, default=DEFAULTS.requests, metavar="N", help="the shadow phase")
    demo.add_argument(
        "--ab-requests",
        type=int,
        default=DEFAULTS.ab_requests,
        metavar="N",
        help="then the A/B phase (0: skip it)",
    )
    demo.add_argument(
        "--concurrency", type=int, default=DEFAULTS.concurrency, metavar="N", help="concurrent prod clients"
    )
    demo.add_argument(
        "--candidate-error-rate",
        type=float,
        default=DEFAULTS.candidate_error_rate,
        metavar="P",
        help="share of model B's calls that fail with 503",
    )
    demo.add_argument(
        "--lambda-ratio",
        type=float,
        default=DEFAULTS.lambda_ratio,
        metavar="P",
        help="share of requests replayed again with other seeds and paraphrases (λ)",
    )
    demo.add_argument(
        "--rate-cap", type=float, default=DEFAULTS.rate_cap, help="replays per second per shadow group"
    )
    demo.add_argument(
        "--timeout",
        type=float,
        default=DEFAULTS.timeout_s,
        metavar="S",
        help="seconds for the workers to start and for every comparison to arrive",
    )
    demo.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    demo.set_defaults(handler=run)


def demo_options(args: argparse.Namespace) -> DemoOptions:
    return DemoOptions(
        requests=args.requests,
        ab_requests=args.ab_requests,
        concurrency=args.concurrency,
        candidate_error_rate=args.candidate_error_rate,
        lambda_ratio=args.lambda_ratio,
        rate_cap=args.rate_cap,
        timeout_s=args.timeout,
    )


def complete(summary: dict[str, Any]) -> bool:
    """Every comparable request compared (model B's own A/B answers are not comparable)."""
    expected = summary["published"] - summary["candidate_served"]
    return bool(summary["published"] > 0 and summary["compared"] == expected)


def render(summary: dict[str, Any]) -> str:
    """The human summary: what was sent and compared, each candidate's headline, the lab's
    recommendation, the report's path and how to look around."""
    s, lab = summary, summary["lab"]
    comparable = s["published"] - s["candidate_served"]
    lines = [
        f"Shadowlane demo: done in {s['elapsed_s']:.0f} s",
        f"  requests   {s['published']:,} published, {s['dropped']:,} dropped; "
        f"{s['sanitized_fields']:,} secret fields masked before Kafka",
        f"  compared   {s['compared']:,} of {comparable:,} comparable requests; "
        f"{s['unmatched']:,} unmatched, {s['missing']:,} missing, {s['dead_lettered']:,} dead-lettered",
    ]
    if s["candidate_served"]:
        lines.append(
            f"{'':13}(the {s['candidate_served']:,} model B served in the A/B phase are not compared)"
        )
    agent = s.get("agent")
    if agent and agent["runs"]:
        first = "; ".join(f"{where} ×{n}" for where, n in list(agent["first_divergences"].items())[:2])
        lines.append(
            f"  agent runs {agent['diverged']:,} of {agent['runs']:,} tool runs left prod's steps"
            + (f"; most often at {first}" if first else "")
        )
    rag = s.get("retrieval")
    if rag and rag["requests"]:
        ds = rag["delta_s"]
        lines.append(
            f"  retrieval  {rag['requests']:,} RAG requests: ΔS(question, retrieved) p95 "
            f"{ds['candidate']['p95']} vs prod {ds['prod']['p95']} (worst over "
            f"{rag['paraphrase_retrievals']:,} paraphrase retrievals too); coverage {rag['coverage_mean']}"
        )
    lines += [
        f"  safety     {s['tool_writes_blocked']:,} tool writes blocked in the shadow; prod made its "
        f"{s['prod_side_effects']:,} writes itself",
        "candidates (every window merged):",
    ]
    windows = s["windows"]
    floor_last = sorted(windows["candidates"].items(), key=lambda item: (item[0] == "baseline", item[0]))
    for name, digest in floor_last:
        drift, outcome = headline(digest)
        lines += [f"  {name:<10} {drift}", f"{'':13}{outcome}"]
    alerts = windows["alerts"]
    lines.append(
        "  alerts     "
        + (", ".join(f"{a['candidate']} {a['metric']} = {a['value']}" for a in alerts) if alerts else "none")
    )
    lines.append(f"recommendation: {lab['recommendation'].upper()}")
    lines += [f"  - {reason}" for reason in lab["reasons"]]
    if "ab" in lab:
        ab = lab["ab"]
        split = ", ".join(f"{arm} {n}" for arm, n in sorted(ab["served"].items()))
        srm = "MISMATCH" if ab["srm_mismatch"] else "ok"
        lines.append(f"  A/B split {split}; sample ratio {srm} (p = {ab['srm_p']})")
    prefix = s["topics_prefix"]
    lines += [
        f"report: {lab['report']}",
        "look around:",
        f"  shadowlane tail {prefix}compare --from-beginning --max 5",
        f"  shadowlane tail {prefix}compare.summary --from-beginning --idle-exit 3",
        f"  worker logs: {s['logs']}/demo-*.log",
    ]
    if s.get("local_broker"):
        lines.append("  the local broker keeps running: shadowlane kafka stop")
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: Settings) -> int:
    with Progress.for_command(as_json=args.json) as progress:
        try:
            summary = asyncio.run(run_demo(settings, demo_options(args), progress))
        except DemoError as exc:
            progress.close()
            print(f"shadowlane demo: {exc}", file=sys.stderr)
            return OPERATIONAL
    print(orjson.dumps(summary).decode() if args.json else render(summary))
    return OK if complete(summary) else NO
