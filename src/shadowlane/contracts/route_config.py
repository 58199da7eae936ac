"""``RouteConfig``: one rollout flag, the input of the sticky router (``shadowlane.rollout.router``).

A flag is an ordered list of rules. Each rule has a scope (tenants, regions, endpoints) and a
strategy: ``off`` (serve the baseline), ``shadow`` (serve the baseline, mirror a share of requests
to the candidate), ``ab`` and ``canary`` (serve the candidate to a weighted, sticky share of keys).
The first rule whose scope matches a request decides; no match means ``off``. ``kill`` turns the
whole flag off at once: every request is served its baseline and nothing is mirrored.

The contract is strict on purpose: a config that would do something other than what it seems to
say (a weight outside [0, 1], a candidate missing or equal to the baseline, a weight the strategy
ignores, a rule an earlier rule hides) fails validation with a message naming the field, so a bad
config is refused when it is loaded instead of silently routing users.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from shadowlane.contracts.base import Nested, WireModel

Strategy = Literal["off", "shadow", "ab", "canary"]
StickyOn = Literal["request_id", "user_id"]

WILDCARDS = frozenset({"*", "all"})
"""Scope values that match anything. A scope list holds either one of them alone or names only."""

_TARGET = r"^\S+$"


def is_wildcard(values: tuple[str, ...]) -> bool:
    """True when a scope list matches any value (``["*"]`` or ``["all"]``)."""
    return len(values) == 1 and values[0] in WILDCARDS


class RouteScope(Nested):
    """Which requests a rule applies to: all three lists must match (a logical AND)."""

    tenants: tuple[str, ...] = Field(
        default=("*",), description='tenant ids the rule applies to; ["*"] or ["all"] means any tenant'
    )
    regions: tuple[str, ...] = Field(
        default=("*",), description='regions (e.g. "us-east-1"); ["*"] or ["all"] means any region'
    )
    endpoints: tuple[str, ...] = Field(
        default=("*",),
        description='endpoint paths, matched exactly (e.g. "/v1/chat/completions"); ["*"] or ["all"] '
        "means any",
    )

    @field_validator("tenants", "regions", "endpoints")
    @classmethod
    def _one_wildcard_or_names(cls, values: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        name = info.field_name
        if not values:
            raise ValueError(f'scope.{name} is empty, so the rule matches nothing: use ["*"] to match any')
        if any(not v or v != v.strip() for v in values):
            raise ValueError(f"scope.{name} holds an empty or whitespace-padded value: {list(values)!r}")
        if len(values) > 1 and WILDCARDS.intersection(values):
            raise ValueError(
                f'scope.{name} mixes a wildcard with names {list(values)!r}: use ["*"] alone or names only'
            )
        if len(set(values)) != len(values):
            raise ValueError(f"scope.{name} lists a value twice: {list(values)!r}")
        return values

    def covers(self, other: RouteScope) -> bool:
        """True when every request ``other`` matches is also matched by this scope."""
        return all(
            is_wildcard(mine) or (not is_wildcard(theirs) and set(theirs) <= set(mine))
            for mine, theirs in (
                (self.tenants, other.tenants),
                (self.regions, other.regions),
                (self.endpoints, other.endpoints),
            )
        )

    def describe(self) -> str:
        return (
            f"tenants={','.join(self.tenants)} regions={','.join(self.regions)} "
            f"endpoints={','.join(self.endpoints)}"
        )


class RouteRule(Nested):
    """One scoped strategy. Fields a strategy does not use must stay 0 (``off`` excepted)."""

    scope: RouteScope = Field(default_factory=RouteScope, description="which requests the rule applies to")
    strategy: Strategy = Field(
        description="off: serve the baseline; shadow: serve the baseline and mirror shadow_ratio of "
        "requests to the candidate; ab / canary: serve the candidate to candidate_weight of sticky keys"
    )
    baseline: str | None = Field(
        default=None,
        pattern=_TARGET,
        description="target served on the baseline arm (model / deployment id); null inherits the "
        "config's baseline",
    )
    candidate: str | None = Field(
        default=None,
        pattern=_TARGET,
        description="target mirrored to (shadow) or served on the candidate arm (ab, canary)",
    )
    shadow_ratio: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="shadow only: share of requests mirrored to the candidate, in [0, 1]",
    )
    candidate_weight: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="ab / canary only: share of sticky keys served the candidate, in [0, 1]; raising "
        "it only moves keys from baseline to candidate",
    )

    @model_validator(mode="after")
    def _strategy_uses_its_fields(self) -> Self:
        s = self.strategy
        if s in ("shadow", "ab", "canary") and self.candidate is None:
            raise ValueError(f"candidate: strategy {s!r} needs a candidate target")
        if s in ("ab", "canary") and self.shadow_ratio != 0.0:
            raise ValueError(
                f"shadow_ratio: strategy {s!r} does not mirror, so shadow_ratio must be 0 "
                f"(got {self.shadow_ratio}); use a shadow rule to mirror"
            )
        if s == "shadow" and self.candidate_weight != 0.0:
            raise ValueError(
                f"candidate_weight: strategy 'shadow' serves only the baseline, so candidate_weight "
                f"must be 0 (got {self.candidate_weight}); use canary or ab to serve the candidate"
            )
        return self


class RouteConfig(WireModel):
    """A rollout flag: its epoch and salt (the sticky hash) and its ordered, scoped rules."""

    SCHEMA_NAME: ClassVar[str] = "route_config"
    schema_version: Literal[1] = 1
    flag: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
        max_length=128,
        description="flag name, e.g. prompt_pack_vNplus1; logged with every assignment",
    )
    epoch: int = Field(
        ge=0,
        description="assignment epoch: keys keep their arm within an epoch; a new epoch reshuffles them",
    )
    salt: str = Field(
        max_length=128,
        description="hash salt of the flag, combined with the epoch; use one salt per flag so flags "
        "assign independently",
    )
    sticky_on: StickyOn = Field(
        default="request_id",
        description="key the arm sticks to: request_id, or user_id (falls back to the request id when "
        "a request carries no user id)",
    )
    kill: bool = Field(
        default=False,
        description="kill switch: when true every request is served its baseline, none mirrored",
    )
    baseline: str = Field(
        pattern=_TARGET,
        description="target served when no rule matches, and by rules that name no baseline of their own",
    )
    rules: tuple[RouteRule, ...] = Field(
        default=(), description="ordered rules; the first whose scope matches decides, no match means off"
    )

    @field_validator("salt")
    @classmethod
    def _salt_not_blank(cls, salt: str) -> str:
        if not salt.strip():
            raise ValueError("salt is empty: the sticky hash needs a salt (one per flag)")
        return salt

    @model_validator(mode="after")
    def _rules_are_consistent(self) -> Self:
        for i, rule in enumerate(self.rules):
            baseline = rule.baseline or self.baseline
            if rule.candidate is not None and rule.candidate == baseline:
                raise ValueError(
                    f"rules[{i}].candidate: candidate {rule.candidate!r} is the baseline itself, "
                    f"so the rule compares or serves nothing new"
                )
            for j in range(i):
                if self.rules[j].scope.covers(rule.scope):
                    raise ValueError(
                        f"rules[{i}]: duplicate or contradicting rule, it can never match because "
                        f"rules[{j}] ({self.rules[j].scope.describe()}) comes first and covers its "
                        f"whole scope ({rule.scope.describe()})"
                    )
        return self

    def rule_baseline(self, index: int) -> str:
        """The baseline target of rule ``index`` (its own, or the config's)."""
        return self.rules[index].baseline or self.baseline
