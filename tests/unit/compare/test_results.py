"""The native shadow-result reader (``shadowlane_native.read_result``, Rust) against the codec.

The reference is :func:`shadowlane.contracts.codec.decode` (orjson, then pydantic in Python mode). The
native reader may decline any record (the codec's path then runs); when it accepts one, the
record it builds must equal the codec's in every value, type and key order, nested parts
included. Hypothesis generates well-formed results and breaks them at every field: wrong types,
nulls, missing and unknown fields, big and negative numbers, floats, escapes, repeated keys,
arrays where objects belong.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from shadowlane.compare.results import NATIVE_RESULTS, decode_result, from_native, read_result
from shadowlane.contracts.codec import DecodeError, decode, encode
from shadowlane.contracts.shadow_result import ShadowResult
from tests.bench.payloads import envelope_of_size
from tests.support.factories import envelope, result
from tests.support.native_fuzz import Change, Json, broken, changes_of, json_values, values

PATHS = (
    "schema_version",
    "req_hash",
    "req_id",
    "candidate",
    "pins",
    "pins.model_rev",
    "shadow_id",
    "ts_ms",
    "status",
    "error_class",
    "error",
    "answer",
    "latency_ms",
    "attempts",
    "tool_calls",
    "tool_calls.0",
    "tool_calls.0.name",
    "tool_calls.0.arguments",
    "tool_calls.0.disposition",
    "tool_calls.0.output",
    "tool_calls.0.schema_valid",
    "tool_calls.0.schema_error",
    "tool_calls.1.arguments",
    "tool_calls.0.extra",
    "usage",
    "usage.prompt_tokens",
    "usage.completion_tokens",
    "usage.total_tokens",
    "usage.extra",
    "model",
    "cited_ids",
    "cited_ids.0",
    "stability",
    "stability.0",
    "stability.0.variant",
    "stability.0.seed",
    "stability.0.status",
    "stability.0.answer",
    "stability.0.error_class",
    "stability.1.seed",
    "stability.0.extra",
    "extra",
    # verified pins and retrieval drift (#21)
    "served_pins",
    "served_pins.model_rev",
    "retrieved",
    "retrieved.0",
    "retrieved.0.id",
    "retrieved.0.text",
    "retrieved.1.extra",
    "stability.0.retrieved",
    "stability.0.retrieved.0.id",
    "stability.1.retrieved",
)


def _base(i: int) -> dict[str, Json]:
    obj: dict[str, Json] = orjson.loads(encode(result(envelope(i), "cand")))
    obj["pins"] = {"model_rev": "b", "prompt": "p2"}
    obj["tool_calls"] = [
        {
            "name": "lookup",
            "arguments": {"verb": "go", "n": 3, "tags": ["a", None, True], "deep": {"x": -(2**63)}},
            "disposition": "stubbed_recorded",
            "output": '{"form":"x"}',
            "schema_valid": True,
            "schema_error": None,
        },
        {"name": "save", "arguments": "{not json", "disposition": "blocked"},
    ]
    obj["usage"] = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    obj["model"] = "cand-model"
    obj["cited_ids"] = ["doc-1", "doc-2"]
    obj["stability"] = [
        {"variant": "seed:1", "seed": 1, "status": "ok", "answer": "I went."},
        {"variant": "paraphrase:0", "status": "error", "error_class": "timeout"},
    ]
    obj["error_class"] = None
    obj["attempts"] = 2
    obj["served_pins"] = {"model_rev": "b", "index": ""}
    obj["retrieved"] = [{"id": "doc-1", "text": "Paris."}, {"id": "doc-2", "text": None}]
    obj["stability"][0]["retrieved"] = [{"id": "doc-3"}]
    return obj


def _native() -> Any:
    """The native reader's fields of a record (None: declined)."""
    reader = NATIVE_RESULTS
    assert reader is not None, "shadowlane_native is not installed: run `make` (it builds native/)"

    def fields(data: bytes) -> dict[str, Any] | None:
        record = reader(data)
        return None if record is None else record.fields()

    return fields


def _exact(value: Any) -> Any:
    """A value with every type spelled out, dict keys in order, floats by repr (so -0.0 ≠ 0.0
    and 1 ≠ 1.0): ``==`` alone would equate too much."""
    if isinstance(value, BaseModel):
        return type(value).__name__, [(name, _exact(v)) for name, v in value.__dict__.items()]
    if isinstance(value, dict):
        return "dict", [(k, _exact(v)) for k, v in value.items()]
    if isinstance(value, list | tuple):
        return type(value).__name__, [_exact(v) for v in value]
    return type(value).__name__, repr(value)


def _negative_zero(value: Json) -> bool:
    if isinstance(value, float):
        return value == 0 and math.copysign(1, value) < 0
    if isinstance(value, dict):
        return any(_negative_zero(v) for v in value.values())
    if isinstance(value, list):
        return any(_negative_zero(v) for v in value)
    return False


def _reference(data: bytes) -> ShadowResult | DecodeError:
    try:
        return decode(data, ShadowResult)
    except DecodeError as exc:
        return exc


def _check(data: bytes) -> bool:
    """Asserts the two paths agree; True when the native one vouched for the record."""
    fields = _native()(data)
    reference = _reference(data)
    if isinstance(reference, DecodeError):
        with pytest.raises(DecodeError) as raised:
            decode_result(data)
        assert (raised.value.reason, raised.value.detail) == (reference.reason, reference.detail)
    else:
        assert decode_result(data) == reference
    if fields is None:
        return False
    assert isinstance(reference, ShadowResult), f"native accepted what the codec rejects: {reference}"
    assert _exact(from_native(fields)) == _exact(reference)
    record = read_result(data)  # what the join holds: the native record, keyed as the contract's
    assert not isinstance(record, ShadowResult)
    assert (record.req_hash, record.candidate) == (reference.req_hash, reference.candidate)
    return True


@pytest.mark.parametrize("path", PATHS)
@given(value=values, delete=st.booleans(), ascii_only=st.booleans())
@settings(max_examples=50, deadline=None)
def test_native_equals_the_codec_with_one_field_changed(
    path: str, value: Json, delete: bool, ascii_only: bool
) -> None:
    _check(broken(_base(7), [(path, value, delete)], ascii_only))


@given(
    i=st.integers(min_value=0, max_value=500),
    changes=changes_of(PATHS),
    ascii_only=st.booleans(),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_native_equals_the_codec_on_broken_results(i: int, changes: list[Change], ascii_only: bool) -> None:
    _check(broken(_base(i), changes, ascii_only))


def test_breaking_a_record_twice_with_one_container_does_not_make_it_circular() -> None:
    # Hypothesis' ``sampled_from`` hands out the same ``{}`` on every draw: once set at ``usage``
    # and again at ``usage.total_tokens`` it used to sit inside itself (a CI failure).
    shared: dict[str, Json] = {}
    raw = broken(_base(0), [("usage", shared, False), ("usage.total_tokens", shared, False)], False)
    assert json.loads(raw)["usage"] == {"total_tokens": {}}
    _check(raw)


@given(
    args=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    strings=st.lists(st.text(max_size=10), min_size=4, max_size=4),
)
@settings(max_examples=400, deadline=None)
def test_native_arguments_and_strings_equal_the_codecs(args: dict[str, Json], strings: list[str]) -> None:
    obj = _base(1)
    obj["tool_calls"][0]["arguments"] = args
    obj["tool_calls"][1]["arguments"] = strings[3]
    obj["pins"] = {strings[0]: strings[1]}
    obj["answer"] = strings[2]
    vouched = _check(json.dumps(obj, ensure_ascii=False).encode())
    if not _negative_zero(args):
        assert vouched  # any arguments but -0.0: numbers are read as orjson reads them


@given(number=st.from_regex(r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,3})?", fullmatch=True))
@settings(max_examples=500, deadline=None)
def test_numbers_read_as_orjson_reads_them(number: str) -> None:
    """Floats correctly rounded, ints within 64 bits exact, longer ints as floats: as orjson."""
    obj = _base(1)
    obj["tool_calls"][0]["arguments"] = {"x": 0}
    data = orjson.dumps(obj).replace(b'"x":0', b'"x":' + number.encode())
    _check(data)
    if not (number.startswith("-") and float(number) == 0):
        assert _native()(data) is not None or abs(float(number)) == float("inf")


def test_the_benchmark_and_factory_results_take_the_native_path() -> None:
    for i in range(20):
        assert _check(encode(result(envelope_of_size(i, "1k"), "cand")))
        assert _check(encode(result(envelope(i), "baseline", answer=None)))
    assert _check(orjson.dumps(_base(3)))
    required = ("schema_version", "req_hash", "req_id", "candidate")
    minimal = {k: v for k, v in _base(2).items() if k in required}
    assert _check(orjson.dumps({**minimal, "shadow_id": "s", "ts_ms": 0, "status": "error", "latency_ms": 0}))


@pytest.mark.parametrize(
    "data",
    [
        b"[]",
        b"{}",
        b"",
        b"\xff\xfe",
        b"null",
        b'{"schema_version": 1',
        orjson.dumps({**_base(1), "usage": [1, 2, 3]}),
        orjson.dumps({**_base(1), "tool_calls": [["lookup", {}, "blocked"]]}),
        orjson.dumps(_base(1))[:-1] + b',"candidate":"c2","candidate":"c3"}',
        orjson.dumps(_base(1))[:-1] + b',"pins":{"a":"1","a":"2"}}',
        orjson.dumps({**_base(1), "tool_calls": [{"name": "x", "disposition": "blocked", "arguments": 0}]}),
        orjson.dumps(
            {**_base(1), "tool_calls": [{"name": "x", "disposition": "blocked", "arguments": None}]}
        ),
        orjson.dumps(_base(1)).replace(b'"verb":"go"', b'"verb":"go","verb":"went"'),
        orjson.dumps(_base(1)).replace(b'"cand"', b'"\\ud800"'),
        orjson.dumps({**_base(1), "schema_version": 1.0}),
        orjson.dumps({**_base(1), "schema_version": True}),
        orjson.dumps({k: v for k, v in _base(1).items() if k != "schema_version"}),
        orjson.dumps({**_base(1), "ts_ms": True}),
        orjson.dumps({**_base(1), "attempts": 0}),
        orjson.dumps({**_base(1), "latency_ms": -0.0}),
        orjson.dumps({**_base(1), "latency_ms": 2**63}),
        json.dumps({**_base(1), "latency_ms": 2**64}).encode(),
        json.dumps({**_base(1), "latency_ms": 10**30}).encode(),
        json.dumps({**_base(1), "latency_ms": 1e308}).encode(),
        b'{"latency_ms": 1e999, ' + orjson.dumps(_base(1))[1:],
        orjson.dumps({**_base(1), "latency_ms": "50"}),
        orjson.dumps({**_base(1), "req_hash": "A" * 32}),
        orjson.dumps({**_base(1), "req_hash": "a" * 32 + "\n"}),
        orjson.dumps({**_base(1), "status": "OK"}),
        orjson.dumps({**_base(1), "error_class": "nope"}),
        json.dumps({**_base(1), "ts_ms": 2**64}).encode(),
        b" \n" + orjson.dumps(_base(1)) + b" \n",
        # numbers: serde reads `-0` as a float, orjson as an int; past 64 bits orjson reads floats
        orjson.dumps({**_base(1), "latency_ms": 0}).replace(b'"latency_ms":0', b'"latency_ms":-0'),
        orjson.dumps(_base(1)).replace(b'"n":3', b'"n":-0'),
        orjson.dumps(_base(1)).replace(b'"n":3', b'"n":-0.0'),
        orjson.dumps(_base(1)).replace(b'"n":3', b'"n":18446744073709551616'),
        orjson.dumps(_base(1)).replace(b'"n":3', b'"n":-9223372036854775809'),
        orjson.dumps(_base(1)).replace(b'"n":3', b'"n":1e400'),
        orjson.dumps(_base(1)).replace(b'"n":3', b'"n":1e-400'),
        orjson.dumps(_base(1)).replace(b'"n":3', b'"n":2.5e-324'),
        # the #21 parts: an empty passage id, nulls, non-strings, repeated keys
        orjson.dumps({**_base(1), "retrieved": [{"id": ""}]}),
        orjson.dumps({**_base(1), "retrieved": [{"id": "a", "text": 1}]}),
        orjson.dumps({**_base(1), "retrieved": None}),
        orjson.dumps({**_base(1), "served_pins": None}),
        orjson.dumps({**_base(1), "served_pins": {"a": None}}),
        orjson.dumps(_base(1)).replace(b'"index":""', b'"index":"","index":"x"'),
        orjson.dumps(_base(1)).replace(b'{"id":"doc-3"}', b'{"id":""}'),
    ],
)
def test_edge_records_agree(data: bytes) -> None:
    _check(data)
