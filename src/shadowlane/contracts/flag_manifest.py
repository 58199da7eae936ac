"""``FlagManifest``: the rollout flags of the seed's YAML template, as a strict, frozen contract.

A manifest declares, per flag: the scope it applies to, the version pins behind it, its traffic
weights and the staged-rollout ladder, the gates a candidate must pass to graduate, and the abort
rules that stop it. Operators write it as YAML (``deploy/flags/feature_flags.yml``);
:func:`shadowlane.rollout.manifest.load_manifest` parses and validates it, and it travels signed on
the control topic (one ``ControlRecord`` of kind ``flag_manifest`` per flag, whose payload is a
manifest holding that one flag).

Gates and the ``WindowSummary`` metric each reads (all over one evaluation window):

======================== ======================================== ============================
gate                     metric                                   passes when
======================== ======================================== ============================
delta_s.median_max       excess ΔS median                         metric ≤ gate
                         (``delta_s_excess_median``; raw
                         ``delta_s_median`` without a floor)
delta_s.p95_max          excess ΔS p95 (``delta_s_excess_p95``;   metric ≤ gate
                         raw ``delta_s_p95`` without a floor)
coverage_min             ``coverage_mean``                        metric ≥ gate
lambda_convergent        ``lambda_flip_rate``                     metric ≤ lambda_flip_rate_max
latency_p95_uplift_max   ``latency_p95_uplift``                   metric ≤ gate
error_rate_max           ``shadow_error_rate``                    metric ≤ gate
error_rate_margin        ``error_rate_delta``: candidate's error  metric ≤ gate ("no worse
                         rate − prod's on the same requests       than prod by more than X")
tool_success_min         ``tool_success_rate``                    metric ≥ gate
cost_uplift_max          ``cost_uplift`` (per solved request)     metric ≤ gate
accuracy_drop_max        (prod_solved − shadow_solved) / graded   metric ≤ gate
retrieval_delta_s_max    ``retrieval_delta_s_p95``: p95 of each   metric ≤ gate
                         request's worst ΔS(question, retrieved)
                         over it and its λ paraphrases
retrieval_coverage_min   ``retrieval_coverage_mean``              metric ≥ gate
======================== ======================================== ============================

The seed's "λ remains convergent" is read as a rate: the candidate's λ state (convergent or not
across paraphrases and seeds) must agree with the baseline's on all but ``lambda_flip_rate_max`` of
the paired requests. Its default, 0.10, sits below the seed's hard stop (flip rate > 0.20) the way
every other gate sits below its abort (ΔS p95 0.10 vs 0.15, coverage 0.70 vs 0.60, errors 0.5 %
vs 1 %), so a window between the two holds the rollout instead of graduating or aborting it.

The abort kind ``pin_mismatch_rate_over`` reads ``pin_mismatch_rate`` (comparisons whose candidate
served with other pins than it was expected to, over those checked: ``shadowlane.compare.pins``).
A pin mismatch is a fact, not a noisy estimate: the rule fires as soon as the rate exceeds its
value, whatever the sample size (also below ``min_samples``) and without a confidence bound. Its
default, value 0, rolls back on the first request a candidate serves from the wrong model, prompt
or index revision.

A gate set to ``null`` is off. A window with fewer than ``min_samples`` comparisons decides
nothing (neither graduation nor abort, except ``pin_mismatch_rate_over`` above), and a gate whose
metric the window lacks (no grader, no coverage) is skipped, not failed. Hard abort rules roll
traffic back to the baseline at once; soft rules stop graduation and alert.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Self, get_args

from pydantic import Field, StringConstraints, ValidationInfo, field_validator, model_validator

from shadowlane.contracts.base import Nested
from shadowlane.contracts.route_config import RouteScope

RateKind = Literal[
    "delta_s_median_over",
    "delta_s_p95_over",
    "coverage_under",
    "lambda_flip_rate_over",
    "error_rate_over",
    "tool_success_under",
    "accuracy_drop_over",
    "pin_mismatch_rate_over",
]
"""Threshold kinds whose ``value`` is a rate or a ΔS."""

ThresholdKind = Literal[RateKind, "latency_p95_uplift_over", "cost_uplift_over"]
"""Abort kinds that compare one window metric with the rule's own ``value``."""

BudgetKind = Literal["latency_p95_over_budget", "cost_per_solved_over_budget"]
"""Abort kinds whose ``value`` may be omitted: the budget is then the matching gate
(``latency_p95_uplift_max``, ``cost_uplift_max``)."""

AbortKind = Literal[ThresholdKind, BudgetKind]

FLAG_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
FlagName = Annotated[str, StringConstraints(pattern=FLAG_NAME, max_length=128)]
DEFAULT_STAGES = (0.0, 0.05, 0.25, 0.50, 1.0)
_RATE_KINDS = frozenset(get_args(RateKind))
_BUDGET_GATES: dict[str, str] = {
    "latency_p95_over_budget": "latency_p95_uplift_max",
    "cost_per_solved_over_budget": "cost_uplift_max",
}
_MAX_UPLIFT = 10.0


def _check_value(kind: str | None, value: float | None) -> float | None:
    if value is None or kind is None:
        return value
    high = 1.0 if kind in _RATE_KINDS else _MAX_UPLIFT
    if not 0.0 <= value <= high:
        raise ValueError(f"must be in [0, {high:g}] for kind {kind!r} (got {value:g})")
    return value


class DeltaSGate(Nested):
    median_max: float | None = Field(default=0.03, ge=0.0, le=1.0, description="max ΔS median vs prod")
    p95_max: float | None = Field(default=0.10, ge=0.0, le=1.0, description="max ΔS p95 vs prod")


class Gates(Nested):
    """Acceptance targets for graduating one stage (defaults: the seed's). ``null`` turns a gate off."""

    delta_s: DeltaSGate = Field(default_factory=DeltaSGate)
    coverage_min: float | None = Field(default=0.70, ge=0.0, le=1.0, description="min mean coverage")
    lambda_convergent: bool = Field(
        default=True, description="λ gate on: the λ flip rate vs prod must stay ≤ lambda_flip_rate_max"
    )
    lambda_flip_rate_max: float = Field(
        default=0.10, ge=0.0, le=1.0, description="max share of paired requests whose λ state flips"
    )
    latency_p95_uplift_max: float | None = Field(
        default=0.15, ge=0.0, le=_MAX_UPLIFT, description="max p95 latency uplift vs prod (0.15 = +15 %)"
    )
    error_rate_max: float | None = Field(
        default=0.005, ge=0.0, le=1.0, description="max candidate error rate"
    )
    error_rate_margin: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="max candidate error rate above prod's on the same requests (0.003 = no worse "
        "than prod by more than 0.3 points); off by default. Use it in place of error_rate_max when "
        "prod's own rate sits near that bound (docs/gates.md#thresholds-a-sample-can-prove)",
    )
    tool_success_min: float | None = Field(default=0.99, ge=0.0, le=1.0, description="min tool-call success")
    cost_uplift_max: float | None = Field(
        default=0.10, ge=0.0, le=_MAX_UPLIFT, description="max cost-per-solved uplift vs prod (0.10 = +10 %)"
    )
    accuracy_drop_max: float | None = Field(
        default=0.02,
        ge=0.0,
        le=1.0,
        description="max drop in solved rate vs prod on graded requests (0.02 = gold eval regression ≤ 2 "
        "points)",
    )
    retrieval_delta_s_max: float | None = Field(
        default=0.45,
        ge=0.0,
        le=1.0,
        description="max p95 of ΔS(question, retrieved), each request's worst over its λ paraphrases "
        "(the seed's ≤ 0.45 across three paraphrases); skipped while a window carries no retrieval",
    )
    retrieval_coverage_min: float | None = Field(
        default=0.70,
        ge=0.0,
        le=1.0,
        description="min mean share of the gold label's cited ids (the expected section) the candidate "
        "retrieved (the seed's coverage ≥ 0.70 on the expected section); skipped without gold labels",
    )


class HardAbortRule(Nested):
    """Rolls traffic back to the baseline at once when ``value`` is crossed (a value is required)."""

    kind: AbortKind
    value: float = Field(description="threshold; rates in [0, 1], uplifts in [0, 10]")

    @field_validator("value")
    @classmethod
    def _value_in_range(cls, value: float, info: ValidationInfo) -> float:
        _check_value(info.data.get("kind"), value)
        return value


class SoftAbortRule(Nested):
    """Stops graduation and alerts; ``*_over_budget`` kinds default their value to the gate's budget."""

    kind: AbortKind
    value: float | None = Field(
        default=None, validate_default=True, description="threshold; optional for *_over_budget kinds"
    )

    @field_validator("value")
    @classmethod
    def _value_needed_and_in_range(cls, value: float | None, info: ValidationInfo) -> float | None:
        kind = info.data.get("kind")
        if value is None and kind is not None and kind not in _BUDGET_GATES:
            raise ValueError(f"required for kind {kind!r} (only *_over_budget kinds can omit it)")
        return _check_value(kind, value)


class AbortRules(Nested):
    hard: tuple[HardAbortRule, ...] = Field(
        default=(
            HardAbortRule(kind="delta_s_p95_over", value=0.15),
            HardAbortRule(kind="coverage_under", value=0.60),
            HardAbortRule(kind="lambda_flip_rate_over", value=0.20),
            HardAbortRule(kind="error_rate_over", value=0.01),
            HardAbortRule(kind="pin_mismatch_rate_over", value=0.0),
        ),
        description="roll back at once; defaults: the seed's hard stops, and any pin mismatch",
    )
    soft: tuple[SoftAbortRule, ...] = Field(
        default=(
            SoftAbortRule(kind="latency_p95_over_budget"),
            SoftAbortRule(kind="cost_per_solved_over_budget"),
        ),
        description="hold and alert; defaults: latency and cost over budget",
    )

    @field_validator("hard", "soft")
    @classmethod
    def _kinds_unique(
        cls, rules: tuple[HardAbortRule | SoftAbortRule, ...], info: ValidationInfo
    ) -> tuple[HardAbortRule | SoftAbortRule, ...]:
        seen: dict[str, int] = {}
        for i, rule in enumerate(rules):
            if rule.kind in seen:
                raise ValueError(f"kind {rule.kind!r} is listed twice ([{seen[rule.kind]}] and [{i}])")
            seen[rule.kind] = i
        return rules


class Traffic(Nested):
    """Served traffic split between the baseline and the canary; the two weights sum to 1."""

    baseline_weight: float = Field(ge=0.0, le=1.0, description="share of keys served the baseline")
    canary_weight: float = Field(ge=0.0, le=1.0, description="share of keys served the candidate")
    shadow_ratio: float = Field(
        default=0.01, ge=0.0, le=1.0, description="share of requests mirrored to the candidate in shadow"
    )

    @model_validator(mode="after")
    def _weights_sum_to_one(self) -> Self:
        total = self.baseline_weight + self.canary_weight
        if not math.isclose(total, 1.0, abs_tol=1e-9):
            raise ValueError(
                f"baseline_weight + canary_weight must be 1 "
                f"(got {self.baseline_weight:g} + {self.canary_weight:g} = {total:g})"
            )
        return self


class FlagSpec(Nested):
    """One flag: scope, pins, traffic, the stage ladder, gates and abort rules."""

    scope: RouteScope = Field(default_factory=RouteScope, description="tenants, regions, endpoints")
    candidate: str | None = Field(
        default=None,
        pattern=r"^\S+$",
        description="the Shadowlane candidate / target the canary arm serves; null means the flag name",
    )
    baseline: str | None = Field(default=None, pattern=r"^\S+$", description="the pinned baseline target")
    versions: dict[str, str] = Field(
        default_factory=dict,
        description="version pins behind the flag: MODEL_VER, PROMPT_VER, INDEX_HASH, ...",
    )
    traffic: Traffic
    stages: tuple[float, ...] = Field(
        default=DEFAULT_STAGES,
        description="canary weights to graduate through: strictly increasing in [0, 1], ending at 1; 0 means "
        "shadow only",
    )
    evaluation_window_s: float = Field(
        default=600.0,
        ge=60.0,
        le=7 * 24 * 3600.0,
        description="how long every gate must stay green before graduating: 10 of the comparator's "
        "60 s summary windows by default",
    )
    min_samples: int = Field(
        default=200, ge=1, description="fewer comparisons in an evaluation window decide nothing"
    )
    gates: Gates = Field(default_factory=Gates)
    abort_rules: AbortRules = Field(default_factory=AbortRules)

    @field_validator("versions")
    @classmethod
    def _pins_not_blank(cls, versions: dict[str, str]) -> dict[str, str]:
        for key, value in versions.items():
            if not key.strip() or not value.strip():
                raise ValueError(f"pin {key!r}: names and values must not be blank")
        return versions

    @field_validator("stages")
    @classmethod
    def _stages_ladder(cls, stages: tuple[float, ...]) -> tuple[float, ...]:
        if not stages:
            raise ValueError("must list at least one stage (1.0)")
        for i, stage in enumerate(stages):
            if not 0.0 <= stage <= 1.0:
                raise ValueError(f"[{i}] must be in [0, 1] (got {stage:g})")
            if i and stage <= stages[i - 1]:
                raise ValueError(
                    f"must be strictly increasing: [{i}] = {stage:g} follows [{i - 1}] = {stages[i - 1]:g}"
                )
        if stages[-1] != 1.0:
            raise ValueError(f"must end at 1.0, full rollout (got {stages[-1]:g})")
        return stages

    @model_validator(mode="after")
    def _budgets_exist(self) -> Self:
        for i, rule in enumerate(self.abort_rules.soft):
            gate = _BUDGET_GATES.get(rule.kind)
            if rule.value is None and gate is not None and getattr(self.gates, gate) is None:
                raise ValueError(
                    f"abort_rules.soft[{i}]: {rule.kind} has no value and gates.{gate} is null, "
                    f"so it has no budget"
                )
        return self

    def threshold(self, rule: HardAbortRule | SoftAbortRule) -> float:
        """The number a rule compares with: its value, or for a budget kind the matching gate."""
        if rule.value is not None:
            return rule.value
        budget: float | None = getattr(self.gates, _BUDGET_GATES[rule.kind])
        if budget is None:  # unreachable for a validated spec: _budgets_exist refuses it
            raise ValueError(f"{rule.kind} has no value and its gate is off")
        return budget

    def next_stage(self, weight: float) -> float | None:
        """The first stage above ``weight``, or None at full rollout."""
        return next((s for s in self.stages if s > weight + 1e-12), None)


class FlagManifest(Nested):
    """A flag manifest document: ``flags`` maps each flag name to its spec."""

    flags: dict[FlagName, FlagSpec] = Field(
        min_length=1, description="flag name -> spec; names like prompt_pack_vNplus1"
    )

    def candidate(self, flag: str) -> str:
        """The candidate a flag's canary arm serves (its ``candidate``, else the flag name)."""
        return self.flags[flag].candidate or flag

    def split(self) -> dict[str, FlagManifest]:
        """One single-flag manifest per flag: the payloads of the per-flag control records."""
        return {name: FlagManifest(flags={name: spec}) for name, spec in self.flags.items()}
