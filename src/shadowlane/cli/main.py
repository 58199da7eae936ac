"""The ``shadowlane`` console script: builds the settings once and dispatches to a subcommand."""

from __future__ import annotations

import argparse
import logging
import sys

from shadowlane.cli import (
    control_cmds,
    demo_cmd,
    gate_cmd,
    kafka_cmd,
    report_cmd,
    rescore_cmd,
    rollout_cmd,
    simulate_cmd,
    tail_cmd,
    watch_cmd,
    worker_cmds,
)
from shadowlane.settings import load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shadowlane", description="Shadow traffic for LLM services, over Kafka."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    kafka_cmd.add_parser(sub)
    worker_cmds.add_parsers(sub)
    demo_cmd.add_parser(sub)
    tail_cmd.add_parser(sub)
    watch_cmd.add_parser(sub)
    rescore_cmd.add_parser(sub)
    report_cmd.add_parser(sub)
    control_cmds.add_parsers(sub)
    rollout_cmd.add_parser(sub)
    gate_cmd.add_parser(sub)
    simulate_cmd.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        logging.getLogger("aiokafka").setLevel(logging.ERROR)
    settings = load_settings()
    code: int = args.handler(args, settings)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
