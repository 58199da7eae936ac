"""The mergeable histograms a window keeps: latency per arm (µs) and ΔS (scaled by 10,000).

HdrHistogram with 3 significant digits: percentiles are exact to 0.1 % of the value, and the
sum of two histograms is exactly the histogram of the union of their values, which is what
makes per-window summaries mergeable after the fact.
"""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

LATENCY_MAX_US = 3_600_000_000  # one hour
DELTA_S_SCALE = 10_000


def latency_histogram() -> HdrHistogram:
    return HdrHistogram(1, LATENCY_MAX_US, 3)


def delta_s_histogram() -> HdrHistogram:
    return HdrHistogram(1, DELTA_S_SCALE + 1, 3)


def latency_value(ms: float) -> int:
    return min(max(1, round(ms * 1000)), LATENCY_MAX_US)


def delta_s_value(value: float) -> int:
    # +1 keeps ΔS = 0 representable (HdrHistogram's lowest trackable value is 1)
    return round(min(max(value, 0.0), 1.0) * DELTA_S_SCALE) + 1


def record_latency(hist: HdrHistogram, ms: float) -> None:
    hist.record_value(latency_value(ms))


def record_delta_s(hist: HdrHistogram, value: float) -> None:
    hist.record_value(delta_s_value(value))


class Tally:
    """An HdrHistogram fed through a value → count dict, folded in when the histogram is read.

    ``hdrh`` records in pure Python (~2 µs a value); a dict increment is ~0.1 µs, and recording
    a value ``n`` times at once is the same as recording it ``n`` times, so the folded histogram
    is exactly the one direct recording would give. Latencies in µs and ΔS × 10⁴ repeat a lot.
    """

    __slots__ = ("_hist", "_pending")

    def __init__(self, hist: HdrHistogram) -> None:
        self._hist = hist
        self._pending: dict[int, int] = {}

    def record(self, value: int) -> None:
        pending = self._pending
        pending[value] = pending.get(value, 0) + 1

    @property
    def pending(self) -> dict[int, int]:
        """The value → count dict :meth:`record` adds to, for callers that record in a loop."""
        return self._pending

    @property
    def hist(self) -> HdrHistogram:
        if self._pending:
            for value, count in self._pending.items():
                self._hist.record_value(value, count)
            self._pending.clear()
        return self._hist

    def add(self, other: Tally) -> None:
        self.hist.add(other.hist)


def latency_tally() -> Tally:
    return Tally(latency_histogram())


def delta_s_tally() -> Tally:
    return Tally(delta_s_histogram())


def latency_ms_at(hist: HdrHistogram, percentile: float) -> float | None:
    if hist.get_total_count() == 0:
        return None
    return float(hist.get_value_at_percentile(percentile)) / 1000


def delta_s_at(hist: HdrHistogram, percentile: float) -> float | None:
    if hist.get_total_count() == 0:
        return None
    return (float(hist.get_value_at_percentile(percentile)) - 1) / DELTA_S_SCALE


def encode(hist: HdrHistogram) -> str:
    data: bytes = hist.encode()
    return data.decode()


def decode(text: str) -> HdrHistogram:
    hist: HdrHistogram = HdrHistogram.decode(text.encode())
    return hist


def merged(encoded: list[str]) -> HdrHistogram:
    """The exact union of several encoded histograms of the same kind."""
    first = decode(encoded[0])
    for text in encoded[1:]:
        first.add(decode(text))
    return first
