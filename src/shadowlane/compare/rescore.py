"""Re-scoring: recompute comparisons and windows from retained requests and shadow results.

No model is called: the records hold every answer (λ replays included), so the join, ΔS, λ,
coverage, tools and cost are recomputed with the *current* metric config. The join runs exactly
as the live comparator's does (same :class:`JoinBuffer`, watermark = the slowest partition's last
record time), over ``[from − join window, to + join window)`` so pairs straddling the edges still
meet; comparisons whose event time is outside ``[from, to)`` are dropped. With the config
unchanged the output equals the live comparisons byte for byte; :func:`verify` checks that (or,
after a config change, shows what it changed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from shadowlane.compare.build import ComparisonBuilder
from shadowlane.compare.embedder import Embedder
from shadowlane.compare.join import Output
from shadowlane.compare.native.join import join_buffer
from shadowlane.contracts.codec import DecodeError, decode, encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.drift_alert import DriftAlert
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.kafka.range_read import read_range
from shadowlane.settings import Settings
from shadowlane.windows.aggregate import WindowAggregator
from shadowlane.windows.alerts import drift_alerts

BUILD_CHUNK = 512


@dataclass
class RescoreResult:
    comparisons: list[Comparison] = field(default_factory=list)
    summaries: list[WindowSummary] = field(default_factory=list)
    alerts: list[DriftAlert] = field(default_factory=list)
    records: int = 0
    undecodable: int = 0
    outside_range: int = 0


@dataclass
class VerifyReport:
    checked: int = 0
    identical: int = 0
    different: list[str] = field(default_factory=list)
    missing_live: list[str] = field(default_factory=list)
    missing_rescored: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.different or self.missing_live or self.missing_rescored)

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "identical": self.identical,
            "different": len(self.different),
            "missing_live": len(self.missing_live),
            "missing_rescored": len(self.missing_rescored),
            "examples": (self.different + self.missing_live + self.missing_rescored)[:5],
        }


class Rescorer:
    """Feeds records through the live join and builder; pure, no I/O."""

    def __init__(self, settings: Settings, embedder: Embedder | None, from_ms: int, to_ms: int) -> None:
        c = settings.compare
        self.requests_topic = settings.topics.requests_topic
        self.builder = ComparisonBuilder(embedder, c)
        self.join = join_buffer(
            c.candidates,
            int(c.window_s * 1000),
            max_pending=c.max_pending,
            plain=self.builder.plain,
            native=self.builder.native,
        )
        self.windows = WindowAggregator(
            int(c.summary_window_s * 1000), int(c.summary_grace_s * 1000), member="rescore"
        )
        self.settings = settings
        self.from_ms, self.to_ms = from_ms, to_ms
        self.result = RescoreResult()
        self._pending: list[Output] = []
        self._last_ts: dict[TopicPartition, int] = {}

    def feed(self, batches: dict[TopicPartition, list[Any]]) -> None:
        join = self.join
        for tp, records in batches.items():
            for record in records:
                self.result.records += 1
                self._last_ts[tp] = record.timestamp
                ref = (tp.topic, tp.partition, record.offset)
                try:
                    if tp.topic == self.requests_topic:
                        request = join.read_request(record.value, record.key)
                        out, _ = join.add_request(request, ref, record.timestamp)
                    else:
                        out, _ = join.add_result(join.read_result(record.value), ref, record.timestamp)
                except DecodeError:
                    self.result.undecodable += 1
                    continue
                self._pending.extend(out)
        self._pending.extend(self.join.expire(min(self._last_ts.values(), default=-1)))
        if len(self._pending) >= BUILD_CHUNK:
            self._build()

    def finish(self) -> RescoreResult:
        self._pending.extend(self.join.expire(2**62))
        self._build()
        self.result.summaries.extend(self.windows.flush())
        for summary in self.result.summaries:
            self.result.alerts.extend(drift_alerts(summary, self.settings.compare))
        return self.result

    def _build(self) -> None:
        if not self._pending:
            return
        for comparison in self.builder.build(self._pending):
            if self.from_ms <= comparison.ts_ms < self.to_ms:
                self.result.comparisons.append(comparison)
                self.windows.add(comparison)
            else:
                self.result.outside_range += 1
        self._pending = []


async def rescore(
    settings: Settings,
    client_kwargs: dict[str, Any],
    embedder: Embedder | None,
    from_ms: int,
    to_ms: int,
    *,
    on_records: Callable[[int], None] | None = None,
) -> RescoreResult:
    """Rescore ``[from, to)``; ``on_records(n)`` is called with each batch's record count (progress)."""
    t = settings.topics
    margin = int(settings.compare.window_s * 1000)
    rescorer = Rescorer(settings, embedder, from_ms, to_ms)
    topics = [t.requests_topic, t.shadow_results_topic]
    async for batches in read_range(client_kwargs, topics, from_ms - margin, to_ms + margin):
        rescorer.feed(batches)
        if on_records is not None:
            on_records(sum(len(records) for records in batches.values()))
    return rescorer.finish()


async def live_comparisons(
    settings: Settings, client_kwargs: dict[str, Any], from_ms: int, to_ms: int
) -> dict[str, bytes]:
    """The compare topic's comparisons with event time in ``[from, to)``: id -> the bytes last seen."""
    margin = int(settings.compare.window_s * 1000) * 2 + 60_000
    out: dict[str, bytes] = {}
    async for batches in read_range(client_kwargs, [settings.topics.compare_topic], from_ms, to_ms + margin):
        for records in batches.values():
            for record in records:
                try:
                    c = decode(record.value, Comparison)
                except DecodeError:
                    continue
                seen = out.get(c.comparison_id)
                if seen is not None and c.outcome != "joined" and decode(seen, Comparison).complete:
                    continue  # a re-emit after a restart may disagree; joined wins (README)
                if from_ms <= c.ts_ms < to_ms:
                    out[c.comparison_id] = record.value
    return out


def verify(rescored: Iterable[Comparison], live: dict[str, bytes]) -> VerifyReport:
    """Byte-for-byte comparison of rescored comparisons against the live ones, by comparison_id."""
    report = VerifyReport()
    mine = {c.comparison_id: encode(c) for c in rescored}
    for cid, data in mine.items():
        report.checked += 1
        theirs = live.get(cid)
        if theirs is None:
            report.missing_live.append(cid)
        elif theirs == data:
            report.identical += 1
        else:
            report.different.append(cid)
    report.missing_rescored.extend(cid for cid in live if cid not in mine)
    return report
