"""ProdSide.decode: the comparator's projection of a requests-topic record, read through the one
check every consumer of the topic applies (``check_request``)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from shadowlane.compare.prod_side import ProdSide
from shadowlane.contracts.chat import TokenUsage
from shadowlane.contracts.codec import DecodeError, decode, encode
from shadowlane.contracts.envelope import GoldLabel, RequestEnvelope
from shadowlane.contracts.request_check import check_request
from tests.support.factories import envelope


def _variants() -> list[RequestEnvelope]:
    base = envelope(1)
    prod = base.prod.model_copy(
        update={
            "model": "m-1",
            "usage": TokenUsage(prompt_tokens=7, completion_tokens=3),
            "cited_ids": ("d1",),
        }
    )
    return [
        base,
        base.model_copy(update={"prod": prod, "tenant": "t9", "pins": {"a": "1", "b": "2"}}),
        base.model_copy(update={"gold": GoldLabel(answer="x", cited_ids=("d2", "d3"), source="eval")}),
        base.model_copy(update={"tool_io": (), "prod": base.prod.model_copy(update={"answer": None})}),
        base.model_copy(update={"buckets": {"tense": "past", "verb": "go"}}),
    ]


@pytest.mark.parametrize("env", _variants())
def test_projection_equals_the_projection_of_the_fully_decoded_envelope(env: RequestEnvelope) -> None:
    assert ProdSide.decode(encode(env), env.req_hash.encode()) == ProdSide.of(
        decode(encode(env), RequestEnvelope)
    )


def _broken(**changes: Any) -> bytes:
    obj = orjson.loads(encode(envelope(2)))
    for path, value in changes.items():
        target = obj
        *parents, leaf = path.split("__")
        for part in parents:
            target = target[part]
        target[leaf] = value
    return orjson.dumps(obj)


@pytest.mark.parametrize(
    "data",
    [
        None,
        b"not json",
        b"[1, 2]",
        _broken(schema_version=2),
        _broken(req_hash="XYZ"),
        _broken(prod__latency_ms=-1),
        _broken(pins={"a": 1}),
        _broken(tool_io=[{"arguments": {}}]),
        _broken(req_id=""),
    ],
)
def test_a_bad_record_gets_the_contracts_decode_error(data: bytes | None) -> None:
    key = envelope(2).req_hash.encode()
    with pytest.raises(DecodeError) as full:
        check_request(data, key)
    for read in (ProdSide.decode, ProdSide.decode_python):
        with pytest.raises(DecodeError) as projected:
            read(data, key)
        assert (projected.value.reason, projected.value.detail) == (full.value.reason, full.value.detail)


@pytest.mark.parametrize(
    "changes",
    [
        {"request__messages": "not a list"},
        {"sampling": None},
        {"sampling__bucket": 1.0},
        {"surprise": 1},
        {"paraphrases": ["a", "b", "c", "d"]},
        {"tool_io": [{"name": "t", "output": 3}]},
    ],
)
def test_fields_it_does_not_keep_are_checked_as_the_shadow_workers_check_them(
    changes: dict[str, Any],
) -> None:
    # the review's case: a record missing `sampling`, or with bucket 1.0, was dead-lettered by the
    # shadow workers and compared by the comparator
    data = _broken(**changes)
    key = envelope(2).req_hash.encode()
    with pytest.raises(DecodeError) as shadow:
        check_request(data, key)  # what the shadow worker runs
    with pytest.raises(DecodeError) as comparator:
        ProdSide.decode(data, key)
    assert comparator.value.reason == shadow.value.reason == "validation"


def test_a_made_up_hash_or_a_wrong_key_is_refused_on_both_paths() -> None:
    env = envelope(2)
    data, key = encode(env), env.req_hash.encode()
    forged = encode(env.model_copy(update={"req_hash": "0" * 32}))
    for read in (ProdSide.decode, ProdSide.decode_python):
        assert read(data, key).req_hash == env.req_hash
        with pytest.raises(DecodeError, match=r"^req_hash_mismatch"):
            read(forged, b"0" * 32)
        for wrong in (None, b"other", env.req_hash.upper().encode()):
            with pytest.raises(DecodeError, match=r"^key_mismatch"):
                read(data, wrong)
