"""Reads a candidate's window summaries for a time range and merges them into one.

The comparator ships one ``WindowSummary`` per closed window, comparator member and
(endpoint, tenant) on the summary topic; gates judge their exact union
(:func:`~shadowlane.windows.accumulator.merge_summaries`). Only windows that lie inside the range
count (``window_start_ms ≥ start`` and ``window_end_ms ≤ end``), so a rollout stage is judged on
traffic it served and nothing from before it. Records are read by their Kafka timestamp (when the
window was shipped), from ``start`` until ``end`` plus the window's grace.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from shadowlane.contracts.codec import DecodeError, decode
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.kafka.range_read import read_range
from shadowlane.windows.accumulator import merge_summaries


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


def merge_all(summaries: list[WindowSummary]) -> WindowSummary | None:
    """One summary over every endpoint and tenant (the flag's whole scope), or None without data."""
    if not summaries:
        return None
    by_key: dict[tuple[str | None, str | None], list[WindowSummary]] = defaultdict(list)
    for s in summaries:
        by_key[(s.endpoint, s.tenant)].append(s)
    if len(by_key) == 1:
        return merge_summaries(summaries)
    # different (endpoint, tenant) keys: merge each, then fold them under one neutral key
    parts = [
        merge_summaries(group).model_copy(update={"endpoint": None, "tenant": None})
        for group in by_key.values()
    ]
    return merge_summaries(parts)


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
        return merge_all(found)
