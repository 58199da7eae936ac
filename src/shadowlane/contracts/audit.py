"""``AuditEvent``: who did what and why, for every config change, rejection and gate decision.

The audit topic is keyed by ``name`` (the flag), so one flag's history stays in order. Config
events carry the version and payload digest in force ``before`` and ``after`` the change (a
rejection leaves them equal); gate decisions and rollout steps put the metrics, thresholds and the
rule that fired in ``details``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from shadowlane.contracts.base import Nested, WireModel
from shadowlane.contracts.control import ControlKind

AuditWhat = Literal[
    "config_change",
    "config_rejected",
    "gate_decision",
    "rollout_step",
    "rollback",
    "kill_switch",
]


class ConfigRef(Nested):
    """One config version: its number and the SHA-256 of its canonical payload."""

    version: int = Field(ge=1)
    digest: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 hex of the canonical JSON payload")


class AuditEvent(WireModel):
    SCHEMA_NAME: ClassVar[str] = "audit_event"
    schema_version: Literal[1] = 1
    event_id: str = Field(min_length=1, description="deterministic where possible, so observers dedupe")
    ts_ms: int = Field(ge=0)
    who: str = Field(min_length=1, description="operator or service that acted (claimed, for rejections)")
    what: AuditWhat
    why: str = Field(description="the reason given, or the rule / gate that decided")
    name: str = Field(min_length=1, description="flag name (or endpoint, '*'): the record key")
    kind: ControlKind | None = Field(default=None, description="config kind, for config events")
    before: ConfigRef | None = Field(default=None, description="config in force before; null if none")
    after: ConfigRef | None = Field(default=None, description="config in force after; null if none")
    details: dict[str, Any] = Field(default_factory=dict, description="metrics, thresholds, observer, ...")
