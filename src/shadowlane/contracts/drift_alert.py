"""``DriftAlert``: a window that crossed a drift threshold (mean ΔS or λ flip rate)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from shadowlane.contracts.base import WireModel

AlertMetric = Literal["delta_s_mean", "lambda_flip_rate"]


class DriftAlert(WireModel):
    SCHEMA_NAME: ClassVar[str] = "drift_alert"
    schema_version: Literal[1] = 1
    alert_id: str = Field(description="deterministic: hash(summary_id, metric), for dedupe")
    summary_id: str
    ts_ms: int = Field(ge=0, description="window end, event time")
    window_start_ms: int = Field(ge=0)
    window_end_ms: int = Field(ge=0)
    candidate: str
    endpoint: str | None = None
    tenant: str | None = None
    metric: AlertMetric
    value: float
    threshold: float
    direction: Literal["above"] = "above"
    sample_size: int = Field(ge=0, description="observations behind value")
    message: str
