"""Tumbling windows of comparisons per (candidate, endpoint, tenant), closed on event time.

A window ``[start, start + window)`` closes once the watermark passes its end plus ``grace``.
A comparison for a window that has already closed is late: it is not merged (the summary is
already out) but counted, and the count rides on the key's next summary (``late``) and in
``late_total``. Counts and histograms make every summary mergeable after the fact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from schemas.comparison import Comparison
from schemas.window_summary import LatencyStats, WindowSummary
from workers.windows import histograms as h

Key = tuple[str, str | None, str | None]  # candidate, endpoint, tenant


@dataclass
class _Window:
    start_ms: int
    key: Key
    count: int = 0
    joined: int = 0
    shadow_timeouts: int = 0
    requests_missing: int = 0
    exact: int = 0
    exact_known: int = 0
    shadow_errors: int = 0
    prod_errors: int = 0
    lat_prod: HdrHistogram = field(default_factory=h.latency_histogram)
    lat_shadow: HdrHistogram = field(default_factory=h.latency_histogram)
    drift: HdrHistogram = field(default_factory=h.delta_s_histogram)

    def add(self, c: Comparison) -> None:
        self.count += 1
        if c.outcome == "shadow_timeout":
            self.shadow_timeouts += 1
        elif c.outcome == "request_missing":
            self.requests_missing += 1
        else:
            self.joined += 1
            if c.exact_match is not None:
                self.exact_known += 1
                self.exact += c.exact_match
            if c.shadow_status != "ok":
                self.shadow_errors += 1
            if c.delta_s is not None:
                h.record_delta_s(self.drift, c.delta_s)
        if c.prod_status is not None and not c.prod_status.startswith("2"):
            self.prod_errors += 1
        if c.prod_latency_ms is not None:
            h.record_latency(self.lat_prod, c.prod_latency_ms)
        if c.shadow_latency_ms is not None:
            h.record_latency(self.lat_shadow, c.shadow_latency_ms)

    def summary(self, window_ms: int, late: int) -> WindowSummary:
        prod95 = h.latency_ms_at(self.lat_prod, 95)
        shadow95 = h.latency_ms_at(self.lat_shadow, 95)
        with_prod = self.joined + self.shadow_timeouts
        return WindowSummary(
            window_start_ms=self.start_ms,
            window_end_ms=self.start_ms + window_ms,
            candidate=self.key[0],
            endpoint=self.key[1],
            tenant=self.key[2],
            count=self.count,
            joined=self.joined,
            shadow_timeouts=self.shadow_timeouts,
            requests_missing=self.requests_missing,
            late=late,
            exact_match_rate=self.exact / self.exact_known if self.exact_known else None,
            delta_s_median=h.delta_s_at(self.drift, 50),
            delta_s_p95=h.delta_s_at(self.drift, 95),
            shadow_error_rate=self.shadow_errors / self.joined if self.joined else None,
            prod_error_rate=self.prod_errors / with_prod if with_prod else None,
            latency_prod=_stats(self.lat_prod),
            latency_shadow=_stats(self.lat_shadow),
            latency_p95_uplift=shadow95 / prod95 - 1 if prod95 and shadow95 is not None else None,
            hist_latency_prod_us=h.encode(self.lat_prod),
            hist_latency_shadow_us=h.encode(self.lat_shadow),
            hist_delta_s_e4=h.encode(self.drift),
        )


def _stats(hist: HdrHistogram) -> LatencyStats:
    return LatencyStats(
        p50_ms=h.latency_ms_at(hist, 50),
        p95_ms=h.latency_ms_at(hist, 95),
        p99_ms=h.latency_ms_at(hist, 99),
        count=int(hist.get_total_count()),
    )


class WindowAggregator:
    def __init__(self, window_ms: int = 60_000, grace_ms: int = 10_000) -> None:
        self.window_ms = window_ms
        self.grace_ms = grace_ms
        self._open: dict[tuple[int, Key], _Window] = {}
        self._closed_until: dict[Key, int] = {}
        self._late: dict[Key, int] = {}
        self.late_total = 0

    def add(self, comparison: Comparison, event_ms: int) -> bool:
        """Add one comparison; False when it was late (counted, not merged)."""
        key: Key = (comparison.candidate, comparison.endpoint, comparison.tenant)
        start = event_ms - event_ms % self.window_ms
        if start < self._closed_until.get(key, -1):
            self._late[key] = self._late.get(key, 0) + 1
            self.late_total += 1
            return False
        window = self._open.get((start, key))
        if window is None:
            window = self._open[(start, key)] = _Window(start, key)
        window.add(comparison)
        return True

    def advance(self, watermark_ms: int) -> list[WindowSummary]:
        """Close and summarise every window whose end plus grace the watermark has passed."""
        due = [k for k in self._open if k[0] + self.window_ms + self.grace_ms <= watermark_ms]
        return [self._close(k) for k in sorted(due, key=_order)]

    def flush(self) -> list[WindowSummary]:
        return [self._close(k) for k in sorted(self._open, key=_order)]

    def _close(self, k: tuple[int, Key]) -> WindowSummary:
        window = self._open.pop(k)
        start, key = k
        self._closed_until[key] = max(self._closed_until.get(key, -1), start + self.window_ms)
        return window.summary(self.window_ms, self._late.pop(key, 0))


def _order(k: tuple[int, Key]) -> tuple[int, str]:
    return k[0], repr(k[1])
