"""``Comparison``: the comparator's verdict on one (request, candidate) pair."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from shadowlane.contracts.base import WireModel

Outcome = Literal["joined", "shadow_timeout", "request_missing"]
LambdaState = Literal["convergent", "divergent"]
DivergenceKind = Literal["tool_name", "tool_args", "answer", "extra_step", "missing_step"]


def traffic_arm_of(candidate: str, baseline: str | None) -> str:
    """The ``traffic_arm`` of a candidate's comparisons: ``baseline`` for the noise floor (prod's
    own model replayed through the shadow path), ``shadow`` for every other candidate."""
    return "baseline" if candidate == baseline else "shadow"


class Comparison(WireModel):
    """Prod vs candidate for one request. ``complete`` is False when one side never arrived."""

    SCHEMA_NAME: ClassVar[str] = "comparison"
    FLAT: ClassVar[bool] = True
    schema_version: Literal[1] = 1
    comparison_id: str = Field(description="deterministic: hash(req_hash, candidate), for dedupe")
    req_hash: str = Field(pattern=r"^[0-9a-f]{32}$")
    req_id: str | None = None
    candidate: str
    traffic_arm: str = Field(
        default="shadow", description="'baseline' for the noise-floor shadow, else 'shadow'"
    )
    ts_ms: int = Field(ge=0, description="event time: the request's prod response time (else the result's)")
    endpoint: str | None = None
    tenant: str | None = None
    buckets: dict[str, str] = Field(default_factory=dict, description="the request's breakdown labels")
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
    # --- noise floor (three-way): the built-in baseline shadow replays prod's model and pins
    delta_s_floor: float | None = Field(
        default=None, ge=0.0, le=1.0, description="ΔS(prod, baseline replay) for this request"
    )
    delta_s_excess: float | None = Field(
        default=None,
        ge=-1.0,
        le=1.0,
        description="delta_s − delta_s_floor (signed): drift beyond what nondeterminism alone gives",
    )
    # --- gold
    delta_s_gold: float | None = Field(default=None, ge=0.0, le=1.0, description="ΔS(gold, candidate)")
    prod_delta_s_gold: float | None = Field(default=None, ge=0.0, le=1.0, description="ΔS(gold, prod)")
    grader: str | None = Field(default=None, description="'<name>@<version>' of the grader that set *_solved")
    prod_solved: bool | None = None
    shadow_solved: bool | None = None
    # --- λ (stability across seeds and paraphrases)
    lambda_state: LambdaState | None = None
    lambda_max_ds: float | None = Field(
        default=None, ge=0.0, le=1.0, description="max pairwise ΔS of λ replays"
    )
    lambda_samples: int = Field(default=0, ge=0)
    lambda_threshold: float | None = None
    baseline_lambda_state: LambdaState | None = None
    lambda_flip: bool | None = Field(
        default=None, description="baseline convergent and this candidate divergent on this request"
    )
    # --- coverage, tools, cost
    coverage: float | None = Field(
        default=None, ge=0.0, le=1.0, description="share of target ids (gold, else prod) the candidate cites"
    )
    coverage_target: Literal["gold", "prod"] | None = None
    tool_calls: int = Field(default=0, ge=0, description="candidate tool calls")
    tool_valid: int = Field(
        default=0, ge=0, description="calls naming an offered tool with schema-valid args"
    )
    tool_success: float | None = Field(default=None, ge=0.0, le=1.0, description="tool_valid / tool_calls")
    tool_matched_prod: int = Field(default=0, ge=0, description="calls equal to a recorded prod call")
    prod_cost_usd: float | None = Field(default=None, ge=0.0)
    shadow_cost_usd: float | None = Field(default=None, ge=0.0)
    traceparent: str | None = Field(
        default=None,
        description="W3C traceparent of the shadow result, copied (None: not traced, or no result)",
    )
    delta_s_embedder: str | None = Field(
        default=None,
        description="name of the embedder whose ΔS fields (delta_s, delta_s_floor, delta_s_gold, "
        "prod_delta_s_gold, lambda_max_ds) this comparison carries: set on every joined comparison "
        "built with an embedder, None without one and on incomplete comparisons. ΔS values of "
        "different embedders are not comparable",
    )
    # --- pins verified (expected vs what each side's response says it served with)
    candidate_served_pins: dict[str, str] | None = Field(
        default=None,
        description="pins the candidate's response said it served with (response model, configured "
        "headers, a callable's pins); None: the replay reported none",
    )
    pin_mismatch: bool | None = Field(
        default=None,
        description="a pin the candidate was expected to serve with (candidate_pins) differs from, or "
        "is missing in, what it served with; None: nothing to check",
    )
    pin_mismatch_keys: tuple[str, ...] | None = Field(
        default=None, description="the candidate's differing pin keys, sorted (None: nothing checked)"
    )
    prod_served_pins: dict[str, str] | None = Field(
        default=None, description="pins prod's response said it served with; None: the hook recorded none"
    )
    prod_pin_mismatch: bool | None = Field(
        default=None, description="prod's own pins (prod_pins) against what prod served with"
    )
    prod_pin_mismatch_keys: tuple[str, ...] | None = Field(
        default=None, description="prod's differing pin keys, sorted (None: nothing checked)"
    )
    # --- agent replay: where a multi-step tool run first diverged from prod's
    prod_steps: int | None = Field(
        default=None, ge=0, description="tool steps of prod's run (None: neither side used tools)"
    )
    shadow_steps: int | None = Field(default=None, ge=0, description="tool steps of the candidate's replay")
    first_divergent_step: int | None = Field(
        default=None, ge=1, description="1-based step where the candidate first differs (None: it never does)"
    )
    divergence_kind: DivergenceKind | None = None
    divergence_tool: str | None = Field(
        default=None, description="the tool of the divergent step (prod's, else the candidate's)"
    )
    divergence_prod: str | None = Field(
        default=None,
        description="what prod did at that step: 'tool(canonical args)' or its answer, masked, cut",
    )
    divergence_shadow: str | None = Field(
        default=None, description="what the candidate did at that step, as divergence_prod"
    )
    # --- retrieval drift: what each arm retrieved for the question
    prod_retrieval_delta_s: float | None = Field(
        default=None, ge=0.0, le=1.0, description="ΔS(question, prod's retrieved passages)"
    )
    retrieval_delta_s: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="ΔS(question, the candidate's retrieved passages): the worst over the request and "
        "its λ paraphrases that reported retrieval",
    )
    retrieval_paraphrases: int | None = Field(
        default=None, ge=0, description="λ paraphrases whose retrieval retrieval_delta_s covers"
    )
    retrieval_overlap: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Jaccard of the retrieved ids, prod vs candidate: the lowest over the request and its "
        "λ paraphrases that reported retrieval",
    )
    retrieval_coverage: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="share of the target ids (gold cited ids, else prod's retrieved ids) the candidate "
        "retrieved: the lowest over the request and its λ paraphrases that reported retrieval",
    )
    retrieval_coverage_target: Literal["gold", "prod"] | None = None
