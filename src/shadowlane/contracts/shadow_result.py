"""``ShadowResult``: one candidate's replay of one envelope, produced by a shadow worker."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from shadowlane.contracts.base import Nested, WireModel
from shadowlane.contracts.chat import TokenUsage
from shadowlane.contracts.envelope import RetrievedPassage, empty_part

ToolDisposition = Literal["stubbed_recorded", "stubbed_config", "blocked", "no_stub", "unknown_tool"]
ErrorClass = Literal[
    "timeout", "rate_limited", "server_error", "client_error", "invalid_response", "exception"
]


class ShadowToolCall(Nested):
    """A tool call the candidate attempted and what the read-only sandbox did with it."""

    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    disposition: ToolDisposition
    output: str | None = None
    schema_valid: bool | None = Field(
        default=None,
        description="arguments valid against the offered tool's JSON schema; None: tool not offered",
    )
    schema_error: str | None = None


class StabilitySample(Nested):
    """One extra replay for λ: the same request with another seed, or a paraphrase of it."""

    variant: str = Field(description="'seed:<n>' or 'paraphrase:<i>' (i indexes envelope.paraphrases)")
    seed: int | None = None
    status: Literal["ok", "error"]
    answer: str | None = None
    error_class: ErrorClass | None = None
    retrieved: tuple[RetrievedPassage, ...] = Field(
        default=(), exclude_if=empty_part, description="what the replay retrieved; written only when set"
    )


class ShadowResult(WireModel):
    SCHEMA_NAME: ClassVar[str] = "shadow_result"
    schema_version: Literal[1] = 1
    req_hash: str = Field(pattern=r"^[0-9a-f]{32}$")
    req_id: str
    candidate: str
    pins: dict[str, str] = Field(default_factory=dict)
    shadow_id: str
    ts_ms: int = Field(ge=0)
    status: Literal["ok", "error"]
    error_class: ErrorClass | None = None
    error: str | None = None
    answer: str | None = None
    latency_ms: float = Field(ge=0.0)
    attempts: int = Field(default=1, ge=1)
    tool_calls: tuple[ShadowToolCall, ...] = ()
    usage: TokenUsage | None = None
    model: str | None = Field(default=None, description="model the candidate says answered (pricing)")
    cited_ids: tuple[str, ...] = ()
    stability: tuple[StabilitySample, ...] = Field(
        default=(), description="λ replays (empty when the request was not sampled for λ)"
    )
    traceparent: str | None = Field(
        default=None,
        description="W3C traceparent the replay sent on (its span, else a child of the request's); "
        "also the record's traceparent header. None: the request was not traced",
    )
    served_pins: dict[str, str] = Field(
        default_factory=dict,
        exclude_if=empty_part,
        description="pins the candidate's response said it served with (response model, configured "
        "headers, a callable's pins); written only when set. ``pins`` holds the expected ones",
    )
    retrieved: tuple[RetrievedPassage, ...] = Field(
        default=(), exclude_if=empty_part, description="what the replay retrieved; written only when set"
    )
