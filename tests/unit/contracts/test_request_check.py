"""shadowlane/contracts/request_check.py: the one check every consumer of the requests topic
applies: the contract, ``req_hash`` recomputed by the documented recipe from the wire's
``request``, and the key."""

from __future__ import annotations

import orjson
import pytest

from shadowlane.contracts.codec import DecodeError, encode
from shadowlane.contracts.request_check import REASONS, check_request
from shadowlane.hashing import canonical_json, req_hash
from tests.support.factories import envelope, make_envelope


def _reason(value: bytes | None, key: bytes | None) -> str:
    with pytest.raises(DecodeError) as refused:
        check_request(value, key)
    assert refused.value.reason in REASONS
    return refused.value.reason


def test_an_honest_record_passes() -> None:
    for env in (envelope(1), make_envelope("m1")):
        assert check_request(encode(env), env.req_hash.encode()) == env


def test_the_hash_covers_the_request_as_it_is_on_the_wire_not_its_schema_defaults() -> None:
    obj = orjson.loads(encode(envelope(1)))
    request = {"messages": [{"role": "user", "content": "hi"}]}  # no model, no tools, no params
    obj["request"] = request
    obj["req_hash"] = req_hash(obj["req_id"], canonical_json(request))
    assert check_request(orjson.dumps(obj), obj["req_hash"].encode()).request.tools == ()
    # the same request with its defaults written out is other bytes, so another hash
    obj["request"] = {**request, "tools": [], "params": {}}
    assert _reason(orjson.dumps(obj), obj["req_hash"].encode()) == "req_hash_mismatch"


def test_a_made_up_or_stale_hash_is_refused() -> None:
    env = envelope(1)
    forged = env.model_copy(update={"req_hash": "0123456789abcdef0123456789abcdef"})
    assert _reason(encode(forged), forged.req_hash.encode()) == "req_hash_mismatch"
    other = envelope(2)  # a genuine hash, of another request
    moved = env.model_copy(update={"req_hash": other.req_hash})
    assert _reason(encode(moved), other.req_hash.encode()) == "req_hash_mismatch"
    renamed = env.model_copy(update={"req_id": "another-id"})
    assert _reason(encode(renamed), env.req_hash.encode()) == "req_hash_mismatch"


def test_a_request_that_cannot_be_hashed_is_refused_not_crashed() -> None:
    obj = orjson.loads(encode(envelope(1)))
    data = orjson.dumps(obj).replace(b'"params":{}', b'"params":{"n":123456789012345678901234567890}')
    assert _reason(data, obj["req_hash"].encode()) == "req_hash_mismatch"


@pytest.mark.parametrize("key", [None, b"", b"t-000001", b"X" * 32])
def test_the_key_must_be_the_req_hash(key: bytes | None) -> None:
    env = envelope(1)
    assert _reason(encode(env), key) == "key_mismatch"


def test_the_codec_reasons_come_first() -> None:
    key = envelope(1).req_hash.encode()
    assert _reason(None, key) == "undecodable"
    assert _reason(b"[]", key) == "undecodable"
    assert _reason(b'{"schema_version": 2}', key) == "schema_version"
    obj = orjson.loads(encode(envelope(1)))
    del obj["sampling"]
    assert _reason(orjson.dumps(obj), key) == "validation"
