"""The report's own rows, filled from wire records, and the pluggable grader.

The analysis never sees a wire record: :func:`shadow_row` reads a :class:`Comparison` (one
request × one candidate on the compare topic) and :func:`ab_row` a :class:`RequestEnvelope`
served under a rollout flag (``exposure`` set). This is the one place that knows the contracts,
so the statistics can be unit-tested on rows built by hand.

Errors: prod (and an A/B arm, which is what prod served) errs when its HTTP status is ≥ 500; the
shadow errs when its status is not ``ok`` (timeouts, connection errors, candidate 5xx).

Grading is pluggable: an :class:`AnswerGrader` has a ``name`` that includes its version
(``"contains@1"``) and ``solved(answer, gold)`` (None when there is no gold to grade against).
The default, :class:`SettingsGrader`, wraps the comparator's own :class:`Grader` so A/B answers
are graded exactly as the comparator graded the shadow pairs; its ``delta_s`` kind needs an
embedding and so grades nothing offline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from shadowlane.compare.quality import Grader
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.settings import CompareSettings

Arm = Literal["baseline", "candidate"]


class AnswerGrader(Protocol):
    """Says whether an answer solves a request, given its gold answer."""

    @property
    def name(self) -> str:
        """``<kind>@<version>``: two graders with the same name grade the same way."""
        ...

    def solved(self, answer: str | None, gold: str | None) -> bool | None:
        """True / False, or None when it cannot grade (no gold)."""
        ...


class SettingsGrader:
    """The comparator's grader (``compare.grader`` of the settings) as an :class:`AnswerGrader`."""

    def __init__(self, settings: CompareSettings) -> None:
        self._grader = Grader(settings)

    @property
    def name(self) -> str:
        return self._grader.name

    def solved(self, answer: str | None, gold: str | None) -> bool | None:
        return self._grader.solved(answer, gold, None)


@dataclass(frozen=True, slots=True)
class ShadowRow:
    """One comparison: prod vs one shadow candidate on one request."""

    req_hash: str
    req_id: str | None
    candidate: str
    noise_floor: bool  # the baseline replay (traffic_arm == "baseline")
    outcome: str  # joined, shadow_timeout, request_missing
    ts_ms: int
    exact_match: bool | None = None
    delta_s: float | None = None
    delta_s_floor: float | None = None
    delta_s_excess: float | None = None
    delta_s_embedder: str | None = None  # the embedder that defined the ΔS fields
    prod_latency_ms: float | None = None
    shadow_latency_ms: float | None = None
    prod_error: bool | None = None
    shadow_error: bool | None = None
    grader: str | None = None
    prod_solved: bool | None = None
    shadow_solved: bool | None = None
    buckets: dict[str, str] = field(default_factory=dict)
    prod_pins: dict[str, str] = field(default_factory=dict)
    candidate_pins: dict[str, str] = field(default_factory=dict)
    pin_mismatch_keys: tuple[str, ...] | None = None  # pins verified (compare.pins); None: unchecked
    prod_pin_mismatch_keys: tuple[str, ...] | None = None
    # agent replay: where the candidate's tool run first left prod's (compare.agent_steps)
    prod_steps: int | None = None
    first_divergent_step: int | None = None
    divergence_kind: str | None = None
    divergence_tool: str | None = None
    divergence_prod: str | None = None
    divergence_shadow: str | None = None
    # retrieval drift (compare.retrieval)
    prod_retrieval_delta_s: float | None = None
    retrieval_delta_s: float | None = None
    retrieval_paraphrases: int | None = None
    retrieval_overlap: float | None = None
    retrieval_coverage: float | None = None
    retrieval_coverage_target: str | None = None


@dataclass(frozen=True, slots=True)
class AbRow:
    """One request served under a rollout flag: the arm that served it and what it answered."""

    req_hash: str
    req_id: str
    ts_ms: int
    flag: str
    arm: Arm
    served_by: str
    strategy: str
    epoch: int
    latency_ms: float
    status: int
    answer: str | None = None
    gold: str | None = None
    buckets: dict[str, str] = field(default_factory=dict)
    pins: dict[str, str] = field(default_factory=dict)

    @property
    def error(self) -> bool:
        return self.status >= 500


@dataclass(frozen=True, slots=True)
class AnswerText:
    """Answer texts of one request, for disagreement examples (looked up when available)."""

    prod: str | None = None
    shadow: str | None = None
    gold: str | None = None


def _http_error(status: str | None) -> bool | None:
    if status is None:
        return None
    return not status.isdigit() or int(status) >= 500


def shadow_row(c: Comparison) -> ShadowRow:
    """The row of one comparison (the contract's ``buckets`` read defensively)."""
    return ShadowRow(
        req_hash=c.req_hash,
        req_id=c.req_id,
        candidate=c.candidate,
        noise_floor=c.traffic_arm == "baseline",
        outcome=c.outcome,
        ts_ms=c.ts_ms,
        exact_match=c.exact_match,
        delta_s=c.delta_s,
        delta_s_floor=c.delta_s_floor,
        delta_s_excess=c.delta_s_excess,
        delta_s_embedder=c.delta_s_embedder,
        prod_latency_ms=c.prod_latency_ms,
        shadow_latency_ms=c.shadow_latency_ms,
        prod_error=_http_error(c.prod_status),
        shadow_error=None if c.shadow_status is None else c.shadow_status != "ok",
        grader=c.grader,
        prod_solved=c.prod_solved,
        shadow_solved=c.shadow_solved,
        buckets=dict(getattr(c, "buckets", None) or {}),
        prod_pins=dict(c.prod_pins),
        candidate_pins=dict(c.candidate_pins),
        pin_mismatch_keys=c.pin_mismatch_keys,
        prod_pin_mismatch_keys=c.prod_pin_mismatch_keys,
        prod_steps=c.prod_steps,
        first_divergent_step=c.first_divergent_step,
        divergence_kind=c.divergence_kind,
        divergence_tool=c.divergence_tool,
        divergence_prod=c.divergence_prod,
        divergence_shadow=c.divergence_shadow,
        prod_retrieval_delta_s=c.prod_retrieval_delta_s,
        retrieval_delta_s=c.retrieval_delta_s,
        retrieval_paraphrases=c.retrieval_paraphrases,
        retrieval_overlap=c.retrieval_overlap,
        retrieval_coverage=c.retrieval_coverage,
        retrieval_coverage_target=c.retrieval_coverage_target,
    )


def ab_row(env: RequestEnvelope) -> AbRow | None:
    """The row of an envelope served under a flag, or None when no exposure was recorded."""
    exposure = getattr(env, "exposure", None)
    if exposure is None:
        return None
    return AbRow(
        req_hash=env.req_hash,
        req_id=env.req_id,
        ts_ms=env.ts_ms,
        flag=exposure.flag,
        arm=exposure.arm,
        served_by=exposure.served_by,
        strategy=exposure.strategy,
        epoch=exposure.epoch,
        latency_ms=env.prod.latency_ms,
        status=env.prod.status,
        answer=env.prod.answer,
        gold=env.gold.answer if env.gold else None,
        buckets=dict(getattr(env, "buckets", None) or {}),
        pins=dict(env.pins),
    )
