"""Signs and verifies control records, and holds the configs in force (:class:`ControlState`).

Signature
---------
``signature = HMAC-SHA256(key, signing_input(record))``, hex, where ``signing_input`` is the
domain tag ``b"shadowlane.control.v1\\n"`` followed by the canonical JSON
(:func:`shadowlane.hashing.canonical_json`: sorted keys, no whitespace, UTF-8) of every field of the
record except ``signature`` itself: ``schema_version, kind, name, version, payload, signed_by,
reason, signed_at_ms, key_id``. Changing any of them, the payload included, breaks the signature.
Keys are looked up by the record's ``key_id``, so a key is rotated by adding the new key next to
the old one everywhere, signing with the new one, then retiring the old one. Comparison is
constant-time (:func:`hmac.compare_digest`).

Config in force
---------------
:class:`ControlState` (pure: no I/O, no clock) keeps the last accepted record per ``(kind, name)``
and its parsed config. :meth:`ControlState.apply` refuses, and leaves the previous config in
force, a record that is unsigned, signed with an unknown key, whose signature does not match
(tampered, or signed with another key), whose version is not above the one in force (replay of an
older record; a re-delivery of the very record in force is reported as ``duplicate``), or whose
payload does not validate against its kind. A tombstone (null value) is refused too: it cannot be
signed, so a config is retired by a signed record (a kill switch, a route config that serves the
baseline), never deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, SecretStr, ValidationError

from shadowlane.contracts.audit import AuditEvent, ConfigRef
from shadowlane.contracts.codec import DecodeError, decode
from shadowlane.contracts.control import ALL_FLAGS, ControlKind, ControlRecord, KillSwitch
from shadowlane.contracts.flag_manifest import FlagManifest, FlagSpec
from shadowlane.contracts.problems import validation_problems
from shadowlane.contracts.route_config import RouteConfig
from shadowlane.hashing import canonical_json
from shadowlane.settings import ControlSettings

SIGNING_DOMAIN = b"shadowlane.control.v1\n"
MIN_KEY_CHARS = 32

RejectReason = Literal[
    "unsigned",
    "unknown_key",
    "bad_signature",
    "stale",
    "duplicate",
    "invalid_payload",
    "undecodable",
    "tombstone",
    "key_mismatch",
]
ControlConfig = RouteConfig | FlagManifest | KillSwitch


class SignatureError(ValueError):
    """A record whose signature cannot be trusted; ``reason`` is a :data:`RejectReason`."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: RejectReason = reason
        self.detail = detail


class SigningKeyError(ValueError):
    """No usable signing key: nothing can be signed until one is configured."""


class PayloadError(ValueError):
    """A payload that does not validate against its kind; ``problems`` holds one line each."""

    def __init__(self, kind: str, name: str, problems: list[str]) -> None:
        super().__init__(f"{kind}:{name} payload is invalid: " + "; ".join(problems))
        self.problems = tuple(problems)


def signing_input(record: ControlRecord) -> bytes:
    """The bytes the HMAC covers: the domain tag and every field but ``signature``, canonical."""
    return SIGNING_DOMAIN + canonical_json(record.model_dump(mode="json", exclude={"signature"}))


def payload_digest(payload: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of a payload: names a config version in audits."""
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def _mac(key: SecretStr, message: bytes) -> str:
    return hmac.new(key.get_secret_value().encode(), message, hashlib.sha256).hexdigest()


def active_signing_key(control: ControlSettings) -> tuple[str, SecretStr]:
    """``(key_id, key)`` new records are signed with: ``active_key_id``, or the only key configured."""
    if control.active_key_id is not None:
        return control.active_key_id, control.signing_keys[control.active_key_id]
    if len(control.signing_keys) == 1:
        return next(iter(control.signing_keys.items()))
    if not control.signing_keys:
        raise SigningKeyError(
            'no signing key configured: set SHADOWLANE_CONTROL__SIGNING_KEYS=\'{"<key id>": "<key>"}\' '
            "(at least 32 characters, e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    raise SigningKeyError(
        f"{len(control.signing_keys)} signing keys configured and no active_key_id: set "
        f"SHADOWLANE_CONTROL__ACTIVE_KEY_ID to one of {sorted(control.signing_keys)}"
    )


def parse_payload(kind: ControlKind, name: str, payload: Mapping[str, Any]) -> ControlConfig:
    """Validate a payload against its kind; raise :class:`PayloadError` naming every problem."""
    models: dict[str, type[RouteConfig] | type[FlagManifest] | type[KillSwitch]] = {
        "route_config": RouteConfig,
        "flag_manifest": FlagManifest,
        "kill_switch": KillSwitch,
    }
    model = models[kind]
    try:
        config = model.model_validate(payload)
    except ValidationError as exc:
        raise PayloadError(kind, name, validation_problems(exc, model)) from None
    if isinstance(config, RouteConfig) and config.flag != name:
        raise PayloadError(kind, name, [f"flag: {config.flag!r} is not the record name {name!r}"])
    if isinstance(config, FlagManifest) and list(config.flags) != [name]:
        raise PayloadError(
            kind, name, [f"flags: must hold exactly the flag {name!r} (got {list(config.flags)})"]
        )
    return config


def sign(
    payload: BaseModel | Mapping[str, Any],
    *,
    kind: ControlKind,
    name: str,
    version: int,
    key_id: str,
    key: SecretStr,
    signed_by: str,
    reason: str,
    signed_at_ms: int | None = None,
) -> ControlRecord:
    """A signed record for ``kind:name`` at ``version``; the payload is validated against its kind
    first (:class:`PayloadError`), and the key must be at least 32 characters."""
    if len(key.get_secret_value()) < MIN_KEY_CHARS:
        raise SigningKeyError(f"signing key {key_id!r} is shorter than {MIN_KEY_CHARS} characters")
    data = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else dict(payload)
    data = orjson.loads(canonical_json(data))  # JSON-native values: the bytes every reader will see
    parse_payload(kind, name, data)
    unsigned = ControlRecord(
        kind=kind,
        name=name,
        version=version,
        payload=data,
        signed_by=signed_by,
        reason=reason,
        signed_at_ms=int(time.time() * 1000) if signed_at_ms is None else signed_at_ms,
        key_id=key_id,
    )
    return unsigned.model_copy(update={"signature": _mac(key, signing_input(unsigned))})


def verify(record: ControlRecord, keys: Mapping[str, SecretStr]) -> dict[str, Any]:
    """The record's payload if its signature holds under ``keys[record.key_id]``, else
    :class:`SignatureError` (``unsigned``, ``unknown_key`` or ``bad_signature``)."""
    if not record.signature or not record.key_id:
        raise SignatureError("unsigned", f"{record.key} v{record.version} carries no signature")
    key = keys.get(record.key_id)
    if key is None:
        raise SignatureError(
            "unknown_key", f"{record.key} v{record.version} is signed with unknown key id {record.key_id!r}"
        )
    if not hmac.compare_digest(_mac(key, signing_input(record)), record.signature):
        raise SignatureError(
            "bad_signature",
            f"{record.key} v{record.version}: signature does not match (tampered, or another key)",
        )
    return record.payload


def _carries_no_signature(value: bytes) -> bool:
    """True for a JSON object whose ``signature`` is missing or empty."""
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return False
    return isinstance(obj, dict) and not obj.get("signature")


@dataclass(frozen=True, slots=True)
class Applied:
    """A record now in force; ``previous`` is the one it replaced (None for the first)."""

    record: ControlRecord
    config: ControlConfig
    previous: ControlRecord | None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A refused record (None when it could not be decoded); ``in_force`` is what stays."""

    record: ControlRecord | None
    reason: RejectReason
    detail: str
    in_force: ControlRecord | None


class ControlState:
    """The signed configs in force, per ``(kind, name)``. Feed it every control record in order."""

    def __init__(self, keys: Mapping[str, SecretStr]) -> None:
        self._keys = dict(keys)
        self._records: dict[tuple[ControlKind, str], ControlRecord] = {}
        self._configs: dict[tuple[ControlKind, str], ControlConfig] = {}
        self._rejections: dict[str, int] = {}
        self.applied = 0

    def apply(self, record: ControlRecord, *, history: bool = False) -> Applied | Rejected:
        """Put ``record`` in force if it is signed, newer and valid; otherwise keep the current one.
        ``history``: the record comes from the control log, where older genuine records are
        expected: one that is stale or a duplicate is returned, but not counted as a rejection."""
        slot = (record.kind, record.name)
        current = self._records.get(slot)
        try:
            verify(record, self._keys)
        except SignatureError as exc:
            return self._reject(record, exc.reason, exc.detail, current)
        if current is not None and record.version <= current.version:
            if record.version == current.version and record.signature == current.signature:
                reason: RejectReason = "duplicate"
                detail = f"{record.key} v{record.version} is already in force"
            else:
                reason = "stale"
                detail = (
                    f"{record.key} v{record.version} is not newer than v{current.version} in force (replay?)"
                )
            if history:
                return Rejected(record, reason, detail, current)
            return self._reject(record, reason, detail, current)
        try:
            config = parse_payload(record.kind, record.name, record.payload)
        except PayloadError as exc:
            return self._reject(record, "invalid_payload", str(exc), current)
        self._records[slot] = record
        self._configs[slot] = config
        self.applied += 1
        return Applied(record, config, current)

    def apply_message(
        self, key: bytes | None, value: bytes | None, *, history: bool = False
    ) -> Applied | Rejected:
        """Decode one control-topic message and apply it (``history``: see :meth:`apply`); the key
        must be the record's ``kind:name``."""
        if value is None:
            detail = f"tombstone for {key!r} ignored: configs are retired by signed records, not deleted"
            return self._reject(None, "tombstone", detail, None)
        try:
            record = decode(value, ControlRecord)
        except DecodeError as exc:
            # a record without a signature is refused as unsigned, whatever else is wrong with it
            reason: RejectReason = "unsigned" if _carries_no_signature(value) else "undecodable"
            return self._reject(None, reason, str(exc), None)
        if key is not None and key != record.key.encode():
            current = self._records.get((record.kind, record.name))
            return self._reject(record, "key_mismatch", f"message key {key!r} is not {record.key!r}", current)
        return self.apply(record, history=history)

    def _reject(
        self, record: ControlRecord | None, reason: RejectReason, detail: str, current: ControlRecord | None
    ) -> Rejected:
        self._rejections[reason] = self._rejections.get(reason, 0) + 1
        return Rejected(record, reason, detail, current)

    @property
    def rejections(self) -> dict[str, int]:
        """Refused records so far, by reason (a copy)."""
        return dict(self._rejections)

    def record(self, kind: ControlKind, name: str) -> ControlRecord | None:
        return self._records.get((kind, name))

    def config(self, kind: ControlKind, name: str) -> ControlConfig | None:
        return self._configs.get((kind, name))

    def route_config(self, flag: str) -> RouteConfig | None:
        config = self._configs.get(("route_config", flag))
        return config if isinstance(config, RouteConfig) else None

    def flag_spec(self, flag: str) -> FlagSpec | None:
        config = self._configs.get(("flag_manifest", flag))
        return config.flags[flag] if isinstance(config, FlagManifest) else None

    def killed(self, flag: str) -> bool:
        """True when a kill switch for ``flag`` or for every flag (``*``) is engaged, or the
        flag's route config says ``kill``."""
        for name in (flag, ALL_FLAGS):
            switch = self._configs.get(("kill_switch", name))
            if isinstance(switch, KillSwitch) and switch.engaged:
                return True
        route = self.route_config(flag)
        return route is not None and route.kill


def _ref(record: ControlRecord | None) -> ConfigRef | None:
    return (
        None if record is None else ConfigRef(version=record.version, digest=payload_digest(record.payload))
    )


def audit_event(outcome: Applied | Rejected, *, observer: str, ts_ms: int) -> AuditEvent:
    """The audit record of one :meth:`ControlState.apply` outcome, as seen by ``observer``.

    ``event_id`` does not depend on the observer or the clock, so the same outcome seen by many
    processes dedupes to one event. For a rejection ``who`` is the *claimed* signer (unverified).
    """
    record = outcome.record
    details: dict[str, Any] = {"observer": observer}
    if isinstance(outcome, Applied):
        what: Literal["kill_switch", "config_change", "config_rejected"] = (
            "kill_switch" if outcome.record.kind == "kill_switch" else "config_change"
        )
        before, after, why = _ref(outcome.previous), _ref(outcome.record), outcome.record.reason
        details.update(key_id=outcome.record.key_id, signed_at_ms=outcome.record.signed_at_ms)
        if isinstance(outcome.config, KillSwitch):
            details["engaged"] = outcome.config.engaged
        outcome_id = "applied"
    else:
        what, before = "config_rejected", _ref(outcome.in_force)
        after, why = before, f"{outcome.reason}: {outcome.detail}"
        details["reason"] = outcome.reason
        if record is not None:
            details.update(claimed_version=record.version, claimed_reason=record.reason, key_id=record.key_id)
        outcome_id = f"{outcome.reason}\x00{outcome.detail}"
    identity = f"{what}\x00{outcome_id}"
    if record is not None:
        identity += f"\x00{record.key}\x00{record.version}\x00{record.signature}"
    return AuditEvent(
        event_id=hashlib.blake2b(identity.encode(), digest_size=12).hexdigest(),
        ts_ms=ts_ms,
        who=record.signed_by if record is not None else "unknown",
        what=what,
        why=why,
        name=record.name if record is not None else "?",
        kind=record.kind if record is not None else None,
        before=before,
        after=after,
        details=details,
    )
