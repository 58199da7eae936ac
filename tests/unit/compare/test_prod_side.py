"""ProdSide.decode: the comparator's projection of an envelope, read straight from its bytes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from shadowlane.compare.prod_side import ProdSide
from shadowlane.contracts.chat import TokenUsage
from shadowlane.contracts.codec import DecodeError, decode, encode
from shadowlane.contracts.envelope import GoldLabel, RequestEnvelope
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
    assert ProdSide.decode(encode(env)) == ProdSide.of(decode(encode(env), RequestEnvelope))


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
    with pytest.raises(DecodeError) as full:
        decode(data, RequestEnvelope)
    with pytest.raises(DecodeError) as projected:
        ProdSide.decode(data)
    assert (projected.value.reason, projected.value.detail) == (full.value.reason, full.value.detail)


def test_fields_it_does_not_read_are_left_to_the_shadow_workers() -> None:
    data = _broken(request__messages="not a list", sampling=None, surprise=1)
    with pytest.raises(DecodeError):
        decode(data, RequestEnvelope)  # the shadow worker dead-letters this one
    assert ProdSide.decode(data).req_id == envelope(2).req_id
