"""The live control plane: follow the signed control topic, gate the hook, publish changes.

:class:`ControlWatcher` reads the whole compacted control topic and the append-only control log
from the beginning without a consumer group (every process sees every record), then follows both.
Records go through :class:`~shadowlane.rollout.signing.ControlState`: unsigned, tampered,
unknown-key, replayed and invalid ones are refused and the config in force stays; per
``kind:name`` the newest genuine record of the two topics is in force, whatever order they arrive
in. So a fresh process converges to the newest genuine state even after compaction let a later
forged, garbage or replayed record take a genuine one's place on the compacted topic: the log
still holds it. At start the log is read first, then the topic. A record read from both topics
counts once (``mirrored``); an older genuine record of the log is history, not a rejection
(``history``). Every outcome
is counted and, given an audit sink, audited (:func:`~shadowlane.rollout.signing.audit_event`:
deterministic ids, so the events of many observers dedupe); listeners hear every change. Fetch
wait and poll are
``control.poll_interval_s`` (≤ 0.5 s): a kill switch is in force everywhere well within 2 s.
:class:`MirrorGate` is the hook's gate (dict lookups, no I/O).

Publishing (signing, versions): :mod:`shadowlane.rollout.control_publisher`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol, get_args

from aiokafka import AIOKafkaConsumer, TopicPartition

from shadowlane.contracts.audit import AuditEvent
from shadowlane.contracts.control import ControlKind, ControlRecord
from shadowlane.contracts.route_config import RouteConfig
from shadowlane.errors import ConfigError
from shadowlane.hook.publisher import GateVerdict
from shadowlane.kafka.admin import partition_ids
from shadowlane.metrics import Labelled, StatsCollector
from shadowlane.rollout.router import match_rule
from shadowlane.rollout.signing import (
    Applied,
    ControlState,
    Rejected,
    RejectReason,
    audit_event,
)
from shadowlane.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_FLAG = "shadow"
NO_CONTROL_KEYS = (
    "control is enabled but no signing key is set: set SHADOWLANE_CONTROL__SIGNING_KEYS (the keys "
    "the control records are signed with), or SHADOWLANE_CONTROL__ENABLED=false to run without "
    "kill switches and route configs"
)
"""The flag the hook gate and the shadow-on / shadow-off commands use unless told otherwise."""
MAX_PENDING_AUDIT = 10_000
AUDIT_RETRY_S = 1.0
Listener = Callable[[Applied], None]


class AuditSink(Protocol):
    """Where audit events go (:class:`shadowlane.rollout.audit.AuditLog`, or a fake in tests)."""

    async def write(self, record: AuditEvent) -> AuditEvent: ...


class ControlView(Protocol):
    """What gates and publishers read: the configs in force (:class:`ControlWatcher`)."""

    def killed(self, flag: str) -> bool: ...

    def route_config(self, flag: str) -> RouteConfig | None: ...

    def record(self, kind: ControlKind, name: str) -> ControlRecord | None: ...


@dataclass(slots=True)
class WatcherStats:
    """Counters of one watcher (``shadowlane_control_*_total``)."""

    records: int = 0
    mirrored: int = 0
    history: int = 0
    applied: int = 0
    rejected: int = 0
    listener_errors: int = 0
    audit_written: int = 0
    audit_failed: int = 0
    audit_dropped: int = 0
    reconnects: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class ControlWatcher:
    """Follows the control topic into a :class:`ControlState`; ``start()`` / ``stop()`` its task."""

    def __init__(
        self,
        settings: Settings,
        client_kwargs: Mapping[str, Any],
        *,
        observer: str | None = None,
        audit: AuditSink | None = None,
        clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        if not settings.control.signing_keys:  # fail closed: no key, no way to know what is genuine
            raise ConfigError(NO_CONTROL_KEYS)
        self._topics = (settings.topics.control_topic, settings.topics.control_log_topic)
        self._poll_s = settings.control.poll_interval_s
        self._kwargs = dict(client_kwargs)
        self.observer = observer or f"{socket.gethostname()}:{os.getpid()}"
        self._audit = audit
        self._clock = clock
        self.state = ControlState(settings.control.signing_keys)
        self.stats = WatcherStats()
        self.ready = asyncio.Event()
        self._listeners: list[Listener] = []
        self._in_force: set[tuple[ControlKind, str]] = set()
        self._genuine_read: dict[tuple[bytes, bytes], str] = {}
        """(key, value) of every genuine message read -> the topic it was first read from."""
        self._outcomes: dict[str, Applied | Rejected] = {}
        self._positions: dict[TopicPartition, int] = {}
        self._pending: deque[AuditEvent] = deque()
        self._audit_wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._audit_task: asyncio.Task[None] | None = None
        self._retry_s = 0.2

    # ------------------------------------------------------------------ what is in force (no I/O)
    def killed(self, flag: str) -> bool:
        """True when a kill switch for ``flag`` or ``*`` is engaged, or its route config says kill."""
        return self.state.killed(flag)

    def route_config(self, flag: str) -> RouteConfig | None:
        return self.state.route_config(flag)

    def record(self, kind: ControlKind, name: str) -> ControlRecord | None:
        """The verified record in force for ``kind:name``."""
        return self.state.record(kind, name)

    def outcome(self, kind: ControlKind, name: str) -> Applied | Rejected | None:
        """The last outcome (applied or rejected) of a record keyed ``kind:name``."""
        return self._outcomes.get(f"{kind}:{name}")

    def in_force(self) -> list[ControlRecord]:
        """Every verified record in force, ordered by kind and name."""
        found = (self.state.record(kind, name) for kind, name in sorted(self._in_force))
        return [r for r in found if r is not None]

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(applied)`` after every change (on the watcher's task; keep it quick)."""
        self._listeners.append(listener)

    # ------------------------------------------------------------------ applying records
    def feed(self, key: bytes | None, value: bytes | None, topic: str = "") -> Applied | Rejected | None:
        """Apply one message of the control topic or log (``topic``): verify, count, notify,
        queue its audit event. None: a genuine record already read from the other topic, or an
        older genuine record of the log (both change nothing and are no rejection)."""
        if key is not None and value is not None:
            first = self._genuine_read.get((key, value))
            if first is not None and first != topic:
                self.stats.mirrored += 1
                return None
        history = topic == self._topics[1]
        outcome = self.state.apply_message(key, value, history=history)
        # verified, but not newer than what is in force
        older = isinstance(outcome, Rejected) and outcome.reason in ("stale", "duplicate")
        if key is not None and value is not None and (older or isinstance(outcome, Applied)):
            self._genuine_read.setdefault((key, value), topic)
        if history and older:
            self.stats.history += 1
            return None
        self.stats.records += 1
        if outcome.record is not None:
            self._outcomes[outcome.record.key] = outcome
        if isinstance(outcome, Applied):
            self.stats.applied += 1
            self._in_force.add((outcome.record.kind, outcome.record.name))
            log.info("control %s v%d in force", outcome.record.key, outcome.record.version)
            for listener in list(self._listeners):
                try:
                    listener(outcome)
                except Exception:
                    self.stats.listener_errors += 1
                    log.exception("control listener failed")
        else:
            self.stats.rejected += 1
            log.warning("control record rejected (%s): %s", outcome.reason, outcome.detail)
        if self._audit is not None:
            if len(self._pending) >= MAX_PENDING_AUDIT:
                self.stats.audit_dropped += 1
            else:
                self._pending.append(audit_event(outcome, observer=self.observer, ts_ms=self._clock()))
                self._audit_wake.set()
        return outcome

    async def drain_audit(self) -> bool:
        """Write the queued audit events in order; False when the sink failed (they stay queued)."""
        sink = self._audit
        while sink is not None and self._pending:
            try:
                await sink.write(self._pending[0])
            except Exception as exc:
                self.stats.audit_failed += 1
                log.warning("audit write failed (will retry): %s", exc)
                return False
            self._pending.popleft()
            self.stats.audit_written += 1
        return True

    @property
    def pending_audit(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._run(), name="shadowlane-control-watcher")
        if self._audit is not None:
            self._audit_task = asyncio.create_task(self._audit_loop(), name="shadowlane-control-audit")

    async def wait_ready(self, timeout_s: float) -> bool:
        """Wait until the backlog present at start is applied; False on timeout."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), timeout_s)
        return self.ready.is_set()

    async def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Stop following; write the audit events still queued (bounded), then stop writing."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        audit_task, self._audit_task = self._audit_task, None
        if audit_task is not None:
            deadline = time.monotonic() + flush_timeout_s
            while self._pending and not audit_task.done() and time.monotonic() < deadline:
                self._audit_wake.set()
                await asyncio.sleep(0.02)
            audit_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await audit_task
            if self._pending:
                log.warning("control watcher stopped with %d unwritten audit events", len(self._pending))

    async def _audit_loop(self) -> None:
        while True:
            await self._audit_wake.wait()
            self._audit_wake.clear()
            if not await self.drain_audit():
                await asyncio.sleep(AUDIT_RETRY_S)
                self._audit_wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self._follow()
            except Exception as exc:  # broker trouble: reconnect, resume from the positions read
                self.stats.reconnects += 1
                delay, self._retry_s = self._retry_s, min(self._retry_s * 2, 5.0)
                log.warning("control watcher lost the control topic (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)

    async def _follow(self) -> None:
        wait_ms = max(1, int(self._poll_s * 1000))
        consumer = AIOKafkaConsumer(
            **self._kwargs,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=wait_ms,
        )
        await consumer.start()
        try:
            partitions = await self._partitions()
            consumer.assign(partitions)
            self._retry_s = 0.2
            fresh = [tp for tp in partitions if tp not in self._positions]
            for tp in partitions:
                if tp in self._positions:
                    consumer.seek(tp, self._positions[tp])
            if fresh:  # (no argument would mean every assigned partition)
                await consumer.seek_to_beginning(*fresh)
            backlog: dict[TopicPartition, int] = {}
            if not self.ready.is_set():
                ends = await consumer.end_offsets(partitions)
                backlog = {tp: end for tp, end in ends.items() if end > self._positions.get(tp, 0)}
            # at start the log's history first, then the compacted topic: a record the topic holds
            # in a genuine one's place never takes effect, even for a moment
            held = [tp for tp in partitions if tp.topic == self._topics[0]]
            if any(tp.topic == self._topics[1] for tp in backlog):
                consumer.pause(*held)
            else:
                held = []
            while True:
                if held and not any(tp.topic == self._topics[1] for tp in backlog):
                    consumer.resume(*held)
                    held = []
                if not backlog and not self.ready.is_set():
                    self.ready.set()
                batches = await consumer.getmany(timeout_ms=wait_ms)
                for tp, records in batches.items():
                    for record in records:
                        self.feed(record.key, record.value, tp.topic)
                        self._positions[tp] = record.offset + 1
                for tp in list(backlog):
                    position = await consumer.position(tp)
                    self._positions[tp] = max(self._positions.get(tp, 0), position)
                    if position >= backlog[tp]:
                        del backlog[tp]
        finally:
            await asyncio.sleep(0)  # aiokafka's group-less coordinator needs a turn before stop()
            await consumer.stop()

    async def _partitions(self) -> list[TopicPartition]:
        """Every partition of the control topic and log, waiting for both to exist."""
        warned = False
        while True:
            ids = await partition_ids(self._kwargs, list(self._topics))
            if all(ids.get(topic) for topic in self._topics):
                return [TopicPartition(topic, p) for topic in self._topics for p in ids[topic]]
            if not warned:
                missing = [topic for topic in self._topics if not ids.get(topic)]
                log.warning("control topics %s do not exist yet; waiting", ", ".join(missing))
                warned = True
            await asyncio.sleep(1.0)

    # ------------------------------------------------------------------ metrics
    def gauges(self) -> dict[str, float]:
        return {
            "ready": float(self.ready.is_set()),
            "in_force": float(len(self._in_force)),
            "audit_pending": float(len(self._pending)),
        }

    def labelled_counters(self) -> dict[str, Labelled]:
        """``rejected_by_reason{reason}``: refused records, by reason."""
        counts = self.state.rejections
        return {"rejected_by_reason": (("reason",), {(r,): float(n) for r, n in counts.items()})}

    def collector(self, **labels: str) -> StatsCollector:
        """A Prometheus collector (``shadowlane_control_*``) for this watcher."""
        return StatsCollector(
            "shadowlane_control",
            self.stats.as_dict,
            gauges=self.gauges,
            labels={"observer": self.observer, **labels},
            labelled_counters=self.labelled_counters,
            known={"rejected_by_reason": [get_args(RejectReason)]},
        )


class MirrorGate:
    """The hook's gate, for every sampled request. ``killed``: a kill switch for the flag, the
    endpoint or ``*`` is engaged, or the route config says kill. No route config for the flag:
    ``mirror`` (the hook's sampling decides). Else the router's semantics (``assign``): mirror only
    when the first matching rule is ``shadow`` and the hook's bucket (the router's shadow bucket
    when the salts agree) is below its ratio. Under ``ab`` / ``canary`` everything the hook samples
    is mirrored: what the baseline served keeps the candidate compared with the baseline on live
    traffic while a staged rollout judges it, and what the candidate served is the A/B exposure
    record the report reads (shadow workers and the comparator skip those: no self-comparison).
    ``off`` or no match: ``route_skipped``."""

    __slots__ = ("flag", "region", "view")

    def __init__(self, view: ControlView, flag: str = DEFAULT_FLAG, *, region: str = "default") -> None:
        self.view = view
        self.flag = flag
        self.region = region

    def __call__(self, endpoint: str, tenant: str, bucket: float, arm: str | None = None) -> GateVerdict:
        view = self.view
        if view.killed(self.flag) or view.killed(endpoint):
            return "killed"
        route = view.route_config(self.flag)
        if route is None:
            return "mirror"
        index = match_rule(route, tenant=tenant, region=self.region, endpoint=endpoint)
        if index is None:
            return "route_skipped"
        rule = route.rules[index]
        if rule.strategy in ("ab", "canary"):
            return "mirror"
        return "mirror" if rule.strategy == "shadow" and bucket < rule.shadow_ratio else "route_skipped"
