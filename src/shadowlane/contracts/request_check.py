"""The one check every consumer of the requests topic applies to a record, before it acts on it.

A record is a request only when all of these hold:

1. it is a JSON object of the envelope's schema version that the :class:`RequestEnvelope`
   contract accepts (the codec's reasons: ``undecodable``, ``schema_version``, ``validation``);
2. its ``req_hash`` is the hash of the documented recipe (:data:`REQ_HASH_RECIPE`) over its
   ``req_id`` and its ``request`` object exactly as it is on the wire: ``req_hash_mismatch``
   otherwise (a made-up or stale hash would join with the wrong results);
3. its Kafka key is its ``req_hash`` (UTF-8): ``key_mismatch`` otherwise (the key decides the
   partition, and every topic downstream is keyed the same way).

The shadow worker calls :func:`check_request`; the comparator's join reads requests through it
too (its native reader vouches only for records that pass the same checks, and leaves every
other record to this module, whose reason is the dead letter's). So a bad record is dead-lettered
by every consuming group, once, with the same reason.
"""

from __future__ import annotations

from typing import Any

from shadowlane.contracts.codec import DecodeError, load_object, validate_object
from shadowlane.contracts.envelope import REQ_HASH_RECIPE, RequestEnvelope
from shadowlane.hashing import canonical_json, req_hash

REASONS = ("undecodable", "schema_version", "validation", "req_hash_mismatch", "key_mismatch")
"""Every reason :func:`check_request` can give a dead letter."""

__all__ = ["REASONS", "REQ_HASH_RECIPE", "check_request", "verify_identity"]


def check_request(value: bytes | None, key: bytes | None) -> RequestEnvelope:
    """The envelope of a requests-topic record (its value and key), or :class:`DecodeError` with
    one of :data:`REASONS`."""
    obj = load_object(value, RequestEnvelope)
    envelope = validate_object(obj, RequestEnvelope)
    verify_identity(obj["request"], envelope.req_id, envelope.req_hash, key)
    return envelope


def verify_identity(request: Any, req_id: str, claimed: str, key: bytes | None) -> None:
    """Checks 2 and 3 of the module's docs, on the wire's ``request`` object."""
    try:
        expected = req_hash(req_id, canonical_json(request))
    except TypeError as exc:  # orjson: a value it cannot write back (an integer past 64 bits)
        raise DecodeError("req_hash_mismatch", f"request cannot be hashed by the recipe: {exc}") from None
    if claimed != expected:
        detail = f"req_hash {claimed} is not the recipe's hash of req_id and request ({expected})"
        raise DecodeError("req_hash_mismatch", detail)
    if key != claimed.encode():
        shown = key[:80] if key is not None else None
        raise DecodeError("key_mismatch", f"record key {shown!r} is not the record's req_hash {claimed}")
