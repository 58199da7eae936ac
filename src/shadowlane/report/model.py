"""The report's data: options, inputs and the frozen results the analysis returns.

Every result is a frozen dataclass holding the ``shadowlane.stats`` results it was computed from
(``ProportionCI``, ``TwoProportionTest``, ``QuantileCI``, ``MannWhitneyResult``, ``SrmResult``), so
the renderers print exactly the numbers the tests check against scipy. Differences are always
*candidate − baseline*; in the shadow source the baseline is prod, in the A/B source the flag's
baseline arm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from shadowlane.report.pins import PinChecks
from shadowlane.report.retrieval import RetrievalDrift
from shadowlane.report.rows import AbRow, AnswerText, ShadowRow
from shadowlane.rollout.gates import Decision as GateDecision
from shadowlane.stats.proportions import ProportionCI, TwoProportionTest
from shadowlane.stats.quantiles import EffectCI, QuantileCI
from shadowlane.stats.ranks import MannWhitneyResult
from shadowlane.stats.srm import SrmResult

Decision = Literal["promote", "hold", "retrain"]


class GraderMixError(ValueError):
    """The rows were graded by more than one grader version: the report refuses to mix them."""


@dataclass(frozen=True, slots=True)
class ReportOptions:
    confidence: float = 0.95
    alpha: float = 0.05
    allowed_regression: float = 0.02
    latency_budget: float = 0.15
    min_samples: int = 30
    min_latency_samples: int = 20
    ab_weight: float = 0.5  # planned share of the candidate arm
    srm_alpha: float = 0.001
    max_examples: int = 5


@dataclass(frozen=True, slots=True)
class ReportInput:
    from_ms: int
    to_ms: int
    candidate: str | None
    noise_floor: str | None
    flag: str | None
    shadow: Sequence[ShadowRow] = ()
    ab: Sequence[AbRow] = ()
    answers: Mapping[str, AnswerText] = field(default_factory=dict)  # by req_hash


@dataclass(frozen=True, slots=True)
class Accuracy:
    baseline: ProportionCI | None
    candidate: ProportionCI | None
    test: TwoProportionTest | None  # candidate − baseline
    enough_data: bool


@dataclass(frozen=True, slots=True)
class BucketRow:
    key: str
    value: str
    baseline: ProportionCI | None
    candidate: ProportionCI | None
    test: TwoProportionTest | None


@dataclass(frozen=True, slots=True)
class ArmLatency:
    n: int
    p50: QuantileCI
    p95: QuantileCI
    p99: QuantileCI
    cdf: tuple[float, ...]  # quantiles at 0, 0.01, ..., 1


@dataclass(frozen=True, slots=True)
class Latency:
    baseline: ArmLatency | None
    candidate: ArmLatency | None
    mwu: MannWhitneyResult | None  # candidate vs baseline, two-sided
    p95_ratio: EffectCI | None
    enough_data: bool
    regression: bool


@dataclass(frozen=True, slots=True)
class Errors:
    baseline: ProportionCI | None
    candidate: ProportionCI | None
    test: TwoProportionTest | None
    regression: bool


@dataclass(frozen=True, slots=True)
class DeltaS:
    n: int
    n_floor: int
    median: float | None
    p95: float | None
    floor_median: float | None
    floor_p95: float | None
    excess_median: float | None
    excess_p95: float | None
    edges: tuple[float, ...]
    hist: tuple[int, ...]
    floor_hist: tuple[int, ...]
    mwu: MannWhitneyResult | None  # ΔS vs floor, two-sided
    embedders: tuple[tuple[str, int], ...] = ()  # (embedder, rows) of the rows above, most first
    n_paired: int = 0  # rows with both ΔS and a floor: what the excess ΔS is computed over


@dataclass(frozen=True, slots=True)
class Example:
    req_id: str | None
    req_hash: str
    buckets: dict[str, str]
    delta_s: float | None
    delta_s_floor: float | None
    text: AnswerText | None


@dataclass(frozen=True, slots=True)
class Disagreements:
    joined: int
    total: int
    improved: int
    regressed: int
    neutral: int
    ungraded: int  # part of neutral
    mcnemar_p: float | None
    examples: dict[str, tuple[Example, ...]]  # improved / regressed / neutral


@dataclass(frozen=True, slots=True)
class DivergenceExample:
    req_id: str | None
    req_hash: str
    prod: str | None  # what prod did at the step: 'tool(args)' or its answer
    candidate: str | None  # what the candidate did there


@dataclass(frozen=True, slots=True)
class DivergenceGroup:
    tool: str | None  # the step's tool (None: the final answer)
    kind: str  # tool_name, tool_args, answer, extra_step, missing_step
    step: int  # 1-based
    count: int
    share: float  # of the judged agent runs
    examples: tuple[DivergenceExample, ...]


@dataclass(frozen=True, slots=True)
class FirstDivergences:
    """Agent runs (tool steps on either side, replay finished) and where the candidate's run first
    left prod's, grouped by (tool, kind, step), most common first."""

    runs: int
    diverged: int
    groups: tuple[DivergenceGroup, ...]
    other_groups: int  # groups past the ones listed
    other_count: int  # their divergences


@dataclass(frozen=True, slots=True)
class ShadowSection:
    candidate: str
    noise_floor: str | None
    comparisons: int
    joined: int
    timeouts: int
    missing: int
    accuracy: Accuracy
    buckets: tuple[BucketRow, ...]
    latency: Latency
    errors: Errors
    delta_s: DeltaS
    disagreements: Disagreements
    prod_pins: tuple[dict[str, str], ...]
    candidate_pins: tuple[dict[str, str], ...]
    floor_pins: tuple[dict[str, str], ...]
    agent: FirstDivergences | None = None  # None: no agent runs among the joined comparisons
    retrieval: RetrievalDrift | None = None  # None: no arm reported retrieval
    pin_checks: PinChecks | None = None  # the candidate's served pins vs its expected; None: unchecked
    prod_pin_checks: PinChecks | None = None  # prod's served pins vs its claimed


@dataclass(frozen=True, slots=True)
class AbSection:
    flag: str
    counts: dict[str, int]  # per arm
    excluded: int  # exposures of the flag under off / shadow
    accuracy: Accuracy
    buckets: tuple[BucketRow, ...]
    latency: Latency
    errors: Errors
    srm: SrmResult
    weights: tuple[float, float]  # baseline, candidate
    served_by: dict[str, tuple[str, ...]]
    pins: dict[str, tuple[dict[str, str], ...]]
    epochs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Recommendation:
    decision: Decision
    reasons: tuple[str, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GateSection:
    """The flag's gates on the report's range (``shadowlane gate``'s decision) and the summaries read."""

    decision: GateDecision
    partials: int


@dataclass(frozen=True, slots=True)
class Report:
    from_ms: int
    to_ms: int
    candidate: str | None
    flag: str | None
    grader: str | None
    options: ReportOptions
    shadow: ShadowSection | None
    ab: AbSection | None
    recommendation: Recommendation
    notes: tuple[str, ...] = ()
    gates: GateSection | None = None  # None: no shadow candidate, or gates not judged
