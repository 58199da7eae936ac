"""How a worker command runs: its ``/healthz``, ``/readyz`` and ``/metrics`` endpoints, the
``assigned`` and ``stopped`` lines, until a signal, within its drain timeout, and the one line a
worker that never reached its broker exits with."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from typing import Any

import orjson

from shadowlane.cli.exit_codes import operational_error
from shadowlane.cli.signals import run_until_signal
from shadowlane.health import Health, StartupTimeout
from shadowlane.metrics import MetricsServer, StatsCollector, serve_metrics

SHUTDOWN_SLACK_S = 4.0
"""How long past its drain timeout a stopping worker may take (commit, leave the group) before it
is cancelled: the process is gone within drain timeout + 5 s."""


async def serve(
    run: Callable[[], Awaitable[None]],
    stop: Callable[[], None],
    assigned: asyncio.Event,
    group: str,
    metrics: MetricsServer | None,
    collector: StatsCollector,
    counters: Callable[[], Mapping[str, float]],
    *,
    drain_timeout_s: float,
) -> None:
    """Run one worker until a signal: its collector on ``metrics`` (when served), the ``assigned``
    and ``stopped`` lines. The worker is cancelled when its shutdown outlasts ``drain_timeout_s``
    by ``SHUTDOWN_SLACK_S``."""
    if metrics is not None:
        metrics.registry.register(collector)
    announce = asyncio.create_task(_announce(assigned, group, metrics))
    try:
        await run_until_signal(run, stop, grace_s=drain_timeout_s + SHUTDOWN_SLACK_S)
    finally:
        announce.cancel()
    print(orjson.dumps({"event": "stopped", "group": group, **counters()}).decode())


@contextlib.contextmanager
def endpoints(args: argparse.Namespace, health: Health) -> Iterator[MetricsServer | None]:
    """With ``--metrics-port``: ``/healthz`` and ``/readyz`` from the start, while the broker may not
    answer yet (readiness says so); ``/metrics`` once the worker exists (:func:`serve`). However
    the worker ends (a failure before it runs included), the port is released."""
    health.start()
    server = None
    try:
        if args.metrics_port is not None:
            server = serve_metrics([], port=args.metrics_port, host=args.metrics_host, health=health)
        yield server
    finally:
        if server is not None:
            server.close()
        health.close()


def run_worker(command: str, timeout_env: str, go: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """``asyncio.run(go())``; a broker still unusable after the startup timeout exits 3 with one
    line naming the last cause (a pod's CrashLoopBackOff shows it)."""
    try:
        asyncio.run(go())
    except StartupTimeout as exc:
        hint = f"{timeout_env} sets how long to retry (0: forever)"
        raise operational_error(f"shadowlane {command}: {exc}; {hint}") from None
    return 0


async def _announce(assigned: asyncio.Event, group: str, metrics: MetricsServer | None) -> None:
    """Print one line when the member first gets partitions (scripts and tests wait for it)."""
    await assigned.wait()
    event: dict[str, Any] = {"event": "assigned", "group": group}
    if metrics is not None:
        event["metrics_port"] = metrics.port
    print(orjson.dumps(event).decode(), flush=True)
