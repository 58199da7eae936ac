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


def record_latency(hist: HdrHistogram, ms: float) -> None:
    hist.record_value(min(max(1, round(ms * 1000)), LATENCY_MAX_US))


def record_delta_s(hist: HdrHistogram, value: float) -> None:
    # +1 keeps ΔS = 0 representable (HdrHistogram's lowest trackable value is 1)
    hist.record_value(round(min(max(value, 0.0), 1.0) * DELTA_S_SCALE) + 1)


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
