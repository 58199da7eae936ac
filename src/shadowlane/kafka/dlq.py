"""Dead-lettering: a record no worker can process goes to the DLQ with the reason, and as much
of it as fits (:data:`~shadowlane.contracts.dead_letter.KEEP_BYTES` of its key and value, with
their full sizes and SHA-256 digests).

A letter the DLQ still refuses for its size (a DLQ topic with a small ``max.message.bytes``) is
sent again as a stub that keeps none of the record's bytes, only sizes and digests: a letter never
waits for a size that cannot change. Any other refusal is the caller's to retry.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError

from shadowlane.contracts.codec import encode
from shadowlane.contracts.dead_letter import KEEP_BYTES, DeadLetter

log = logging.getLogger(__name__)

LETTER_KEY_MAX = 256
"""A source key longer than this is replaced by its SHA-256 as the letter's own Kafka key."""
SIZE_REFUSALS = (MessageSizeTooLargeError, RecordListTooLargeError)
"""What a producer or broker raises for a record too large for it: retrying the same bytes is futile."""


def _kept(data: bytes | None, keep: int) -> tuple[str | None, int | None, str | None, bool]:
    """(base64 of at most ``keep`` bytes, full size, sha256, whether bytes were left out)."""
    if data is None:
        return None, None, None, False
    return (
        base64.b64encode(data[:keep]).decode(),
        len(data),
        hashlib.sha256(data).hexdigest(),
        len(data) > keep,
    )


def dead_letter(record: Any, *, reason: str, detail: str, worker: str, keep: int = KEEP_BYTES) -> DeadLetter:
    """The DLQ record for a consumed aiokafka ``ConsumerRecord``, keeping at most ``keep`` bytes of
    its key and of its value."""
    key_b64, key_size, key_sha, key_cut = _kept(record.key, keep)
    value_b64, value_size, value_sha, value_cut = _kept(record.value, keep)
    return DeadLetter(
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key_b64=key_b64,
        value_b64=value_b64,
        key_size=key_size,
        value_size=value_size,
        key_sha256=key_sha,
        value_sha256=value_sha,
        truncated=key_cut or value_cut,
        reason=reason,
        detail=detail[:2000],
        worker=worker,
        ts_ms=time.time_ns() // 1_000_000,
    )


def letter_key(key: bytes | None) -> bytes | None:
    """The letter's Kafka key: the source record's key when it is short, else its SHA-256."""
    if key is None or len(key) <= LETTER_KEY_MAX:
        return key
    return hashlib.sha256(key).hexdigest().encode()


async def send_dead_letter(
    producer: AIOKafkaProducer, topic: str, record: Any, *, reason: str, detail: str, worker: str
) -> DeadLetter:
    """Produce the DLQ record and wait for the broker's ack (the caller commits after this).

    Refused for its size, the letter goes again as a stub without the record's bytes; any other
    error is raised (the caller retries). Returns the letter the DLQ holds."""
    letter = dead_letter(record, reason=reason, detail=detail, worker=worker)
    key = letter_key(record.key)
    try:
        await producer.send_and_wait(topic, encode(letter), key=key)
    except SIZE_REFUSALS as exc:
        log.warning("dead letter refused for its size (%s); sending it without the record's bytes", exc)
        letter = dead_letter(record, reason=reason, detail=detail, worker=worker, keep=0)
        await producer.send_and_wait(topic, encode(letter), key=key)
    log.warning(
        "dead-lettered %s[%d]@%d: %s %s", record.topic, record.partition, record.offset, reason, detail[:200]
    )
    return letter
