"""Tumbling windows of comparisons per (candidate, endpoint, tenant), closed on event time.

A window ``[start, start + window)`` closes once the watermark passes its end plus ``grace``.
A comparison for a window that has already closed is late: it is not merged (the summary is
already out) but counted, and the count rides on the key's next summary (``late``) and in
``late_total``. Event time is the comparison's ``ts_ms`` (the request's prod response time).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.windows.accumulator import Accumulator, Key


class WindowAggregator:
    def __init__(self, window_ms: int = 60_000, grace_ms: int = 10_000, *, member: str = "") -> None:
        self.window_ms = window_ms
        self.grace_ms = grace_ms
        self.member = member
        self._open: dict[tuple[int, Key], Accumulator] = {}
        self._closed_until: dict[Key, int] = {}
        self._late: dict[Key, int] = {}
        self.late_total = 0
        self.closed_total = 0
        self.horizon_ms = -1  # the furthest watermark seen: a window it has passed is closed, data or not

    @property
    def open_windows(self) -> int:
        return len(self._open)

    def add(self, comparison: Comparison, event_ms: int | None = None) -> bool:
        """Add one comparison; False when it was late (counted, not merged)."""
        if event_ms is None:
            return self.add_many((comparison,)) == 0
        return self._add_at(comparison, event_ms)

    def add_many(self, comparisons: Iterable[Comparison]) -> int:
        """Add comparisons at their own event time, in order; returns how many were late.
        Consecutive comparisons of one window (most of a poll's) go to it as one batch."""
        late = 0
        run: list[Comparison] = []
        lo = hi = 0  # the run's window [lo, hi) in event time; empty while there is no run
        candidate, endpoint, tenant = "", None, None  # the run's key
        window_ms = self.window_ms
        for c in comparisons:
            ts = c.ts_ms
            if lo <= ts < hi and c.candidate == candidate and c.endpoint == endpoint and c.tenant == tenant:
                run.append(c)
                continue
            self._add_run(lo, (candidate, endpoint, tenant), run)
            candidate, endpoint, tenant = c.candidate, c.endpoint, c.tenant
            lo = ts - ts % window_ms
            if self._closed(lo, (candidate, endpoint, tenant)):  # late: never merged
                self._count_late((candidate, endpoint, tenant))
                late += 1
                run, hi = [], lo
            else:
                run, hi = [c], lo + window_ms
        self._add_run(lo, (candidate, endpoint, tenant), run)
        return late

    def _add_at(self, comparison: Comparison, event_ms: int) -> bool:
        key: Key = (comparison.candidate, comparison.endpoint, comparison.tenant)
        start = event_ms - event_ms % self.window_ms
        if self._closed(start, key):
            self._count_late(key)
            return False
        self._add_run(start, key, [comparison])
        return True

    def take_late(self, key: Key) -> int:
        """The late comparisons of ``key`` not yet reported, now reported by someone else."""
        return self._late.pop(key, 0)

    def _closed(self, start: int, key: Key) -> bool:
        return (
            start < self._closed_until.get(key, -1)
            or start + self.window_ms + self.grace_ms <= self.horizon_ms
        )

    def _add_run(self, start: int, key: Key, run: list[Comparison]) -> None:
        if not run:
            return
        window = self._open.get((start, key))
        if window is None:
            window = self._open[(start, key)] = Accumulator(start, start + self.window_ms, key)
        window.add_many(run)

    def _count_late(self, key: Key) -> None:
        self._late[key] = self._late.get(key, 0) + 1
        self.late_total += 1

    def advance(self, watermark_ms: int, partitions: Sequence[int] = ()) -> list[WindowSummary]:
        """Close and summarise every window whose end plus grace the watermark has passed."""
        self.horizon_ms = max(self.horizon_ms, watermark_ms)
        due = [k for k in self._open if k[0] + self.window_ms + self.grace_ms <= watermark_ms]
        return [self._close(k, partitions) for k in sorted(due, key=_order)]

    def flush(self, partitions: Sequence[int] = ()) -> list[WindowSummary]:
        """Summarise every open window now, as partials: the windows are not closed, so a later
        comparison for one of them starts a new partial (readers merge them) instead of being late."""
        return [self._close(k, partitions, final=False) for k in sorted(self._open, key=_order)]

    def snapshot(
        self, partitions: Sequence[int] = ()
    ) -> tuple[list[WindowSummary], dict[Key, int], dict[Key, int]]:
        """Everything this aggregator holds, to rebuild it with :meth:`restore`: the open windows
        as partial summaries (no late count), where each key is closed up to, the late counts."""
        open_windows = [
            self._open[k].summary(member=self.member, partitions=partitions)
            for k in sorted(self._open, key=_order)
        ]
        return open_windows, dict(self._closed_until), dict(self._late)

    def restore(
        self, open_windows: Iterable[WindowSummary], closed_until: dict[Key, int], late: dict[Key, int]
    ) -> None:
        """Take over a :meth:`snapshot` (what was there before is merged with it)."""
        for summary in open_windows:
            acc = Accumulator.of_summary(summary)
            k = (acc.start_ms, acc.key)
            mine = self._open.get(k)
            if mine is None:
                self._open[k] = acc
            else:
                mine.merge(acc)
        for key, until in closed_until.items():
            self._closed_until[key] = max(until, self._closed_until.get(key, -1))
        for key, count in late.items():
            self._late[key] = self._late.get(key, 0) + count
            self.late_total += count

    def _close(self, k: tuple[int, Key], partitions: Sequence[int], *, final: bool = True) -> WindowSummary:
        window = self._open.pop(k)
        start, key = k
        self.closed_total += 1
        if final:
            self._closed_until[key] = max(self._closed_until.get(key, -1), start + self.window_ms)
        return window.summary(late=self._late.pop(key, 0), member=self.member, partitions=partitions)


def _order(k: tuple[int, Key]) -> tuple[int, str]:
    return k[0], repr(k[1])
