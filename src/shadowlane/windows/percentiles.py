"""HdrHistograms as numpy arrays: percentiles, bulk recording and (value, count) pairs.

:func:`value_at_percentile` / :func:`values_at_percentiles` read the same value as
``HdrHistogram.get_value_at_percentile`` from the counts array, without its per-bucket Python
loop; :func:`record_values` records an array of values at once (the same histogram as recording
each); :func:`histogram_counts` gives an encoded histogram's (value, count) pairs for statistics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from hdrh.histogram import HdrHistogram
from numpy.typing import NDArray

from shadowlane.stats.quantiles import percentile_rank
from shadowlane.windows import histograms as h


def _counts(hist: HdrHistogram) -> NDArray[np.uint64]:
    """The histogram's counts array as a numpy view (no copy)."""
    counts: NDArray[np.uint64] = np.ctypeslib.as_array(hist.counts)
    return counts


def _bucket_of(hist: HdrHistogram, values: NDArray[np.int64]) -> NDArray[np.int64]:
    """``HdrHistogram._get_bucket_index`` for an array (bit length by ``frexp``: exact below 2⁵³)."""
    bits = np.frexp((values | hist.sub_bucket_mask).astype(np.float64))[1].astype(np.int64)
    buckets: NDArray[np.int64] = bits - hist.unit_magnitude - (hist.sub_bucket_half_count_magnitude + 1)
    return buckets


def _index_values(hist: HdrHistogram, index: NDArray[np.int64]) -> NDArray[np.int64]:
    """Highest equivalent value of each counts index (what ``get_value_at_percentile`` reports)."""
    bucket = (index >> hist.sub_bucket_half_count_magnitude) - 1
    sub = (index & (hist.sub_bucket_half_count - 1)) + hist.sub_bucket_half_count
    low = bucket < 0
    sub = np.where(low, sub - hist.sub_bucket_half_count, sub)
    bucket = np.where(low, 0, bucket)
    lowest = sub << (bucket + hist.unit_magnitude)
    width = np.left_shift(1, _bucket_of(hist, np.maximum(lowest, 1)) + hist.unit_magnitude)
    values: NDArray[np.int64] = lowest + width - 1
    return values


def record_values(hist: HdrHistogram, values: NDArray[np.int64]) -> None:
    """Record every value of ``values`` (in range) at once: the histogram ``record_value`` gives."""
    if values.size == 0:
        return
    v = values.astype(np.int64)
    bucket = _bucket_of(hist, v)
    sub = v >> (bucket + hist.unit_magnitude)
    index = ((bucket + 1) << hist.sub_bucket_half_count_magnitude) + sub - hist.sub_bucket_half_count
    if (index < 0).any() or (index >= hist.counts_len).any() or (v < 0).any():
        raise ValueError("values outside the histogram's trackable range")
    counts = _counts(hist)
    counts += np.bincount(index, minlength=hist.counts_len).astype(np.uint64)
    hist.total_count += int(v.size)
    hist.min_value = min(hist.min_value, int(v.min()))
    hist.max_value = max(hist.max_value, int(v.max()))


def values_at_percentiles(hist: HdrHistogram, percentiles: Sequence[float]) -> tuple[int, ...]:
    """``hist.get_value_at_percentile(p)`` for each ``p``, from one cumulative sum of the counts."""
    total = int(hist.get_total_count())
    if total == 0:
        return tuple(0 for _ in percentiles)
    last = min(hist.counts_len, hist.get_counts_array_index(hist.max_value) + 1)
    cumulative = np.cumsum(_counts(hist)[:last], dtype=np.uint64)
    out = []
    for p in percentiles:
        target = percentile_rank(total, p)  # hdrh's rounding, exactly
        index = int(np.searchsorted(cumulative, target, side="left"))
        if index >= cumulative.size:
            out.append(0)
        elif p:
            out.append(int(_index_values(hist, np.array([index], dtype=np.int64))[0]))
        else:
            out.append(int(hist.get_value_from_index(index)))
    return tuple(out)


def value_at_percentile(hist: HdrHistogram, percentile: float) -> int:
    """``hist.get_value_at_percentile(percentile)``, read from a cumulative sum of the counts."""
    return values_at_percentiles(hist, (percentile,))[0]


def histogram_counts(encoded: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The recorded (value, count) pairs of an encoded histogram, values as their bucket's highest
    equivalent value (the one its percentiles report), ascending."""
    hist = h.decode(encoded)
    counts = _counts(hist)
    index = np.flatnonzero(counts).astype(np.int64)
    return _index_values(hist, index).astype(np.float64), counts[index].astype(np.float64)
