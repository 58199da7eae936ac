"""The native envelope reader (``shadowlane_native``, Rust) against ``check_request``.

The native reader may decline any record (``None``: the Python check then runs); when it
accepts one, the Python check must accept it too, and so must the contract in strict JSON mode
(the hook's envelope builder relies on that), and the projection must equal Python's in every
value, type and key order. Hypothesis generates well-formed envelopes and breaks them at
every field of the contract: wrong types, nulls, missing fields, unknown fields, big and negative
numbers, floats, escapes, control characters, repeated keys, arrays where objects belong. After
the changes the record's ``req_hash`` is recomputed by the recipe (unless a change is to the hash
itself) and its key is that hash, so the contract's own bounds are what decides; the identity
checks have tests of their own.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadowlane.compare.prod_side import NATIVE_REQUESTS, ProdSide, read_request
from shadowlane.contracts.codec import DecodeError, encode
from shadowlane.contracts.envelope import Exposure, GoldLabel, RequestEnvelope
from shadowlane.hashing import canonical_json, req_hash
from tests.bench.payloads import envelope_of_size
from tests.support.factories import envelope, make_envelope
from tests.support.native_fuzz import (
    Change,
    Json,
    broken,
    changes_of,
    has_float,
    ints_in,
    json_values,
    set_path,
    values,
)

NativeReader = Callable[[bytes, bytes | None], Any]

PATHS = (
    "schema_version",
    "req_id",
    "req_hash",
    "ts_ms",
    "endpoint",
    "tenant",
    "request",
    "request.model",
    "prod",
    "prod.answer",
    "prod.status",
    "prod.latency_ms",
    "prod.model",
    "prod.usage",
    "prod.usage.prompt_tokens",
    "prod.usage.completion_tokens",
    "prod.cited_ids",
    "tool_io",
    "tool_io.0",
    "tool_io.0.name",
    "tool_io.0.arguments",
    "tool_io.1.arguments",
    "pins",
    "pins.model_rev",
    "gold",
    "gold.answer",
    "gold.cited_ids",
    "buckets",
    "exposure",
    "exposure.arm",
    "exposure.epoch",
    "exposure.bucket",
    "exposure.flag",
    "sampling",
    "sampling.ratio",
    "sampling.bucket",
    "sampling.salt_id",
    "sampling.sampled",
    "trace_id",
    "sanitized_fields",
    "paraphrases",
    "surprise",
    "request.messages",
    "request.messages.0",
    "request.messages.0.role",
    "request.messages.0.content",
    "request.messages.1.name",
    "request.messages.1.tool_calls",
    "request.messages.1.surprise",
    "request.tools",
    "request.tools.0.type",
    "request.tools.0.function",
    "request.tools.0.function.parameters",
    "request.params",
    "request.params.temperature",
    "request.surprise",
    "prod.tool_calls",
    "prod.error",
    "prod.usage.total_tokens",
    "prod.surprise",
    "tool_io.0.output",
    "tool_io.0.ok",
    "gold.source",
    # verified pins, retrieval drift, the agent's history steps (#21)
    "prod.served_pins",
    "prod.served_pins.model_rev",
    "prod.served_pins.index",
    "prod.retrieved",
    "prod.retrieved.0",
    "prod.retrieved.0.id",
    "prod.retrieved.0.text",
    "prod.retrieved.1.id",
    "prod.retrieved.1.surprise",
    "history_tool_calls",
)


def _native() -> NativeReader:
    """The native reader's fields of a record (None: declined)."""
    reader = NATIVE_REQUESTS
    assert reader is not None, "shadowlane_native is not installed: run `make` (it builds native/)"

    def fields(data: bytes, key: bytes | None) -> Any:
        record = reader(data, key)
        return None if record is None else record.fields()

    return fields


def _base(i: int) -> dict[str, Json]:
    env = envelope(i).model_copy(
        update={
            "gold": GoldLabel(answer="I went.", cited_ids=("doc-1",)),
            "exposure": Exposure(flag="f", arm="baseline", served_by="m", strategy="ab", epoch=1),
            "buckets": {"tense": "past"},
        }
    )
    obj: dict[str, Json] = orjson.loads(encode(env))
    obj["prod"]["usage"] = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    obj["prod"]["cited_ids"] = ["doc-1", "doc-2"]
    obj["request"]["params"] = {"temperature": 0.7, "max_tokens": 64}
    obj["request"]["messages"][1]["tool_calls"] = [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ]
    obj["trace_id"] = "t-1"
    obj["paraphrases"] = ["one", "two"]
    obj["prod"]["served_pins"] = {"model_rev": "m1", "index": ""}  # "": a source that said nothing
    obj["prod"]["retrieved"] = [{"id": "doc-1", "text": "Paris is the capital."}, {"id": "doc-2"}]
    obj["history_tool_calls"] = 1
    _signed(obj)
    return obj


def _signed(obj: Json) -> Json:
    """``obj`` with the ``req_hash`` the recipe gives its ``req_id`` and ``request`` (when it has
    them in a form that can be hashed): what an honest producer writes."""
    if isinstance(obj, dict) and isinstance(obj.get("req_id"), str) and "request" in obj:
        with contextlib.suppress(TypeError):
            obj["req_hash"] = req_hash(obj["req_id"], canonical_json(obj["request"]))
    return obj


def _record(obj: dict[str, Json], changes: list[Change], ascii_only: bool) -> tuple[bytes, bytes | None]:
    """The record's value (``obj`` broken by ``changes``, then signed unless a change is to the
    hash) and its key (the hash, as the hook keys records)."""
    for path, value, delete in changes:
        set_path(obj, path, value, delete)
    if not any(path.startswith("req_hash") for path, _, _ in changes):
        _signed(obj)
    claimed = obj.get("req_hash")
    key = claimed.encode() if isinstance(claimed, str) else None
    return broken(obj, [], ascii_only), key


def _python(data: bytes, key: bytes | None) -> ProdSide | DecodeError:
    try:
        return ProdSide.decode_python(data, key)
    except DecodeError as exc:
        return exc


def _claimed(data: bytes) -> bytes | None:
    """The ``req_hash`` a record claims, as the key an honest producer gives it."""
    try:
        claimed = orjson.loads(data).get("req_hash")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return claimed.encode() if isinstance(claimed, str) else None


def _exact(side: ProdSide) -> list[tuple[str, Any, type]]:
    """Every value with its type, and dict keys in order: ``==`` alone would equate 1 and 1.0."""
    out: list[tuple[str, Any, type]] = []
    for name in ("req_id", "req_hash", "ts_ms", "endpoint", "tenant", "candidate_served"):
        out.append((name, getattr(side, name), type(getattr(side, name))))
    out.append(("pins", list(side.pins.items()), dict))
    out.append(("buckets", list(side.buckets.items()), dict))
    out.append(("tool_keys", sorted(side.tool_keys), type(side.tool_keys)))
    out.append(("tool_steps", list(side.tool_steps), type(side.tool_steps)))  # in call order
    out.append(("question", side.question, type(side.question)))
    out.append(("paraphrases", side.paraphrases, type(side.paraphrases)))
    out.append(("served_pins", list(side.served_pins.items()), type(side.served_pins)))
    out.append(("retrieved", [(p.id, p.text, type(p)) for p in side.retrieved], type(side.retrieved)))
    p = side.prod
    for name in (
        "answer",
        "latency_ms",
        "status",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "cited_ids",
    ):
        out.append((f"prod.{name}", getattr(p, name), type(getattr(p, name))))
    gold = side.gold
    out.append(
        ("gold", None if gold is None else (gold.answer, gold.cited_ids, type(gold.cited_ids)), type(gold))
    )
    return out


def _check(data: bytes, key: bytes | None = b"") -> bool:
    """Asserts the two paths agree; True when the native one vouched for the record. ``key``:
    the record's key (by default the ``req_hash`` the record claims)."""
    if key == b"":
        key = _claimed(data)
    fields = _native()(data, key)
    reference = _python(data, key)
    if fields is None:
        return False
    assert isinstance(reference, ProdSide), f"native accepted what check_request rejects: {reference}"
    # the hook's builder relies on it too: what it vouches for, the contract's strict JSON mode takes
    RequestEnvelope.model_validate_json(data, strict=True)
    assert _exact(ProdSide.from_native(fields)) == _exact(reference)
    assert ProdSide.decode(data, key) == reference
    record = read_request(data, key)  # what the join holds: the native record, keyed as the Python one
    assert not isinstance(record, ProdSide)
    assert (record.req_hash, record.candidate_served) == (reference.req_hash, reference.candidate_served)
    return True


@pytest.mark.parametrize("path", PATHS)
@given(value=values, delete=st.booleans(), ascii_only=st.booleans())
@settings(max_examples=60, deadline=None)
def test_native_equals_pydantic_with_one_field_changed(
    path: str, value: Json, delete: bool, ascii_only: bool
) -> None:
    _check(*_record(_base(7), [(path, value, delete)], ascii_only))


@given(
    i=st.integers(min_value=0, max_value=500),
    changes=changes_of(PATHS),
    ascii_only=st.booleans(),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_native_equals_pydantic_on_broken_envelopes(i: int, changes: list[Change], ascii_only: bool) -> None:
    _check(*_record(_base(i), changes, ascii_only))


@given(
    args=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    strings=st.lists(st.text(max_size=10), min_size=3, max_size=3),
)
@settings(max_examples=400, deadline=None)
def test_native_canonical_arguments_and_strings_equal_pythons(
    args: dict[str, Json], strings: list[str]
) -> None:
    obj = _base(1)
    obj.pop("history_tool_calls", None)  # tool_io[0] is this turn's call: a tool key
    obj["tool_io"][0]["arguments"] = args
    obj["pins"] = {strings[0]: strings[1]}
    obj["prod"]["answer"] = strings[2]
    obj["request"]["params"] = {"args": args}  # the request's hash, floats included, is Rust's too
    data = json.dumps(_signed(obj), ensure_ascii=False).encode()
    vouched = _check(data)
    if not has_float(args) and all(abs(v) < 2**63 for v in ints_in(args)):
        assert vouched  # floats and ints past 64 bits are the only arguments it leaves to Python
        tool_keys = ProdSide.decode(data, _claimed(data)).tool_keys
        assert (obj["tool_io"][0]["name"], canonical_json(args).decode()) in tool_keys


@pytest.mark.parametrize("size", ["1k", "8k"])
def test_the_benchmark_and_factory_envelopes_take_the_native_path(size: str) -> None:
    for i in range(20):
        assert _check(encode(envelope_of_size(i, size)))
        assert _check(encode(envelope(i)))
        assert _check(encode(make_envelope(f"m{i}")))  # its request holds a float (temperature)
    assert _check(orjson.dumps(_base(3)))


@given(floats=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=6))
@settings(max_examples=400, deadline=None)
def test_the_request_hash_is_recomputed_natively_with_any_float(floats: list[float]) -> None:
    obj = _base(2)
    obj["request"]["params"] = {f"p{i}": x for i, x in enumerate(floats)} | {"all": floats}
    assert _check(orjson.dumps(_signed(obj)))


def test_a_made_up_hash_or_a_wrong_key_is_declined_and_refused() -> None:
    obj = _base(4)
    data = orjson.dumps(obj)
    key = obj["req_hash"].encode()
    assert _check(data, key)
    forged = orjson.dumps({**obj, "req_hash": "0" * 32})
    tampered = orjson.dumps({**obj, "request": {**obj["request"], "model": "other"}})
    for value, with_key, reason in [
        (forged, b"0" * 32, "req_hash_mismatch"),
        (tampered, key, "req_hash_mismatch"),
        (data, None, "key_mismatch"),
        (data, b"0" * 32, "key_mismatch"),
    ]:
        assert _native()(value, with_key) is None
        refused = _python(value, with_key)
        assert isinstance(refused, DecodeError)
        assert refused.reason == reason


@pytest.mark.parametrize(
    "data",
    [
        b"[]",
        b"{}",
        b"",
        b"\xff\xfe",
        b"null",
        b'{"schema_version": 1',
        # a JSON array in the place of an object: serde would read it positionally
        orjson.dumps({**_base(1), "prod": ["x", 200, 1.0]}),
        orjson.dumps({**_base(1), "prod": {**_base(1)["prod"], "usage": [1, 2]}}),
        # repeated keys: pydantic keeps the last one
        orjson.dumps(_base(1))[:-1] + b',"tenant":"t2","tenant":"t3"}',
        orjson.dumps(_base(1)).replace(b'"role":"user"', b'"role":"user","role":"tool"'),
        orjson.dumps(_base(1))[:-1] + b',"pins":{"a":"1","a":"2"}}',
        # a lone surrogate escape
        orjson.dumps(_base(1)).replace(b'"/v1/chat/completions"', b'"\\ud800"'),
        orjson.dumps({**_base(1), "schema_version": 1.0}),
        orjson.dumps({**_base(1), "ts_ms": True}),
        orjson.dumps({**_base(1), "req_id": "x" * 257}),
        orjson.dumps({**_base(1), "req_id": "é" * 256}),
        orjson.dumps({**_base(1), "req_hash": "A" * 32}),
        orjson.dumps({**_base(1), "req_hash": "a" * 32 + "\n"}),
        orjson.dumps({**_base(1), "exposure": {"arm": "other"}}),
        orjson.dumps({**_base(1), "exposure": {"arm": "candidate"}}),
        json.dumps({**_base(1), "ts_ms": 2**64}).encode(),
        b" \n" + orjson.dumps(_base(1)) + b" \n",
        # the #21 parts: an empty passage id, nulls, non-strings, a bad count
        orjson.dumps({**_base(1), "prod": {**_base(1)["prod"], "retrieved": [{"id": ""}]}}),
        orjson.dumps({**_base(1), "prod": {**_base(1)["prod"], "retrieved": [{"id": 1}]}}),
        orjson.dumps({**_base(1), "prod": {**_base(1)["prod"], "retrieved": [{"text": "x"}]}}),
        orjson.dumps({**_base(1), "prod": {**_base(1)["prod"], "retrieved": None}}),
        orjson.dumps({**_base(1), "prod": {**_base(1)["prod"], "retrieved": [{"id": "a", "text": 3}]}}),
        orjson.dumps({**_base(1), "prod": {**_base(1)["prod"], "served_pins": None}}),
        orjson.dumps({**_base(1), "prod": {**_base(1)["prod"], "served_pins": {"a": 1}}}),
        orjson.dumps(_base(1)).replace(b'"index":""', b'"index":"","index":"i"'),
        orjson.dumps({**_base(1), "history_tool_calls": -1}),
        orjson.dumps({**_base(1), "history_tool_calls": 1.0}),
        orjson.dumps({**_base(1), "history_tool_calls": True}),
        orjson.dumps({**_base(1), "history_tool_calls": 2**63}),
        orjson.dumps({**_base(1), "history_tool_calls": 9}),  # past tool_io: no steps this turn
        # a lone surrogate in a message's content: the canonical request refuses it on both paths
        orjson.dumps(_base(1)).replace(b'"role":"user","content":"', b'"role":"user","content":"\\ud800'),
    ],
)
def test_edge_records_agree(data: bytes) -> None:
    _check(data)


def test_the_prod_model_falls_back_to_the_request_model_as_in_python() -> None:
    for prod_model, request_model in [(None, "r"), ("", "r"), ("p", "r"), ("", None), (None, None)]:
        obj = _base(1)
        obj["prod"]["model"] = prod_model
        obj["request"]["model"] = request_model
        assert _check(orjson.dumps(_signed(obj)))


_PART = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["text", "image_url", "TEXT", 1, None]),
        "text": st.one_of(
            st.text(max_size=12), st.integers(-(2**31), 2**31), st.none(), st.lists(st.text(max_size=3))
        ),
        "image_url": st.fixed_dictionaries({"url": st.text(max_size=8)}),
    },
)


@given(
    content=st.one_of(st.none(), st.text(max_size=20), st.lists(_PART, max_size=4)),
    role=st.sampled_from(["user", "assistant", "system"]),
    ascii_only=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_the_question_is_the_same_natively_for_any_last_message_content(
    content: Json, role: str, ascii_only: bool
) -> None:
    """Retrieval drift's question (the last user message's text): a string, text parts joined,
    or None; the native reader keeps the same, escapes and non-ASCII included."""
    obj = _base(5)
    earlier = [m["content"] for m in obj["request"]["messages"] if m["role"] == "user"][-1]
    obj["request"]["messages"].append({"role": role, "content": content})
    data = json.dumps(_signed(obj), ensure_ascii=ascii_only).encode()
    assert _check(data)
    side = ProdSide.decode_python(data, _claimed(data))
    if role == "user":
        want = content if isinstance(content, str) else None
        if isinstance(content, list):
            want = "\n".join(
                p["text"] for p in content if p.get("type") == "text" and isinstance(p.get("text"), str)
            )
        assert side.question == (want or None)
    else:  # the last user message is the earlier one
        assert side.question == earlier


def test_a_repeated_part_key_counts_its_last_value_on_both_paths() -> None:
    obj = _base(6)
    obj["request"]["messages"].append({"role": "user", "content": [{"type": "text", "text": "first"}]})
    data = orjson.dumps(_signed(obj)).replace(b'"text":"first"', b'"text":"first","text":"second"')
    obj_hash = req_hash(obj["req_id"], canonical_json(orjson.loads(data)["request"]))
    data = data.replace(obj["req_hash"].encode(), obj_hash.encode())
    assert _check(data)
    assert ProdSide.decode_python(data, obj_hash.encode()).question == "second"


@given(history=st.integers(0, 4), calls=st.integers(0, 3))
@settings(max_examples=60, deadline=None)
def test_this_turns_steps_are_the_calls_after_the_history_on_both_paths(history: int, calls: int) -> None:
    obj = _base(2)
    obj["tool_io"] = [{"name": f"t{i}", "arguments": {"i": i}, "output": "o"} for i in range(calls)]
    obj["history_tool_calls"] = history
    assert _check(orjson.dumps(_signed(obj)))
    side = ProdSide.decode_python(orjson.dumps(obj), obj["req_hash"].encode())
    assert [name for name, _ in side.tool_steps] == [f"t{i}" for i in range(history, calls)]
    assert len(side.tool_keys) == max(0, calls - history)  # tool agreement reads this turn's calls


@pytest.mark.parametrize("char", ["a", "é", "😀", "\n"])
@pytest.mark.parametrize("length", [1, 3_999, 4_000, 4_001, 9_000])
@pytest.mark.parametrize("parts", [False, True])
def test_a_long_question_is_cut_alike_on_both_paths(char: str, length: int, parts: bool) -> None:
    """The question is cut to ``MAX_QUESTION_CHARS`` code points (non-ASCII and escaped text too)."""
    from shadowlane.compare.retrieval import MAX_QUESTION_CHARS

    obj = _base(5)
    text = char * length
    content: Json = [{"type": "text", "text": text}, {"type": "text", "text": "tail"}] if parts else text
    obj["request"]["messages"].append({"role": "user", "content": content})
    for ascii_only in (True, False):
        data = json.dumps(_signed(obj), ensure_ascii=ascii_only).encode()
        assert _check(data)
        question = ProdSide.decode_python(data, _claimed(data)).question
        whole = text + "\ntail" if parts else text
        assert question == whole[:MAX_QUESTION_CHARS]
