"""Publishing control changes: sign with the active key, produce keyed ``kind:name`` to the control
log and then the compacted control topic, audit.

Versions: a new record of ``kind:name`` gets the version in force (or the last one this publisher
produced, if higher) plus one. Versions stay the consecutive numbers the contract describes, no
clock is trusted (a publisher whose clock lags could never supersede a millisecond version), and
a publisher reads the topic anyway to merge route rules. Two publishers racing on one key produce
the same number; every watcher refuses the later record as ``stale``, and the CLI, which waits to
see its own record in force, reports it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from shadowlane.contracts.audit import AuditEvent, ConfigRef
from shadowlane.contracts.codec import encode
from shadowlane.contracts.control import ControlKind, ControlRecord
from shadowlane.rollout.control_plane import AuditSink, ControlView
from shadowlane.rollout.signing import active_signing_key, payload_digest, sign
from shadowlane.settings import Settings


class ControlPublisher:
    """Signs records with the active key, produces them keyed ``kind:name`` and audits the change."""

    def __init__(
        self,
        settings: Settings,
        producer: AIOKafkaProducer,
        view: ControlView,
        *,
        audit: AuditSink | None = None,
    ) -> None:
        self._control = settings.control
        self._topic = settings.topics.control_topic
        self._log_topic = settings.topics.control_log_topic
        self._producer = producer
        self._view = view
        self._audit = audit
        self._last: dict[tuple[ControlKind, str], ControlRecord] = {}

    def latest(self, kind: ControlKind, name: str) -> ControlRecord | None:
        """The newer of the record in force and the last one this publisher produced."""
        seen, mine = self._view.record(kind, name), self._last.get((kind, name))
        if seen is None or (mine is not None and mine.version > seen.version):
            return mine
        return seen

    def next_version(self, kind: ControlKind, name: str) -> int:
        latest = self.latest(kind, name)
        return 1 if latest is None else latest.version + 1

    async def publish(
        self, kind: ControlKind, name: str, payload: BaseModel | Mapping[str, Any], *, who: str, why: str
    ) -> ControlRecord:
        """Sign (``SigningKeyError`` / ``PayloadError`` before anything is sent), produce and wait
        for the acknowledgement, then write the audit event; returns the record."""
        key_id, key = active_signing_key(self._control)
        previous = self.latest(kind, name)
        record = sign(
            payload,
            kind=kind,
            name=name,
            version=1 if previous is None else previous.version + 1,
            key_id=key_id,
            key=key,
            signed_by=who,
            reason=why,
        )
        value, record_key = encode(record), record.key.encode()
        # the log first: once acknowledged there, no write to the compacted topic can hide it
        await self._producer.send_and_wait(self._log_topic, value, key=record_key)
        await self._producer.send_and_wait(self._topic, value, key=record_key)
        self._last[(kind, name)] = record
        if self._audit is not None:
            await self._audit.write(published_event(record, previous))
        return record


def published_event(record: ControlRecord, previous: ControlRecord | None) -> AuditEvent:
    """The publisher's audit event: who signed what, why, and the versions before and after.

    Its id is the record's (kind, name, version, signature): distinct from the watchers' ``applied``
    / ``rejected`` events for the same record, which say whether it took effect."""
    before = None
    if previous is not None:
        before = ConfigRef(version=previous.version, digest=payload_digest(previous.payload))
    identity = f"published\x00{record.key}\x00{record.version}\x00{record.signature}"
    return AuditEvent(
        event_id=hashlib.blake2b(identity.encode(), digest_size=12).hexdigest(),
        ts_ms=record.signed_at_ms,
        who=record.signed_by,
        what="kill_switch" if record.kind == "kill_switch" else "config_change",
        why=record.reason,
        name=record.name,
        kind=record.kind,
        before=before,
        after=ConfigRef(version=record.version, digest=payload_digest(record.payload)),
        details={"stage": "published", "key_id": record.key_id, "payload": record.payload},
    )
