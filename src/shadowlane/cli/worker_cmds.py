"""``shadowlane topics``, ``shadowlane shadow`` and ``shadowlane compare``: the long-lived workers."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from typing import Any

import orjson

from shadowlane.cli.exit_codes import usage_error
from shadowlane.cli.signals import run_until_signal
from shadowlane.compare.embedder import build_embedder
from shadowlane.compare.native import use_native
from shadowlane.compare.worker import Comparator
from shadowlane.errors import ConfigError
from shadowlane.gc_tuning import tune_for_workers
from shadowlane.kafka.admin import ensure_topics
from shadowlane.kafka.bootstrap import client_kwargs, resolve_bootstrap
from shadowlane.malloc_tuning import tune_allocator
from shadowlane.metrics import MetricsServer, StatsCollector, serve_metrics
from shadowlane.rollout.control_plane import DEFAULT_FLAG, NO_CONTROL_KEYS, ControlWatcher
from shadowlane.settings import Settings
from shadowlane.shadow.candidates import CallableCandidate, Candidate, OpenAICandidate
from shadowlane.shadow.worker import ShadowWorker

log = logging.getLogger(__name__)

SHUTDOWN_SLACK_S = 4.0
"""How long past its drain timeout a stopping worker may take (commit, leave the group) before it
is cancelled: the process is gone within drain timeout + 5 s."""


def add_parsers(sub: Any) -> None:
    topics = sub.add_parser("topics", help="create the topics (idempotent)")
    topics.set_defaults(handler=run_topics)

    shadow = sub.add_parser("shadow", help="run a shadow worker (one consumer group per candidate)")
    shadow.add_argument("--candidate", required=True, help="candidate name (also the consumer group suffix)")
    shadow.add_argument(
        "--flag",
        default=DEFAULT_FLAG,
        help="rollout flag whose kill switch pauses this worker ('*' always does)",
    )
    target = shadow.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="OpenAI-compatible base URL of the candidate")
    target.add_argument("--callable", help="module:function taking the chat body (Python candidate)")
    shadow.add_argument("--model", help="override the request's model name")
    shadow.add_argument("--rate-cap", type=float, help="replays per second for the whole group")
    shadow.add_argument("--concurrency", type=int, help="in-flight replays per member")
    shadow.add_argument("--timeout", type=float, help="seconds per candidate call")
    shadow.add_argument("--readonly-tool", action="append", default=None, help="tool allowed (stubbed)")
    shadow.add_argument(
        "--tool-stub", action="append", default=[], metavar="NAME=JSON", help="fallback tool output"
    )
    shadow.add_argument(
        "--pin", action="append", default=[], metavar="KEY=VALUE", help="candidate version pin"
    )
    _metrics_flags(shadow)
    shadow.set_defaults(handler=run_shadow)

    compare = sub.add_parser("compare", help="run the comparator")
    compare.add_argument("--candidates", help="comma-separated candidates to expect per request")
    compare.add_argument("--window", type=float, help="seconds to wait for the other side of a pair")
    compare.add_argument("--embedder", choices=("minilm", "openai", "none"))
    compare.add_argument(
        "--native-path",
        choices=("auto", "native", "python"),
        help="hot path: auto (native when shadowlane_native is installed; the default), native, python",
    )
    _metrics_flags(compare)
    compare.set_defaults(handler=run_compare)


def _metrics_flags(parser: Any) -> None:
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics (0: any free port)")
    parser.add_argument(
        "--metrics-host", default="127.0.0.1", help="address /metrics binds (0.0.0.0 in containers)"
    )


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise usage_error(f"shadowlane: {flag} expects NAME=VALUE, got {item!r}")
        out[key] = value
    return out


def _with(settings: Settings, section: str, **values: Any) -> Settings:
    present = {k: v for k, v in values.items() if v is not None}
    part = getattr(settings, section).model_copy(update=present)
    return settings.model_copy(update={section: part})


async def _serve(
    run: Callable[[], Awaitable[None]],
    stop: Callable[[], None],
    assigned: asyncio.Event,
    group: str,
    metrics_port: int | None,
    collector: StatsCollector,
    counters: Callable[[], Mapping[str, int]],
    *,
    drain_timeout_s: float,
    host: str = "127.0.0.1",
) -> None:
    """Run one worker until a signal: optional /metrics, the ``assigned`` and ``stopped`` lines.
    The worker is cancelled when its shutdown outlasts ``drain_timeout_s`` by ``SHUTDOWN_SLACK_S``."""
    metrics = None if metrics_port is None else serve_metrics([collector], port=metrics_port, host=host)
    announce = asyncio.create_task(_announce(assigned, group, metrics))
    try:
        await run_until_signal(run, stop, grace_s=drain_timeout_s + SHUTDOWN_SLACK_S)
    finally:
        announce.cancel()
        if metrics:
            metrics.close()
    print(orjson.dumps({"event": "stopped", "group": group, **counters()}).decode())


async def _announce(assigned: asyncio.Event, group: str, metrics: MetricsServer | None) -> None:
    """Print one line when the member first gets partitions (scripts and tests wait for it)."""
    await assigned.wait()
    event: dict[str, Any] = {"event": "assigned", "group": group}
    if metrics is not None:
        event["metrics_port"] = metrics.port
    print(orjson.dumps(event).decode(), flush=True)


def run_topics(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> None:
        await ensure_topics(settings.topics, client_kwargs(settings, resolve_bootstrap(settings)))

    asyncio.run(go())
    for name in settings.topics.all_topics():
        print(name)
    return 0


def _candidate(args: argparse.Namespace, settings: Settings) -> Candidate:
    s = settings.shadow
    if args.url:
        return OpenAICandidate(
            args.candidate,
            args.url,
            model=args.model or s.candidate_model,
            api_key=s.candidate_api_key,
            timeout_s=s.timeout_s,
        )
    module, _, attr = args.callable.partition(":")
    fn = getattr(importlib.import_module(module), attr)
    return CallableCandidate(args.candidate, fn, threads=settings.shadow.concurrency)


def run_shadow(args: argparse.Namespace, settings: Settings) -> int:
    if settings.control.enabled and not settings.control.signing_keys:
        raise ConfigError(NO_CONTROL_KEYS)  # fail closed, before touching Kafka
    for stub in args.tool_stub:
        orjson.loads(stub.partition("=")[2] or "null")  # fail early on invalid JSON
    settings = _with(
        settings,
        "shadow",
        candidate=args.candidate,
        rate_cap=args.rate_cap,
        concurrency=args.concurrency,
        timeout_s=args.timeout,
        readonly_tools=tuple(args.readonly_tool) if args.readonly_tool else None,
        tool_stubs={**settings.shadow.tool_stubs, **_pairs(args.tool_stub, "--tool-stub")} or None,
        pins={**settings.shadow.pins, **_pairs(args.pin, "--pin")} or None,
    )

    async def go() -> None:
        kwargs = client_kwargs(settings, resolve_bootstrap(settings))
        await ensure_topics(settings.topics, kwargs)
        tune_for_workers()
        tune_allocator()
        # the kill switch: the control topic is followed live; while the flag (or "*") is killed
        # the worker pauses its partitions (held records replay after the release)
        watcher = None
        if settings.control.enabled:
            watcher = ControlWatcher(settings, kwargs, observer=f"shadow:{args.candidate}")
            await watcher.start()
        else:
            log.warning("control disabled (SHADOWLANE_CONTROL__ENABLED=false): no kill switch is followed")
        flag = args.flag
        halt = (lambda: watcher.killed(flag)) if watcher is not None else (lambda: False)
        worker = ShadowWorker(settings, _candidate(args, settings), kwargs, halt=halt)
        try:
            await _serve(
                worker.run,
                worker.stop,
                worker.assigned,
                worker.group_id,
                args.metrics_port,
                StatsCollector(
                    "shadowlane_shadow",
                    worker.counters,
                    gauges=worker.gauges,
                    labels={"group": worker.group_id, "candidate": worker.candidate.name},
                    labelled_counters=worker.labelled_counters,
                    also=[worker.lag.collector(worker.group_id)]
                    + ([watcher.collector()] if watcher is not None else []),
                ),
                worker.stats.as_dict,
                drain_timeout_s=settings.shadow.drain_timeout_s,
                host=args.metrics_host,
            )
        finally:
            if watcher is not None:
                await watcher.stop()

    asyncio.run(go())
    return 0


def run_compare(args: argparse.Namespace, settings: Settings) -> int:
    candidates = tuple(c for c in (args.candidates or "").split(",") if c) or None
    settings = _with(
        settings,
        "compare",
        candidates=candidates,
        window_s=args.window,
        embedder=args.embedder,
        native_path=args.native_path,
    )
    use_native(settings.compare.native_path)  # a forced path that is missing: exit 2 before Kafka

    async def go() -> None:
        kwargs = client_kwargs(settings, resolve_bootstrap(settings))
        await ensure_topics(settings.topics, kwargs)
        comparator = Comparator(settings, build_embedder(settings.compare), kwargs)
        hot_path = "native" if comparator.builder.native else "python"  # the path that runs
        starting = {"event": "starting", "group": settings.compare.group_id, "hot_path": hot_path}
        print(orjson.dumps(starting).decode(), flush=True)
        tune_for_workers()
        tune_allocator()
        group = settings.compare.group_id

        def counters() -> dict[str, int]:
            return {
                **comparator.stats.as_dict(),
                **asdict(comparator.join.stats),
                **comparator.transaction_counters(),
            }

        await _serve(
            comparator.run,
            comparator.stop,
            comparator.assigned,
            group,
            args.metrics_port,
            StatsCollector(
                "shadowlane_compare",
                counters,
                gauges=lambda: {
                    "pending_pairs": comparator.join.pending,
                    "open_windows": comparator.windows.open_windows,
                    "dlq_blocked_partitions": comparator.dlq_blocked_partitions,
                },
                labels={"group": group},
                also=[comparator.lag.collector(group), *comparator.metrics.collectors()],
            ),
            counters,
            drain_timeout_s=settings.compare.drain_timeout_s,
            host=args.metrics_host,
        )

    asyncio.run(go())
    return 0
