"""``RequestEnvelope``: what the publish hook puts on the requests topic after prod answered."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from shadowlane.contracts.base import Nested, WireModel
from shadowlane.contracts.chat import ChatRequest, TokenUsage, ToolCall


class RecordedToolCall(Nested):
    """A tool call prod executed, with its real output: the shadow's read-only stub answers."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    output: str
    ok: bool = True


def empty_part(value: object) -> bool:
    """Optional parts written only when set: a record without them reads as before they existed."""
    return not value


class RetrievedPassage(Nested):
    """One passage a retriever returned for the request: its id and, when recorded, its text."""

    id: str = Field(min_length=1)
    text: str | None = None


class ProdOutcome(Nested):
    """What prod answered and how long it took, as the user saw it."""

    answer: str | None
    status: int = Field(description="HTTP status prod returned to the client")
    latency_ms: float = Field(ge=0.0)
    model: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: TokenUsage | None = None
    error: str | None = None
    cited_ids: tuple[str, ...] = Field(
        default=(), description="ids of the documents / passages the answer cites (coverage)"
    )
    served_pins: dict[str, str] = Field(
        default_factory=dict,
        exclude_if=empty_part,
        description="pins prod's response said it served with (response model, configured headers, "
        "set_served_pins); written only when set",
    )
    retrieved: tuple[RetrievedPassage, ...] = Field(
        default=(),
        exclude_if=empty_part,
        description="what prod's retriever returned (set_retrieved), texts sanitized; written only when set",
    )


class GoldLabel(Nested):
    """What a correct answer is, when the caller knows it (eval traffic, labelled replays)."""

    answer: str | None = None
    cited_ids: tuple[str, ...] = Field(default=(), description="ids a complete answer must cite")
    source: str | None = Field(default=None, description="where the label comes from, e.g. eval set id")


class Exposure(Nested):
    """Which arm of a rollout flag served the request (A/B or canary), as the router assigned it.

    The exposure log of the feature-flag seed: the report groups A/B traffic by ``arm`` and the
    SRM check counts it; ``bucket`` and ``epoch`` let anyone recompute the assignment."""

    flag: str
    arm: Literal["baseline", "candidate"]
    served_by: str = Field(description="the target that answered (model / deployment id)")
    strategy: str = Field(description="the router's strategy: off, shadow, ab or canary")
    epoch: int = Field(ge=0)
    bucket: float | None = Field(default=None, ge=0.0, lt=1.0, description="the sticky hash in [0, 1)")


class SamplingDecision(Nested):
    """Why this request was mirrored: ``bucket < ratio`` with ``bucket = hash(salt, req_id)``."""

    ratio: float = Field(ge=0.0, le=1.0)
    bucket: float = Field(ge=0.0, lt=1.0)
    salt_id: str
    sampled: bool = True


REQ_HASH_RECIPE = (
    "BLAKE2b with a 16-byte digest, in lowercase hex, over: the UTF-8 bytes of req_id, one zero "
    "byte, and the canonical JSON of this envelope's request object exactly as it is on the wire "
    "(its keys, not schema defaults). Canonical JSON: object keys sorted by code point at every "
    "level, no whitespace, strings as UTF-8 with only the escapes JSON requires, numbers in their "
    "shortest round-trip form."
)


class RequestEnvelope(WireModel):
    """One mirrored prod request. Keyed by ``req_hash`` on every topic."""

    SCHEMA_NAME: ClassVar[str] = "request_envelope"
    schema_version: Literal[1] = 1
    req_id: str = Field(min_length=1, max_length=256)
    req_hash: str = Field(
        pattern=r"^[0-9a-f]{32}$",
        description=REQ_HASH_RECIPE,
    )
    ts_ms: int = Field(ge=0, description="prod response time, ms since the Unix epoch")
    endpoint: str
    tenant: str = "default"
    request: ChatRequest
    prod: ProdOutcome
    tool_io: tuple[RecordedToolCall, ...] = ()
    history_tool_calls: int = Field(
        default=0,
        ge=0,
        exclude_if=empty_part,
        description="how many of tool_io's first entries are calls from the request's conversation "
        "history (assistant tool_calls answered by tool messages), not calls made for this turn; "
        "written only when > 0",
    )
    pins: dict[str, str] = Field(
        default_factory=dict, description="version pins: model_rev, prompt_ver, index_hash, ..."
    )
    trace_id: str | None = None
    sampling: SamplingDecision
    sanitized_fields: int = Field(default=0, ge=0, description="values dropped or masked by the hook")
    gold: GoldLabel | None = None
    paraphrases: tuple[str, ...] = Field(
        default=(),
        max_length=3,
        description="other wordings of the last user message; the shadow's λ replays use them",
    )
    buckets: dict[str, str] = Field(
        default_factory=dict,
        description="breakdown labels set by the service (e.g. tense, person, verb); reports slice by them",
    )
    exposure: Exposure | None = None
