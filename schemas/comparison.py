"""``Comparison``: the comparator's verdict on one (request, candidate) pair."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from schemas.base import WireModel

Outcome = Literal["joined", "shadow_timeout", "request_missing"]


class Comparison(WireModel):
    """Prod vs candidate for one request. ``complete`` is False when one side never arrived."""

    SCHEMA_NAME: ClassVar[str] = "comparison"
    schema_version: Literal[1] = 1
    comparison_id: str = Field(description="deterministic: hash(req_hash, candidate), for dedupe")
    req_hash: str = Field(pattern=r"^[0-9a-f]{32}$")
    req_id: str | None = None
    candidate: str
    ts_ms: int = Field(ge=0)
    endpoint: str | None = None
    tenant: str | None = None
    complete: bool
    outcome: Outcome
    delta_s: float | None = Field(default=None, ge=0.0, le=1.0)
    exact_match: bool | None = None
    prod_latency_ms: float | None = None
    shadow_latency_ms: float | None = None
    latency_delta_ms: float | None = None
    prod_status: str | None = None
    shadow_status: str | None = None
    status_pair: str | None = Field(default=None, description="'<prod>/<shadow>', e.g. '200/ok'")
    shadow_error_class: str | None = None
    tool_agreement: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Jaccard of (name, args) between prod and shadow"
    )
    tools_stubbed: int = 0
    tools_blocked: int = 0
    prod_pins: dict[str, str] = Field(default_factory=dict)
    candidate_pins: dict[str, str] = Field(default_factory=dict)
