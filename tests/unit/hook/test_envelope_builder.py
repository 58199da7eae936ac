"""shadowlane/hook/envelope_builder.py: raw captures become valid, sanitized RequestEnvelopes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import pytest

from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.errors import InvalidMessage
from shadowlane.hashing import canonical_json, req_hash, unit_hash
from shadowlane.hook.context import (
    RawExposure,
    RawGold,
    RawMirror,
    RawToolCall,
    RequestLabels,
    close_context,
    open_context,
    set_buckets,
    set_exposure,
)
from shadowlane.hook.envelope_builder import EnvelopeBuilder, tool_io_from_messages
from shadowlane.sanitize import Sanitizer

TOOLS = [
    {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "save_progress", "parameters": {"type": "object"}}},
]


def builder(drop_fields: Sequence[str] = ()) -> EnvelopeBuilder:
    return EnvelopeBuilder(Sanitizer(drop_fields), ratio=0.25, salt_id="salt-1", pins={"model_rev": "a"})


def raw(
    request: bytes | Mapping[str, Any],
    response: bytes | Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    tool_calls: Sequence[RawToolCall] = (),
    pins: Mapping[str, str] | None = None,
    req_id: str = "req-1",
) -> RawMirror:
    return RawMirror(
        req_id=req_id,
        endpoint="/v1/chat/completions",
        request=request,
        response=response,
        status=status,
        latency_ms=42.5,
        ts_ms=1_700_000_000_000,
        bucket=0.125,
        tenant="acme",
        trace_id="00-abc-def-01",
        tool_calls=tool_calls,
        pins=pins or {},
    )


def completion(content: str | None, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "model": "prod-model-2025",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16},
    }


REQUEST: dict[str, Any] = {
    "model": "prod-model",
    "messages": [
        {"role": "system", "content": "You are a tutor."},
        {"role": "user", "content": "Is 'I goed' right?"},
    ],
    "tools": TOOLS,
    "temperature": 0.2,
    "max_tokens": 64,
}


def test_builds_a_valid_envelope_from_json_bytes() -> None:
    env = builder().build(
        raw(orjson.dumps(REQUEST), orjson.dumps(completion("No: 'I went'.")), pins={"prompt_ver": "7"})
    )
    assert isinstance(env, RequestEnvelope)
    assert decode(encode(env), RequestEnvelope) == env  # passes the wire contract
    assert env.req_id == "req-1"
    assert env.endpoint == "/v1/chat/completions"
    assert env.tenant == "acme"
    assert env.trace_id == "00-abc-def-01"
    assert env.ts_ms == 1_700_000_000_000
    assert env.request.model == "prod-model"
    assert [m.role for m in env.request.messages] == ["system", "user"]
    assert [t.function.name for t in env.request.tools] == ["lookup", "save_progress"]
    assert env.request.params == {"temperature": 0.2, "max_tokens": 64}
    assert env.prod.answer == "No: 'I went'."
    assert env.prod.status == 200
    assert env.prod.latency_ms == 42.5
    assert env.prod.model == "prod-model-2025"
    assert env.prod.usage is not None
    assert env.prod.usage.total_tokens == 16
    assert env.prod.error is None
    assert env.pins == {"model_rev": "a", "prompt_ver": "7"}
    assert (env.sampling.ratio, env.sampling.bucket, env.sampling.salt_id) == (0.25, 0.125, "salt-1")
    assert env.sanitized_fields == 0
    assert env.tool_io == ()


def test_req_hash_is_derived_from_id_and_canonical_request() -> None:
    env = builder().build(raw(orjson.dumps(REQUEST)))
    reordered = dict(reversed(list(REQUEST.items())))
    env2 = builder().build(raw(reordered))  # a mapping in another key order
    assert env.req_hash == env2.req_hash
    payload = {
        "model": REQUEST["model"],
        "messages": REQUEST["messages"],
        "tools": REQUEST["tools"],
        "params": {"temperature": 0.2, "max_tokens": 64},
    }
    assert env.req_hash == req_hash("req-1", canonical_json(payload))
    assert builder().build(raw(orjson.dumps(REQUEST), req_id="req-2")).req_hash != env.req_hash


def _sse(chunks: list[dict[str, Any]]) -> bytes:
    lines = [b"data: " + orjson.dumps(c) for c in chunks] + [b"data: [DONE]"]
    return b"\n\n".join(lines) + b"\n\n"


def test_streamed_content_deltas_are_reassembled() -> None:
    chunks: list[dict[str, Any]] = [
        {"model": "prod-stream", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"model": "prod-stream", "choices": [{"index": 0, "delta": {"content": "No: "}}]},
        {"model": "prod-stream", "choices": [{"index": 0, "delta": {"content": "'I went'."}}]},
        {
            "model": "prod-stream",
            "choices": [],
            "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
        },
    ]
    request = {**REQUEST, "stream": True, "stream_options": {"include_usage": True}}
    env = builder().build(raw(orjson.dumps(request), _sse(chunks)))
    assert env.prod.answer == "No: 'I went'."
    assert env.prod.model == "prod-stream"
    assert env.prod.usage is not None
    assert env.prod.usage.total_tokens == 13
    assert env.request.params["stream"] is True


def test_streamed_tool_call_deltas_are_reassembled() -> None:
    chunks: list[dict[str, Any]] = [
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "id": "call_a", "function": {"name": "look", "arguments": ""}},
                        ]
                    }
                }
            ]
        },
        {
            "choices": [
                {"delta": {"tool_calls": [{"index": 0, "function": {"name": "up", "arguments": '{"ve'}}]}}
            ]
        },
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 1,
                                "id": "call_b",
                                "function": {"name": "save_progress", "arguments": "{}"},
                            },
                            {"index": 0, "function": {"arguments": 'rb":"go"}'}},
                        ]
                    }
                }
            ]
        },
    ]
    env = builder().build(raw(orjson.dumps(REQUEST), _sse(chunks)))
    assert env.prod.answer is None
    calls = [(c.id, c.function.name, c.function.arguments) for c in env.prod.tool_calls]
    assert calls == [("call_a", "lookup", '{"verb":"go"}'), ("call_b", "save_progress", "{}")]


def test_tool_io_is_paired_from_assistant_tool_calls_and_tool_messages() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "check 'goed'"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"verb":"go"}'},
                },
                {"id": "c2", "type": "function", "function": {"name": "save_progress", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c2", "content": '{"saved":true}'},
        {"role": "tool", "tool_call_id": "c1", "content": '{"past":"went"}'},
        {"role": "tool", "tool_call_id": "nobody", "content": "orphan"},
    ]
    env = builder().build(raw({**REQUEST, "messages": messages}))
    got = [(t.name, t.arguments, t.output, t.ok) for t in env.tool_io]
    assert got == [
        ("save_progress", {}, '{"saved":true}', True),
        ("lookup", {"verb": "go"}, '{"past":"went"}', True),
    ]
    assert tool_io_from_messages(messages)[1] == {
        "name": "lookup",
        "arguments": '{"verb":"go"}',
        "output": '{"past":"went"}',
    }


def test_tool_io_from_recorded_raw_tool_calls() -> None:
    recorded = [
        RawToolCall("lookup", {"verb": "go"}, {"past": "went"}),
        RawToolCall("lookup", '{"verb": "be"}', "was"),
        RawToolCall("save_progress", "not json", None, ok=False),
        RawToolCall("count", "[1, 2]", 3),
    ]
    env = builder().build(raw(orjson.dumps(REQUEST), tool_calls=recorded))
    got = [(t.name, t.arguments, t.output, t.ok) for t in env.tool_io]
    assert got == [
        ("lookup", {"verb": "go"}, '{"past":"went"}', True),
        ("lookup", {"verb": "be"}, "was", True),
        ("save_progress", {"_raw": "not json"}, "null", False),
        ("count", {"_value": [1, 2]}, "3", True),
    ]


SECRETS = [
    b"sk-live-abcdefghijklmnopqrstuvwxyz",
    b"hunter2-top-secret",
    b"cookie-value-xyz",
    b"alice@example.com",
    b"415-555-0132",
    b"4111 1111 1111 1111",
    b"AKIAIOSFODNN7EXAMPLE",
    b"internal-only-note",
    b"tool-api-key-999",
    b"bob@example.org",
]


def test_secrets_in_the_body_never_reach_the_encoded_envelope() -> None:
    request = {
        "model": "prod-model",
        "api_key": "sk-live-abcdefghijklmnopqrstuvwxyz",
        "user": "alice@example.com",
        "metadata": {
            "password": "hunter2-top-secret",
            "Cookie": "cookie-value-xyz",
            "note": "internal-only-note",
        },
        "messages": [
            {"role": "system", "content": "Key sk-live-abcdefghijklmnopqrstuvwxyz must stay private."},
            {
                "role": "user",
                "content": "I am alice@example.com, call 415-555-0132, card 4111 1111 1111 1111",
            },
            {"role": "user", "content": [{"type": "text", "text": "aws AKIAIOSFODNN7EXAMPLE"}]},
        ],
        "tools": TOOLS,
    }
    recorded = [
        RawToolCall("lookup", {"api_key": "tool-api-key-999", "q": "x"}, {"owner": "bob@example.org"}),
    ]
    response = completion("Noted, alice@example.com; your key sk-live-abcdefghijklmnopqrstuvwxyz is safe")
    env = builder(drop_fields=["note"]).build(
        raw(orjson.dumps(request), orjson.dumps(response), tool_calls=recorded)
    )
    data = encode(env)
    leaked = [s for s in SECRETS if s in data]
    assert leaked == []
    assert env.sanitized_fields >= 10
    assert env.tool_io[0].arguments == {"q": "x"}
    assert env.prod.answer == "Noted, <email>; your key <secret> is safe"


def test_secret_keys_inside_json_string_tool_arguments_of_messages_are_dropped() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "log me in"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {
                        "name": "login",
                        "arguments": '{"user":"bob","password":"hunter2-top-secret"}',
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
    env = builder().build(raw({**REQUEST, "messages": messages}))
    assert env.tool_io[0].arguments == {"user": "bob"}  # the paired copy is clean...
    assert b"hunter2-top-secret" not in encode(env)  # ...but the message copy is not


def test_prod_response_tool_calls_are_sanitized() -> None:
    call = {
        "id": "c9",
        "type": "function",
        "function": {
            "name": "send_mail",
            "arguments": '{"to":"bob@example.org","password":"hunter2-top-secret"}',
        },
    }
    env = builder().build(raw(orjson.dumps(REQUEST), orjson.dumps(completion(None, [call]))))
    assert len(env.prod.tool_calls) == 1
    data = encode(env)
    assert b"bob@example.org" not in data
    assert b"hunter2-top-secret" not in data


def test_prod_error_message_is_masked() -> None:
    response = {
        "error": {"message": "invalid api key sk-live-abcdefghijklmnopqrstuvwxyz for alice@example.com"}
    }
    env = builder().build(raw(orjson.dumps(REQUEST), orjson.dumps(response), status=401))
    assert env.prod.error is not None
    data = encode(env)
    assert b"sk-live-abcdefghijklmnopqrstuvwxyz" not in data
    assert b"alice@example.com" not in data


def test_prod_error_status_without_json_body() -> None:
    env = builder().build(raw(orjson.dumps(REQUEST), b"upstream exploded", status=502))
    assert env.prod.status == 502
    assert env.prod.error == "HTTP 502"
    assert env.prod.answer is None


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2, 3]",
        b'"just a string"',
        b"not json at all",
        b"",
        b'{"model": "m"}',
        b'{"model": "m", "messages": "hi"}',
        b'{"messages": [{"role": "robot", "content": "x"}]}',
    ],
)
def test_invalid_bodies_raise_invalid_message(body: bytes) -> None:
    with pytest.raises(InvalidMessage) as exc:
        builder().build(raw(body))
    assert exc.value.reason == "invalid_request"


@pytest.mark.parametrize(
    ("body", "response"),
    [
        (b'{"messages": [1]}', None),
        (b'{"messages": ["hi"]}', None),
        (b'{"messages": [{"role": "assistant", "tool_calls": ["x"]}]}', None),
        (orjson.dumps(REQUEST), b'{"choices": [1]}'),
    ],
)
def test_malformed_items_raise_invalid_message(body: bytes, response: bytes | None) -> None:
    with pytest.raises(InvalidMessage):
        builder().build(raw(body, response))


def test_secret_keys_inside_tool_outputs_are_dropped() -> None:
    calls = [
        RawToolCall("lookup", {"q": "x"}, {"user": {"password": "hunter2-pw", "name": "bob"}}),
        RawToolCall("fetch", {}, '{"session_token": "tok-123456", "ok": 1}'),
    ]
    messages = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "db", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"db_password": "pw-987654", "rows": 2}'},
    ]
    env = builder().build(raw({**REQUEST, "messages": messages}, tool_calls=calls))
    data = encode(env)
    for secret in (b"hunter2-pw", b"tok-123456", b"pw-987654"):
        assert secret not in data
    outputs = {t.name: t.output for t in env.tool_io}
    assert outputs["lookup"] == '{"user":{"name":"bob"}}'
    assert outputs["fetch"] == '{"ok":1}'
    assert outputs["db"] == '{"rows":2}'


def test_secret_key_suffixes_are_dropped() -> None:
    body = {**REQUEST, "openai_api_key": "k1", "metadata": {"db_password": "p1", "max_tokens": 5}}
    env = builder().build(raw(body))
    assert "openai_api_key" not in env.request.params
    assert env.request.params["metadata"] == {"max_tokens": 5}


def labelled(**labels: Any) -> RawMirror:
    """A capture whose handler labelled it (gold, paraphrases, citations)."""
    mirror = raw(orjson.dumps(REQUEST), orjson.dumps(completion("No: 'I went'.")))
    mirror = mirror._replace(labels=RequestLabels(**labels))
    return mirror


def test_no_labels_means_no_gold_no_paraphrases_no_cited_ids() -> None:
    env = builder().build(raw(orjson.dumps(REQUEST), orjson.dumps(completion("ok"))))
    assert env.gold is None
    assert env.paraphrases == ()
    assert env.prod.cited_ids == ()


def test_gold_and_paraphrases_are_masked_and_counted() -> None:
    gold = RawGold("Write to alice@example.com: I went.", ("doc-1", "bob@example.org"), "eval-set-3")
    paraphrases = ("Fix it for bob@example.org", "Please correct: I goed.")
    env = builder().build(labelled(gold=gold, paraphrases=paraphrases))
    assert env.gold is not None
    assert env.gold.answer == "Write to <email>: I went."
    assert env.gold.cited_ids == ("doc-1", "<email>")
    assert env.gold.source == "eval-set-3"
    assert env.paraphrases == ("Fix it for <email>", "Please correct: I goed.")
    assert env.sanitized_fields == 3
    data = encode(env)
    assert b"alice@example.com" not in data
    assert b"bob@example.org" not in data
    assert decode(data, RequestEnvelope) == env


def test_more_than_three_paraphrases_are_cut_to_three_and_empty_ones_skipped() -> None:
    env = builder().build(labelled(paraphrases=("one", "", "  ", "two", "three", "four", "five")))
    assert env.paraphrases == ("one", "two", "three")


def test_gold_with_only_cited_ids() -> None:
    env = builder().build(labelled(gold=RawGold(cited_ids=("conj-table:go",))))
    assert env.gold is not None
    assert (env.gold.answer, env.gold.cited_ids, env.gold.source) == (None, ("conj-table:go",), None)


@pytest.mark.parametrize(
    ("citations", "expected"),
    [
        (["conj-table:go", "conj-table:eat"], ("conj-table:go", "conj-table:eat")),
        (
            [{"id": "doc-7", "title": "x"}, {"id": 12}, {"title": "no id"}, "doc-7", 3.5, True],
            ("doc-7", "12"),
        ),
        ("not-a-list", ()),
    ],
)
def test_prod_cited_ids_are_read_from_the_response_citations(
    citations: Any, expected: tuple[str, ...]
) -> None:
    response = {**completion("I went."), "citations": citations}
    env = builder().build(raw(orjson.dumps(REQUEST), orjson.dumps(response)))
    assert env.prod.cited_ids == expected


def test_streamed_response_citations_are_read() -> None:
    chunks: list[dict[str, Any]] = [
        {"choices": [{"index": 0, "delta": {"content": "I went."}}]},
        {"choices": [], "citations": ["conj-table:go"]},
    ]
    env = builder().build(raw(orjson.dumps({**REQUEST, "stream": True}), _sse(chunks)))
    assert env.prod.cited_ids == ("conj-table:go",)


def test_handler_citations_win_over_the_response_and_are_masked() -> None:
    mirror = labelled(citations=("kb:1", "carol@example.net"))
    mirror = mirror._replace(response=orjson.dumps({**completion("I went."), "citations": ["from-response"]}))
    env = builder().build(mirror)
    assert env.prod.cited_ids == ("kb:1", "<email>")
    assert env.sanitized_fields == 1
    empty = labelled(citations=())._replace(response=mirror.response)
    assert builder().build(empty).prod.cited_ids == ()  # set_citations([]) means "cited nothing"


def test_labels_reach_the_envelope_next_to_the_recorded_tool_calls() -> None:
    mirror = raw(orjson.dumps(REQUEST), tool_calls=[RawToolCall("lookup", {"verb": "go"}, {"form": "went"})])
    mirror = mirror._replace(labels=RequestLabels(gold=RawGold("I went."), paraphrases=("Fix: I goed.",)))
    env = builder().build(mirror)
    assert env.gold is not None
    assert env.gold.answer == "I went."
    assert env.paraphrases == ("Fix: I goed.",)
    assert [t.name for t in env.tool_io] == ["lookup"]


def test_buckets_are_masked_and_exposure_is_carried() -> None:
    exposure = RawExposure("grammar_b", "candidate", "grammar-b", "ab", 3, 0.25)
    env = builder().build(
        labelled(buckets={"tense": "past", "student": "carol@example.com", "blank": " "}, exposure=exposure)
    )
    assert env.buckets == {"tense": "past", "student": "<email>"}
    assert env.exposure is not None
    assert (env.exposure.flag, env.exposure.arm, env.exposure.epoch, env.exposure.bucket) == (
        "grammar_b",
        "candidate",
        3,
        0.25,
    )
    assert decode(encode(env), RequestEnvelope) == env


def test_context_records_buckets_and_exposure_only_inside_a_mirrored_request() -> None:
    set_buckets(tense="past")  # outside a mirrored request: a no-op, no error
    ctx, token = open_context()
    try:
        set_buckets(tense="past", verb="go", empty="")
        set_exposure(RawExposure("f", "baseline", "a", "canary", 0))
    finally:
        close_context(token)
    labels = ctx.labels
    assert labels is not None
    assert labels.buckets == {"tense": "past", "verb": "go"}
    assert labels.exposure is not None
    assert labels.exposure.arm == "baseline"


def test_the_bytes_that_leave_are_the_envelope_and_their_request_is_what_req_hash_covers() -> None:
    record = builder().record(raw(orjson.dumps(REQUEST), orjson.dumps(completion("Yes, a@b.io."))))
    assert decode(record.value, RequestEnvelope) == record.envelope
    wire = orjson.loads(record.value)
    assert req_hash("req-1", canonical_json(wire["request"])) == record.req_hash
    assert b"a@b.io" not in record.value
    assert record.sanitized_fields == record.envelope.sanitized_fields > 0


def test_a_capture_without_a_bucket_gets_the_one_derived_from_its_request_id() -> None:
    env = builder().build(raw(orjson.dumps(REQUEST))._replace(bucket=None))
    assert env.sampling.bucket == unit_hash("salt-1", "req-1")


def test_token_usage_keeps_the_counts_of_a_provider_usage_block() -> None:
    usage = {
        "prompt_tokens": 7,
        "completion_tokens": 2,
        "total_tokens": 9,
        "prompt_tokens_details": {"cached": 3},
    }
    env = builder().build(raw(orjson.dumps(REQUEST), orjson.dumps({**completion("ok"), "usage": usage})))
    assert env.prod.usage is not None
    assert env.prod.usage.total_tokens == 9
    odd = {**completion("ok"), "usage": {"total_tokens": "many"}}
    assert builder().build(raw(orjson.dumps(REQUEST), orjson.dumps(odd))).prod.usage is None
    # missing counts take the contract's default; counts the contract reads as ints are kept
    for given, kept in [({"prompt_tokens": 4}, (4, 0, 0)), ({"completion_tokens": "5"}, (0, 5, 0))]:
        partial = {**completion("ok"), "usage": given}
        got = builder().build(raw(orjson.dumps(REQUEST), orjson.dumps(partial))).prod.usage
        assert got is not None
        assert (got.prompt_tokens, got.completion_tokens, got.total_tokens) == kept


def test_a_value_consumers_would_read_differently_is_refused_not_sent() -> None:
    # the handler's exposure says epoch "3": lax Python validation would coerce it, the wire
    # contract (strict JSON, as every consumer and the JSON Schema read it) does not
    exposure = RawExposure("flag", "candidate", "b", "ab", "3", 0.5)  # type: ignore[arg-type]
    mirror = raw(orjson.dumps(REQUEST))._replace(labels=RequestLabels(exposure=exposure))
    with pytest.raises(InvalidMessage):
        builder().record(mirror)


@pytest.mark.parametrize("path", ["python", "native"])
def test_the_bytes_are_checked_by_the_contract_on_either_path(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shadowlane.native_path import native_available

    if path == "native" and not native_available():
        pytest.skip("the native engine is not built: `make native`")
    b = EnvelopeBuilder(Sanitizer(path=path), ratio=1.0, salt_id="s")  # type: ignore[arg-type]
    assert (b._native_check is not None) == (path == "native")
    validated: list[bytes] = []
    real = RequestEnvelope.model_validate_json

    def counting(data: bytes, **kw: Any) -> RequestEnvelope:
        validated.append(data)
        return real(data, **kw)

    monkeypatch.setattr(RequestEnvelope, "model_validate_json", counting)
    plain = b.record(raw(REQUEST, completion("It is 'I went'.")))
    # recorded tool arguments holding a float: the native check leaves them to the contract
    floats = raw(REQUEST, completion("ok"), tool_calls=(RawToolCall("lookup", {"w": 0.5}, "x"),))
    with_floats = b.record(floats)
    if path == "native":
        assert validated == [with_floats.value]  # the plain one was vouched for natively
    else:
        assert validated == [plain.value, with_floats.value]
    assert plain.envelope.req_hash == plain.req_hash
    # what the contract refuses is refused on both paths (a handler-set tenant too long, say)
    with pytest.raises(InvalidMessage, match="invalid_request"):
        b.record(raw(REQUEST, completion("x"))._replace(req_id="x" * 300))
