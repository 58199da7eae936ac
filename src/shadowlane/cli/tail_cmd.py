"""``shadowlane tail TOPIC``: print a topic's records as JSON lines (no consumer group)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import sys
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from shadowlane.cli.help_format import add_command
from shadowlane.kafka.bootstrap import client_kwargs, resolve_bootstrap
from shadowlane.settings import Settings


def add_parsers(sub: Any) -> None:
    tail = add_command(
        sub,
        "tail",
        summary="print a topic's records as JSON lines (no consumer group, committed records only)",
        details="Each line: topic, partition, offset, timestamp, key and the value (JSON, or "
        "{'_b64': ...} when it is not JSON). Ctrl-C stops it.",
        examples=[
            "shadowlane tail compare",
            "shadowlane tail requests --from-beginning --max 10",
            "shadowlane tail dlq --from-beginning --idle-exit 5",
        ],
    )
    tail.add_argument(
        "topic",
        help="full name, or a logical one (requests, shadow-results, compare, compare.summary, alerts, dlq)",
    )
    tail.add_argument(
        "--from-beginning",
        action="store_true",
        help="start at the earliest offset (default: new records only)",
    )
    tail.add_argument("--max", type=int, default=0, metavar="N", help="stop after N records (0: no limit)")
    tail.add_argument(
        "--idle-exit",
        type=float,
        default=0.0,
        metavar="S",
        help="stop after S seconds without records (0: never)",
    )
    tail.set_defaults(handler=run)


def resolve_topic(settings: Settings, name: str) -> str:
    t = settings.topics
    logical = {
        t.requests: t.requests_topic,
        t.shadow_results: t.shadow_results_topic,
        t.compare: t.compare_topic,
        t.summary: t.summary_topic,
        t.alerts: t.alerts_topic,
        t.dlq: t.dlq_topic,
    }
    return logical.get(name, name)


def render(record: Any) -> bytes:
    try:
        value: Any = orjson.loads(record.value) if record.value is not None else None
    except orjson.JSONDecodeError:
        value = {"_b64": base64.b64encode(record.value).decode()}
    key = record.key.decode(errors="replace") if record.key is not None else None
    return orjson.dumps(
        {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.timestamp,
            "key": key,
            "value": value,
        }
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    topic = resolve_topic(settings, args.topic)

    async def go() -> None:
        kwargs = client_kwargs(settings, resolve_bootstrap(settings))
        consumer = AIOKafkaConsumer(
            topic,
            **kwargs,
            auto_offset_reset="earliest" if args.from_beginning else "latest",
            isolation_level="read_committed",  # what the exactly-once workers committed, nothing aborted
        )
        await consumer.start()
        count, last = 0, time.monotonic()
        try:
            while not args.max or count < args.max:
                batches = await consumer.getmany(timeout_ms=500)
                for record in (r for records in batches.values() for r in records):
                    if args.max and count >= args.max:
                        break  # a poll brings up to 500 records: --max counts each one
                    sys.stdout.buffer.write(render(record) + b"\n")
                    count += 1
                    last = time.monotonic()
                sys.stdout.flush()
                if args.idle_exit and time.monotonic() - last > args.idle_exit:
                    break
        finally:
            await consumer.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go())
    return 0
