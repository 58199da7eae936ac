"""``WindowSummary``: one tumbling window of comparisons, per candidate and bucket.

Percentiles are derived from the HdrHistograms the record carries (base64 of HdrHistogram's
compressed encoding), so summaries of several windows or members can be merged later without
losing precision: decode, add, read the percentile.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from schemas.base import Nested, WireModel


class LatencyStats(Nested):
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    count: int = 0


class WindowSummary(WireModel):
    SCHEMA_NAME: ClassVar[str] = "window_summary"
    schema_version: Literal[1] = 1
    window_start_ms: int = Field(ge=0)
    window_end_ms: int = Field(ge=0)
    candidate: str
    endpoint: str | None = None
    tenant: str | None = None
    count: int = Field(ge=0, description="comparisons in the window")
    joined: int = 0
    shadow_timeouts: int = 0
    requests_missing: int = 0
    late: int = Field(
        default=0, description="records that arrived after the window closed (counted, not merged)"
    )
    exact_match_rate: float | None = None
    delta_s_median: float | None = None
    delta_s_p95: float | None = None
    shadow_error_rate: float | None = None
    prod_error_rate: float | None = None
    latency_prod: LatencyStats = LatencyStats()
    latency_shadow: LatencyStats = LatencyStats()
    latency_p95_uplift: float | None = Field(default=None, description="shadow p95 / prod p95 - 1")
    hist_latency_prod_us: str = Field(description="HdrHistogram, base64 compressed, microseconds")
    hist_latency_shadow_us: str
    hist_delta_s_e4: str = Field(description="HdrHistogram of round(ΔS × 10,000)")
