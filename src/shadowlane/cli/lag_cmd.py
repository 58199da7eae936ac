"""``shadowlane lag``: every Shadowlane consumer group's lag, read from the broker (workers up or not).

Once (a table, or ``--json``), or as a Prometheus exporter (``--serve PORT``) that refreshes every
``--interval`` seconds and serves ``shadowlane_consumer_group_lag{group, topic, partition}`` with
``/healthz`` and ``/readyz``. What is read and how lag is counted: :mod:`shadowlane.kafka.group_lag`.

A refresh that fails (whatever the error) counts a failure, logs one line and makes ``/readyz``
say why; the exporter goes on. The lag and member series keep the last successful refresh's values
for :data:`STALE_INTERVALS` intervals, then disappear until a refresh succeeds: stale values would
look current. The failure counter and the last-success timestamp are always served.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from shadowlane.cli.exit_codes import OK, operational_error, usage_error
from shadowlane.cli.help_format import add_command
from shadowlane.cli.signals import run_until_signal
from shadowlane.health import Health, describe, transient
from shadowlane.kafka.bootstrap import client_kwargs, resolve_bootstrap
from shadowlane.kafka.group_lag import GroupLag, GroupLagReader
from shadowlane.metrics import Labelled, StatsCollector, serve_metrics
from shadowlane.settings import Settings

log = logging.getLogger(__name__)

ATTEMPTS = 3
"""Reads tried before a one-shot ``lag`` gives up on a broker error retrying can fix (a coordinator
still loading its groups, a connection dropped)."""

STALE_INTERVALS = 3
"""Refresh intervals after the last successful refresh for which the exporter still serves its
lag and member series."""

COLUMNS = ("TOPIC", "PARTITION", "COMMITTED", "LOG-START", "LOG-END", "LAST-STABLE", "LAG", "OWNER")


def add_parsers(sub: Any) -> None:
    lag = add_command(
        sub,
        "lag",
        summary="show every Shadowlane consumer group's lag, read from the broker",
        details="Per partition: the group's committed offset, the log start, the log end (highwater), "
        "the last stable offset, the lag (end - committed, the end being the last stable offset) and "
        "the member that owns it. Works while the workers are down, unlike their own "
        "shadowlane_consumer_lag. The groups: every shadow group (SHADOWLANE_SHADOW__GROUP_PREFIX + "
        "candidate) and the comparator's (SHADOWLANE_COMPARE__GROUP_ID), or those --group names. "
        "A partition a group never committed counts from its log start.\n\n"
        "With --serve it runs as an exporter instead: "
        "shadowlane_consumer_group_lag{group,topic,partition} and "
        "shadowlane_consumer_group_members{group} on /metrics, with /healthz and /readyz (ready while "
        "the last refresh succeeded), until SIGTERM.",
        examples=[
            "shadowlane lag",
            "shadowlane lag --group shadowlane.shadow.candidate-b --json",
            "shadowlane lag --serve 9109 --host 0.0.0.0 --interval 15",
        ],
        exit_codes="0 done (lag is an answer, not a failure); 3 the broker cannot be reached or "
        "refuses, or a --group does not exist; 64 usage.",
    )
    lag.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="GROUP",
        help="a consumer group to show (repeatable; any group, not only Shadowlane's; "
        "default: every Shadowlane group)",
    )
    lag.add_argument("--json", action="store_true", help="one JSON document instead of the table")
    lag.add_argument(
        "--serve",
        type=int,
        metavar="PORT",
        help="run as a Prometheus exporter on PORT (0: any free port; default: print once and exit)",
    )
    lag.add_argument("--host", default="127.0.0.1", help="address --serve binds (0.0.0.0 in containers)")
    lag.add_argument("--interval", type=float, default=15.0, help="seconds between refreshes with --serve")
    lag.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.interval <= 0:
        raise usage_error("shadowlane lag: --interval must be > 0")
    kwargs = client_kwargs(settings, resolve_bootstrap(settings))
    if args.serve is not None:
        asyncio.run(_export(args, settings, kwargs))
        return OK
    lags = asyncio.run(_read_once(settings, kwargs, args.group))
    missing = [g.group for g in lags if args.group and not g.exists]
    if missing:
        raise operational_error(f"shadowlane lag: no consumer group named {', '.join(missing)}")
    sys.stdout.write(render_json(lags) if args.json else render_table(lags))
    sys.stdout.flush()
    return OK


class LagSource(Protocol):
    """What the command reads groups' lag from (:class:`GroupLagReader`)."""

    async def read(self, groups: Sequence[str]) -> list[GroupLag]: ...

    async def shadowlane_groups(self) -> list[str]: ...

    async def close(self) -> None: ...


async def _read(reader: LagSource, groups: Sequence[str]) -> list[GroupLag]:
    return await reader.read(list(groups) or await reader.shadowlane_groups())


async def _read_once(settings: Settings, kwargs: dict[str, Any], groups: Sequence[str]) -> list[GroupLag]:
    async with GroupLagReader(settings, kwargs) as reader:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await _read(reader, groups)
            except Exception as exc:
                if attempt == ATTEMPTS or not transient(exc):
                    raise
                await asyncio.sleep(attempt)
    raise AssertionError("unreachable")


def render_json(lags: Sequence[GroupLag]) -> str:
    return orjson.dumps({"groups": [g.as_dict() for g in lags]}, option=orjson.OPT_INDENT_2).decode() + "\n"


def render_table(lags: Sequence[GroupLag]) -> str:
    if not lags:
        return "no Shadowlane consumer groups on this cluster\n"
    lines: list[str] = []
    for g in lags:
        lines.append(f"{g.group}  state={g.state}  members={g.members}  lag={g.lag}")
        rows = [
            [
                p.topic,
                str(p.partition),
                "-" if p.committed is None else str(p.committed),
                str(p.log_start),
                str(p.log_end),
                str(p.last_stable),
                str(p.lag),
                p.owner or "-",
            ]
            for p in g.partitions
        ]
        if rows:
            widths = [max(len(row[i]) for row in [list(COLUMNS), *rows]) for i in range(len(COLUMNS))]
            for row in [list(COLUMNS), *rows]:
                cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                lines.append("  " + "  ".join(cells).rstrip())
        else:
            lines.append("  (no partitions: the group has no offsets and reads no existing topic)")
        lines.append("")
    return "\n".join(lines)


@dataclass
class _Snapshot:
    """The last successful refresh, read by the exposition thread; its lag and member series are
    served while it is at most ``fresh_for_s`` old (by ``clock``)."""

    fresh_for_s: float
    lags: list[GroupLag] = field(default_factory=list)
    at: float = 0.0
    failures: int = 0
    clock: Callable[[], float] = time.time

    def labelled(self) -> dict[str, Labelled]:
        lags: dict[tuple[str, ...], float] = {}
        members: dict[tuple[str, ...], float] = {}
        if self.clock() - self.at <= self.fresh_for_s:
            for g in list(self.lags):
                members[(g.group,)] = float(g.members)
                for p in g.partitions:
                    lags[(g.group, p.topic, str(p.partition))] = float(p.lag)
        return {
            "consumer_group_lag": (("group", "topic", "partition"), lags),
            "consumer_group_members": (("group",), members),
        }


class Refresher:
    """The exporter's refreshes: one reader, opened when needed and replaced after a failure."""

    def __init__(
        self,
        open_reader: Callable[[], Awaitable[LagSource]],
        groups: Sequence[str],
        snapshot: _Snapshot,
        health: Health,
    ) -> None:
        self._open = open_reader
        self._groups = list(groups)
        self.snapshot = snapshot
        self._health = health
        self._reader: LagSource | None = None

    async def once(self) -> bool:
        """One refresh; never raises (but on cancellation): a failure is counted, logged in one
        line and put in ``/readyz``'s reason. Returns whether it succeeded."""
        try:
            if self._reader is None:
                self._reader = await self._open()
            lags = await _read(self._reader, self._groups)
        except Exception as exc:
            self.snapshot.failures += 1
            reason = f"lag refresh failed: {describe(exc)}"
            self._health.broker_failed(reason)
            log.warning("%s", reason)
            await self.close()  # a new reader next time: its connections may be what failed
            return False
        self.snapshot.lags, self.snapshot.at = lags, self.snapshot.clock()
        self._health.broker_reached()
        self._health.up(groups=len(lags))
        return True

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is None:
            return
        try:
            await reader.close()
        except Exception as exc:
            log.debug("closing the lag reader failed: %s", describe(exc))  # the refresh said why


async def _export(args: argparse.Namespace, settings: Settings, kwargs: dict[str, Any]) -> None:
    """Refresh every ``--interval`` seconds until SIGTERM (see the module docstring)."""
    health = Health(broker_stale_after_s=max(30.0, 3 * args.interval))
    health.start()
    snapshot = _Snapshot(fresh_for_s=STALE_INTERVALS * args.interval)
    collector = StatsCollector(
        "shadowlane",
        lambda: {"lag_exporter_refresh_failures": snapshot.failures},
        gauges=lambda: {"lag_exporter_last_success_timestamp_seconds": snapshot.at},
        labelled_gauges=snapshot.labelled,
    )
    server = serve_metrics([collector], port=args.serve, host=args.host, health=health)
    print(orjson.dumps({"event": "serving", "port": server.port}).decode(), flush=True)
    stop = asyncio.Event()
    refresher = Refresher(lambda: GroupLagReader(settings, kwargs).start(), args.group, snapshot, health)

    async def refresh_forever() -> None:
        try:
            while not stop.is_set():
                await refresher.once()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), args.interval)
        finally:
            await refresher.close()

    try:
        await run_until_signal(refresh_forever, stop.set, grace_s=10.0)
    finally:
        server.close()
        health.close()
