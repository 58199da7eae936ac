"""``ControlRecord``: a signed config change on the compacted control topic.

One record carries the latest config of one ``(kind, name)``: a route config (``name`` = the flag
it routes), a flag manifest (``name`` = the flag; the payload is a manifest holding that one
flag) or a kill switch (``name`` = the flag, or ``*`` for every flag). The topic is compacted and
keyed ``f"{kind}:{name}"``, so a consumer that reads it from the start ends up with exactly the
configs in force. ``version`` grows by one with every change of a key; consumers refuse a version
that is not above the one they hold (replay protection).

``signature`` is HMAC-SHA256 (hex) under the key ``key_id`` names, over every other field (see
:func:`shadowlane.rollout.signing.signing_input`). Unsigned records still decode, so that consumers can
count and audit them before refusing them; they never take effect.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from shadowlane.contracts.base import Nested, WireModel

ControlKind = Literal["route_config", "flag_manifest", "kill_switch"]

ALL_FLAGS = "*"
"""The kill switch name that turns every flag off."""


class KillSwitch(Nested):
    """The payload of a ``kill_switch`` record."""

    engaged: bool = Field(description="true: the flag (or every flag, for name '*') serves its baseline only")


class ControlRecord(WireModel):
    SCHEMA_NAME: ClassVar[str] = "control_record"
    schema_version: Literal[1] = 1
    kind: ControlKind
    name: str = Field(
        pattern=r"^\S+$", max_length=200, description="flag name (or endpoint); '*' for a global kill switch"
    )
    version: int = Field(ge=1, description="grows by one with every change of this kind:name")
    payload: dict[str, Any] = Field(
        description="RouteConfig, single-flag FlagManifest or KillSwitch, as JSON (the kind says which)"
    )
    signed_by: str = Field(min_length=1, description="who made the change (operator or service)")
    reason: str = Field(min_length=1, description="why: ticket, gate decision, incident")
    signed_at_ms: int = Field(ge=0, description="signing time, epoch milliseconds")
    key_id: str = Field(default="", max_length=64, description="id of the signing key; empty when unsigned")
    signature: str = Field(
        default="",
        pattern=r"^([0-9a-f]{64})?$",
        description="HMAC-SHA256, hex, over every other field; empty when unsigned",
    )

    @property
    def key(self) -> str:
        """The record key on the compacted control topic."""
        return f"{self.kind}:{self.name}"
