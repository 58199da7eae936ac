"""Reads a candidate's window summaries for a time range, keeps those in a flag's scope, merges them.

The comparator ships one ``WindowSummary`` per closed window, comparator member and
(endpoint, tenant) on the summary topic; gates judge their exact union
(:func:`~shadowlane.windows.accumulator.merge_summaries`). Only windows that lie inside the range
count (``window_start_ms ≥ start`` and ``window_end_ms ≤ end``), so a rollout stage is judged on
traffic it served and nothing from before it. Records are read by their Kafka timestamp (when the
window was shipped), from ``start`` until ``end`` plus the window's grace.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from shadowlane.contracts.codec import DecodeError, decode
from shadowlane.contracts.flag_manifest import FlagManifest
from shadowlane.contracts.route_config import RouteScope, is_wildcard
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.kafka.range_read import read_range
from shadowlane.rollout.gates import Decision, FailRule, Multiplicity, evaluate
from shadowlane.rollout.looks import LookAlpha, stage_look
from shadowlane.windows.accumulator import merge_summaries

SUMMARY_LATENESS_MS = 15 * 60_000  # a window's summary is produced after its end, grace and join window


async def read_summaries(
    client_kwargs: dict[str, Any],
    topic: str,
    candidate: str,
    start_ms: int,
    end_ms: int,
    *,
    grace_ms: int = 0,
) -> tuple[list[WindowSummary], int]:
    """The candidate's summaries of windows inside ``[start_ms, end_ms]``, and how many records were
    undecodable (counted, skipped: the summary topic is derived data, ``rescore`` rebuilds it)."""
    found: list[WindowSummary] = []
    bad = 0
    async for batch in read_range(client_kwargs, [topic], start_ms, end_ms + grace_ms):
        for records in batch.values():
            for record in records:
                try:
                    summary = decode(record.value, WindowSummary)
                except DecodeError:
                    bad += 1
                    continue
                inside = summary.window_start_ms >= start_ms and summary.window_end_ms <= end_ms
                if summary.candidate == candidate and inside:
                    found.append(summary)
    return found, bad


def in_scope(summary: WindowSummary, scope: RouteScope) -> bool:
    """Whether a summary's endpoint and tenant lie in a flag's scope (summaries carry no region)."""
    endpoint = is_wildcard(scope.endpoints) or summary.endpoint in scope.endpoints
    return endpoint and (is_wildcard(scope.tenants) or summary.tenant in scope.tenants)


def select(
    records: Sequence[WindowSummary], candidate: str, scope: RouteScope, start_ms: int, end_ms: int
) -> list[WindowSummary]:
    """The candidate's partials in scope whose window starts in ``[start, end)``, one per summary_id."""
    kept = {
        s.summary_id: s
        for s in records
        if s.candidate == candidate and start_ms <= s.window_start_ms < end_ms and in_scope(s, scope)
    }
    return sorted(kept.values(), key=lambda s: (s.window_start_ms, s.summary_id))


def merge_scope(parts: Sequence[WindowSummary]) -> WindowSummary | None:
    """One summary of every partial, endpoints and tenants merged into the flag's whole scope (under
    a neutral key when they differ), or None without data."""
    if not parts:
        return None
    if len({(p.endpoint, p.tenant) for p in parts}) > 1:
        parts = [p.model_copy(update={"endpoint": None, "tenant": None}) for p in parts]
    return merge_summaries(parts)


def judge_flag(
    manifest: FlagManifest,
    flag: str,
    records: Sequence[WindowSummary],
    *,
    start_ms: int,
    end_ms: int,
    candidate: str | None = None,
    look: LookAlpha | None = None,
    fail_rule: FailRule = "worse_than_reference",
    multiplicity: Multiplicity = "bonferroni",
) -> tuple[Decision, str, int]:
    """(decision, candidate, partials merged): ``flag``'s gates on its candidate's partials in scope
    whose window starts in ``[start, end)``; ``look`` defaults to the stage's confidence sequence.
    Raises ``ValueError`` for a flag the manifest does not have."""
    if flag not in manifest.flags:
        raise ValueError(f"flag {flag!r} is not in the manifest (flags: {', '.join(sorted(manifest.flags))})")
    spec, name = manifest.flags[flag], candidate or manifest.candidate(flag)
    parts = select(records, name, spec.scope, start_ms, end_ms)
    summary = merge_scope(parts)
    look = look or stage_look(summary.count if summary else 0, spec.min_samples)
    decision = evaluate(spec, summary, look=look, flag=flag, fail_rule=fail_rule, multiplicity=multiplicity)
    return decision, name, len(parts)


async def read_window_summaries(
    client_kwargs: dict[str, Any], topic: str, start_ms: int, end_ms: int
) -> list[WindowSummary]:
    """Every decodable summary shipped from ``start_ms`` until ``end_ms`` plus the lateness of a
    window's summary (what ``shadowlane gate`` and the report select from)."""
    now = time.time_ns() // 1_000_000
    stop = min(now + 60_000, end_ms + SUMMARY_LATENESS_MS)
    out: list[WindowSummary] = []
    async for batches in read_range(client_kwargs, [topic], start_ms, stop):
        for records in batches.values():
            for record in records:
                try:
                    out.append(decode(record.value, WindowSummary))
                except DecodeError:
                    continue
    return out


class KafkaSummarySource:
    """The driver's :class:`~shadowlane.rollout.driver.SummarySource` over the summary topic."""

    def __init__(self, client_kwargs: dict[str, Any], topic: str, *, grace_ms: int = 0) -> None:
        self._kwargs = client_kwargs
        self._topic = topic
        self._grace_ms = grace_ms
        self.undecodable = 0

    async def summary(self, candidate: str, start_ms: int, end_ms: int) -> WindowSummary | None:
        found, bad = await read_summaries(
            self._kwargs, self._topic, candidate, start_ms, end_ms, grace_ms=self._grace_ms
        )
        self.undecodable += bad
        return merge_scope(found)
