"""The one hash that runs from sampling through the join: stable, salted, uniform.

``unit_hash(salt, key)`` maps a key to [0, 1) with BLAKE2b, so ``unit_hash < ratio`` samples a
stable subset, and raising the ratio only ever adds keys (a superset). ``req_hash`` names one
mirrored request on every topic.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

_SCALE = float(1 << 64)


def unit_hash(salt: str, key: str) -> float:
    """A uniform number in [0, 1) fixed by ``(salt, key)``."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def canonical_json(obj: Any) -> bytes:
    """JSON with sorted keys and no whitespace: equal payloads give equal bytes."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def req_hash(req_id: str, canonical_payload: bytes) -> str:
    """32 hex chars naming one mirrored request: derived from its id and its canonical payload."""
    h = hashlib.blake2b(digest_size=16)
    h.update(req_id.encode())
    h.update(b"\x00")
    h.update(canonical_payload)
    return h.hexdigest()


_PAIR_ID_HASH = hashlib.blake2b(digest_size=12)  # never updated: pair_id copies it (cheaper than new)


def pair_id(req_hash_: str, candidate: str) -> str:
    """Deterministic id of a (request, candidate) comparison, so consumers can dedupe."""
    h = _PAIR_ID_HASH.copy()
    h.update(f"{req_hash_}\x00{candidate}".encode())
    return h.hexdigest()


def partition_for(req_hash_: str, partitions: int) -> int:
    """The requests partition of a mirrored request: its ``req_hash`` prefix modulo the count.

    Shadow workers write each result to the partition its request came from, so requests and
    shadow-results stay co-partitioned whatever partitioner another producer uses. Any other
    key (a candidate name on the summary and alert topics) is hashed first.
    """
    try:
        return int(req_hash_[:8], 16) % partitions
    except ValueError:
        return int(hashlib.blake2b(req_hash_.encode(), digest_size=4).hexdigest(), 16) % partitions
