"""A dead letter always fits: at most KEEP_BYTES of the record's key and value, their full sizes
and SHA-256 digests, a bounded detail; a long source key is replaced by its digest."""

from __future__ import annotations

import base64
import hashlib

from aiokafka.structs import ConsumerRecord

from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.dead_letter import KEEP_BYTES, DeadLetter
from shadowlane.kafka.dlq import LETTER_KEY_MAX, dead_letter, letter_key


def _record(value: bytes | None, key: bytes | None = b"k1") -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="t.requests", partition=2, offset=41, timestamp=0, timestamp_type=0, key=key, value=value,
        checksum=None, serialized_key_size=0, serialized_value_size=0, headers=(),
    )  # fmt: skip


def test_a_small_record_is_kept_whole_with_its_size_and_digest() -> None:
    letter = dead_letter(_record(b"\x00\xffnot json"), reason="undecodable", detail="d", worker="w")
    assert base64.b64decode(letter.value_b64 or "") == b"\x00\xffnot json"
    assert letter.value_size == 10
    assert letter.value_sha256 == hashlib.sha256(b"\x00\xffnot json").hexdigest()
    assert letter.key_size == 2
    assert letter.truncated is False
    assert decode(encode(letter), DeadLetter) == letter


def test_a_record_of_any_size_gives_a_letter_under_200_kb() -> None:
    value = bytes(range(256)) * (8 * 4096)  # 8 MiB
    key = b"k" * 300_000
    letter = dead_letter(_record(value, key), reason="undecodable", detail="x" * 50_000, worker="w")
    assert len(encode(letter)) < 200_000
    assert base64.b64decode(letter.value_b64 or "") == value[:KEEP_BYTES]
    assert base64.b64decode(letter.key_b64 or "") == key[:KEEP_BYTES]
    assert (letter.value_size, letter.key_size) == (len(value), len(key))
    assert letter.value_sha256 == hashlib.sha256(value).hexdigest()
    assert letter.key_sha256 == hashlib.sha256(key).hexdigest()
    assert letter.truncated is True
    assert len(letter.detail) == 2000


def test_a_stub_keeps_no_bytes_but_names_the_record() -> None:
    value = b"v" * 100
    letter = dead_letter(_record(value), reason="undecodable", detail="", worker="w", keep=0)
    assert letter.value_b64 == ""
    assert letter.value_size == 100
    assert letter.value_sha256 == hashlib.sha256(value).hexdigest()
    assert letter.truncated is True


def test_a_tombstone_has_no_value_fields() -> None:
    letter = dead_letter(_record(None, None), reason="undecodable", detail="", worker="w")
    assert (letter.value_b64, letter.value_size, letter.value_sha256, letter.truncated) == (
        None,
        None,
        None,
        False,
    )
    assert letter_key(None) is None


def test_a_long_source_key_becomes_its_digest_as_the_letter_key() -> None:
    short = b"s" * LETTER_KEY_MAX
    assert letter_key(short) == short
    long = b"l" * (LETTER_KEY_MAX + 1)
    assert letter_key(long) == hashlib.sha256(long).hexdigest().encode()
