"""Writes ``AuditEvent`` records to the audit topic: every config change, gate decision and step.

One small class around a producer the caller owns (started and stopped by the entry point), so the
gate CLI, the rollout driver and the control-plane publishers all write the same record the same
way: keyed by the flag name (one flag's history stays in order), acknowledged by all replicas
before the caller goes on. :func:`event` builds a record with a fresh id for decisions that are
not config outcomes (those come from :func:`shadowlane.rollout.signing.audit_event`).
"""

from __future__ import annotations

import getpass
import socket
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer

from shadowlane.contracts.audit import AuditEvent, AuditWhat
from shadowlane.contracts.codec import encode


def event(
    what: AuditWhat, *, who: str, why: str, name: str, details: dict[str, Any] | None = None
) -> AuditEvent:
    """An audit record stamped now, with a random id (a decision happens once)."""
    return AuditEvent(
        event_id=uuid.uuid4().hex,
        ts_ms=time.time_ns() // 1_000_000,
        who=who,
        what=what,
        why=why,
        name=name,
        details=details or {},
    )


class AuditLog:
    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self.written = 0

    async def write(self, record: AuditEvent) -> AuditEvent:
        """Produce ``record`` and wait for its acknowledgement."""
        await self._producer.send_and_wait(self._topic, encode(record), key=record.name.encode())
        self.written += 1
        return record


def default_who() -> str:
    """Who asks, for the audit when ``--who`` is not given: ``user@host``."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
