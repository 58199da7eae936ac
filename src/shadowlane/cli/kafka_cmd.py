"""``shadowlane kafka install|start|stop|status``: the local single-node broker under the state folder.

``start`` prints just the bootstrap address (``host:port``) once the broker answers, so scripts can
do ``export KAFKA_BOOTSTRAP_SERVERS=$(shadowlane kafka start)``; ``status`` prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys

from shadowlane.errors import BrokerSetupError
from shadowlane.kafka.local import LocalKafka
from shadowlane.settings import Settings


def add_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``kafka`` subcommand; its handler is :func:`run`."""
    parser = subparsers.add_parser(
        "kafka",
        help="manage the local single-node Kafka broker",
        description="Install, start, stop or inspect the local KRaft broker (127.0.0.1, no Docker).",
    )
    actions = parser.add_subparsers(dest="kafka_action", metavar="ACTION", required=True)
    actions.add_parser("install", help="fetch the broker jars with Maven (done by start when needed)")
    start = actions.add_parser("start", help="start (or reuse) the broker and print its bootstrap address")
    start.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for it to answer")
    stop = actions.add_parser("stop", help="stop the broker (data is kept)")
    stop.add_argument("--timeout", type=float, default=30.0, help="seconds before SIGKILL")
    actions.add_parser("status", help="print the broker status as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out ``args.kafka_action``; 0 on success, 1 when the broker could not be set up."""
    local = LocalKafka.from_settings(settings)
    action = str(args.kafka_action)
    try:
        if action == "install":
            print(local.install())
        elif action == "start":
            if settings.bootstrap_servers or settings.kafka.bootstrap_servers:
                print("note: bootstrap servers are configured, other commands will not use this broker",
                      file=sys.stderr)  # fmt: skip
            print(local.start(timeout_s=float(args.timeout)))
        elif action == "stop":
            stopped = local.stop(timeout_s=float(args.timeout))
            print("stopped" if stopped else "not running", file=sys.stderr)
        elif action == "status":
            print(json.dumps(local.status(), indent=2, sort_keys=True))
        else:  # pragma: no cover - argparse rejects unknown actions
            raise ValueError(f"unknown kafka action {action!r}")
    except BrokerSetupError as exc:
        print(f"shadowlane kafka {action}: {exc}", file=sys.stderr)
        return 1
    return 0
