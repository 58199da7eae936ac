"""The comparator's windows, one :class:`WindowAggregator` per input partition.

A comparison belongs to the partition of its request (requests and shadow results are
co-partitioned by ``req_hash``), and so does every window it lands in: a summary covers one
partition's comparisons, and a partition's windows move with it from member to member. That is
what lets a partition's closed summaries, its comparisons and its consumed offsets commit in one
transaction (:mod:`shadowlane.kafka.transactions`), and its open windows ride along as its state
(:class:`~shadowlane.contracts.window_state.WindowState`). Summaries are mergeable partials
(:func:`~shadowlane.windows.accumulator.merge_summaries`); readers add them up. Drift alerts are
judged on the merge of the partials a member closes together (:meth:`PartitionedWindows.alertable`),
so splitting a window by partition does not make alerts less sensitive.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.window_state import WindowKeyCount
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.windows.accumulator import Key, merge_summaries
from shadowlane.windows.aggregate import WindowAggregator


def _counts(values: dict[Key, int]) -> tuple[WindowKeyCount, ...]:
    return tuple(
        WindowKeyCount(candidate=key[0], endpoint=key[1], tenant=key[2], value=value)
        for key, value in sorted(values.items(), key=repr)
    )


def _keyed(counts: Iterable[WindowKeyCount]) -> dict[Key, int]:
    return {(c.candidate, c.endpoint, c.tenant): c.value for c in counts}


class PartitionedWindows:
    def __init__(self, window_ms: int, grace_ms: int, *, member: str = "") -> None:
        self.window_ms = window_ms
        self.grace_ms = grace_ms
        self.member = member
        self._parts: dict[int, WindowAggregator] = {}
        self._horizon = -1  # the furthest watermark advanced to: a partition new here starts there

    def _part(self, partition: int) -> WindowAggregator:
        agg = self._parts.get(partition)
        if agg is None:
            agg = self._parts[partition] = WindowAggregator(self.window_ms, self.grace_ms, member=self.member)
            agg.horizon_ms = self._horizon
        return agg

    @property
    def open_windows(self) -> int:
        return sum(agg.open_windows for agg in self._parts.values())

    @property
    def late_total(self) -> int:
        return sum(agg.late_total for agg in self._parts.values())

    def add_many(self, partition: int, comparisons: Sequence[Comparison]) -> int:
        """Add one partition's comparisons; returns how many were late."""
        if not comparisons:
            return 0
        return self._part(partition).add_many(comparisons)

    def advance(self, watermark_ms: int) -> list[tuple[int, WindowSummary]]:
        """(partition, summary) of every window the watermark closes."""
        self._horizon = max(self._horizon, watermark_ms)
        closed: list[tuple[int, WindowSummary]] = []
        for partition, agg in sorted(self._parts.items()):
            summaries = agg.advance(watermark_ms, (partition,))
            closed.extend((partition, s) for s in summaries)
        return self._with_late(closed)

    def _with_late(self, closed: list[tuple[int, WindowSummary]]) -> list[tuple[int, WindowSummary]]:
        """Late counts ride on their key's next summary from any partition: a partition that
        had a late comparison may see no more traffic for that key."""
        out = []
        for partition, summary in closed:
            key = (summary.candidate, summary.endpoint, summary.tenant)
            extra = sum(agg.take_late(key) for p, agg in self._parts.items() if p != partition)
            out.append(
                (partition, summary.model_copy(update={"late": summary.late + extra}) if extra else summary)
            )
        return out

    def flush(self, partitions: Iterable[int]) -> list[tuple[int, WindowSummary]]:
        """Close every open window of ``partitions`` now (partials: a later owner adds the rest)."""
        flushed = [
            (p, s) for p in sorted(set(partitions)) if p in self._parts for s in self._parts[p].flush((p,))
        ]
        return self._with_late(flushed)

    def drop(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self._parts.pop(p, None)

    def state(
        self, partition: int
    ) -> tuple[tuple[WindowSummary, ...], tuple[WindowKeyCount, ...], tuple[WindowKeyCount, ...]]:
        """Partition ``partition``'s open windows, closed-up-to times and late counts."""
        agg = self._parts.get(partition)
        if agg is None:
            return (), (), ()
        open_windows, closed_until, late = agg.snapshot((partition,))
        return tuple(open_windows), _counts(closed_until), _counts(late)

    def restore(
        self,
        partition: int,
        open_windows: Iterable[WindowSummary],
        closed_until: Iterable[WindowKeyCount],
        late: Iterable[WindowKeyCount],
    ) -> None:
        self._part(partition).restore(open_windows, _keyed(closed_until), _keyed(late))

    @staticmethod
    def alertable(closed: Sequence[tuple[int, WindowSummary]]) -> list[tuple[int, WindowSummary]]:
        """The summaries to judge for alerts: the partials of one window and key merged, each with
        the lowest partition among them (whose transaction carries the alert)."""
        groups: dict[tuple[int, int, Key], list[tuple[int, WindowSummary]]] = {}
        for partition, s in closed:
            groups.setdefault(
                (s.window_start_ms, s.window_end_ms, (s.candidate, s.endpoint, s.tenant)), []
            ).append((partition, s))
        return [
            (
                min(p for p, _s in parts),
                parts[0][1] if len(parts) == 1 else merge_summaries([s for _p, s in parts]),
            )
            for _k, parts in sorted(groups.items(), key=lambda item: repr(item[0]))
        ]
