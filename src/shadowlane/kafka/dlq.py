"""Dead-lettering: a record no worker can process is kept whole, with the reason, on the DLQ."""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

from aiokafka import AIOKafkaProducer

from shadowlane.contracts.codec import encode
from shadowlane.contracts.dead_letter import DeadLetter

log = logging.getLogger(__name__)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def dead_letter(record: Any, *, reason: str, detail: str, worker: str) -> DeadLetter:
    """Build the DLQ record for a consumed aiokafka ``ConsumerRecord``."""
    return DeadLetter(
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key_b64=_b64(record.key),
        value_b64=_b64(record.value),
        reason=reason,
        detail=detail[:2000],
        worker=worker,
        ts_ms=time.time_ns() // 1_000_000,
    )


async def send_dead_letter(
    producer: AIOKafkaProducer, topic: str, record: Any, *, reason: str, detail: str, worker: str
) -> None:
    """Produce the DLQ record and wait for the broker's ack (the caller commits after this)."""
    letter = dead_letter(record, reason=reason, detail=detail, worker=worker)
    log.warning(
        "dead-lettered %s[%d]@%d: %s %s", record.topic, record.partition, record.offset, reason, detail[:200]
    )
    await producer.send_and_wait(topic, encode(letter), key=record.key)
