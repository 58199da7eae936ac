"""shadowlane/shadow/tools.py and replay.py: the read-only tool sandbox and the replay loop."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from shadowlane.contracts.chat import FunctionSpec, ToolSpec
from shadowlane.contracts.envelope import RecordedToolCall
from shadowlane.settings import ShadowSettings
from shadowlane.shadow.candidates import CallableCandidate, CandidateError, citation_ids, parse_reply
from shadowlane.shadow.replay import Replayer, replay_body, result_pins
from shadowlane.shadow.tool_schema import MAX_ERROR_CHARS, NOT_AN_OBJECT, ValidatorCache
from shadowlane.shadow.tools import (
    BLOCKED_MESSAGE,
    NO_STUB_MESSAGE,
    UNKNOWN_MESSAGE,
    ReadOnlyToolbox,
    offered_schemas,
    parse_arguments,
)
from tests.support.factories import make_envelope

RECORDED = (
    RecordedToolCall(name="lookup", arguments={"verb": "be", "tense": "past"}, output='{"form":"was"}'),
    RecordedToolCall(name="save_progress", arguments={"student": "s1"}, output='{"saved":true}'),
)


LOOKUP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"verb": {"type": "string"}, "tense": {"enum": ["past", "present"]}},
    "required": ["verb", "tense"],
}
WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string", "minLength": 1}},
    "required": ["city"],
    "additionalProperties": False,
}
SCHEMAS: dict[str, dict[str, Any]] = {
    "lookup": LOOKUP_SCHEMA,
    "save_progress": {"type": "object", "properties": {"student": {"type": "string"}}},
    "weather": WEATHER_SCHEMA,
}


def toolbox(
    offered: tuple[str, ...] = ("lookup", "save_progress", "weather"),
    validators: ValidatorCache | None = None,
) -> ReadOnlyToolbox:
    return ReadOnlyToolbox(
        RECORDED,
        readonly=("lookup", "weather", "secret_readonly"),
        stubs={"weather": '{"sunny":true}'},
        offered={name: SCHEMAS[name] for name in offered},
        validators=validators,
    )


# --------------------------------------------------------------------------- toolbox


def test_write_tool_is_blocked_even_when_a_recording_exists() -> None:
    call = toolbox().resolve("save_progress", '{"student": "s1"}')
    assert call.disposition == "blocked"
    assert call.output == BLOCKED_MESSAGE
    assert call.arguments == {"student": "s1"}


def test_readonly_tool_not_offered_in_the_request_is_unknown() -> None:
    call = toolbox().resolve("secret_readonly", "{}")
    assert call.disposition == "unknown_tool"
    assert call.output == UNKNOWN_MESSAGE


def test_recorded_output_answers_equal_arguments_in_any_key_order() -> None:
    box = toolbox()
    as_string = box.resolve("lookup", '{"tense": "past", "verb": "be"}')
    as_dict = box.resolve("lookup", {"tense": "past", "verb": "be"})
    for call in (as_string, as_dict):
        assert call.disposition == "stubbed_recorded"
        assert call.output == '{"form":"was"}'
        assert call.arguments == {"verb": "be", "tense": "past"}


def test_readonly_tool_with_other_arguments_falls_back_to_configured_stub_or_no_stub() -> None:
    box = toolbox()
    stubbed = box.resolve("weather", '{"city": "Paris"}')
    assert stubbed.disposition == "stubbed_config"
    assert stubbed.output == '{"sunny":true}'

    missing = box.resolve("lookup", '{"verb": "go", "tense": "past"}')
    assert missing.disposition == "no_stub"
    assert missing.output == NO_STUB_MESSAGE


def test_empty_offered_list_does_not_mark_tools_unknown() -> None:
    call = toolbox(offered=()).resolve("secret_readonly", "{}")
    assert call.disposition == "no_stub"


def test_unparseable_arguments_are_kept_as_the_raw_string() -> None:
    call = toolbox().resolve("lookup", "not json")
    assert call.arguments == "not json"
    assert call.disposition == "no_stub"
    assert parse_arguments("[1, 2]") == "[1, 2]"
    assert parse_arguments("") == {}
    assert parse_arguments(None) == "None"


# --------------------------------------------------------------------------- replayer

TOOL_CALL_LOOKUP = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "lookup", "arguments": '{"tense":"past","verb":"be"}'},
}
TOOL_CALL_SAVE = {
    "id": "call_2",
    "type": "function",
    "function": {"name": "save_progress", "arguments": '{"student":"s1"}'},
}
USAGE = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}


def reply(content: str | None, *calls: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = list(calls)
    return {"choices": [{"message": message}], "usage": USAGE, "model": "cand-model"}


def settings(**overrides: Any) -> ShadowSettings:
    base: dict[str, Any] = {
        "candidate": "cand",
        "readonly_tools": ("lookup",),
        "max_attempts": 3,
        "backoff_base_s": 0.2,
        "backoff_max_s": 5.0,
        "timeout_s": 5.0,
        "pins": {"model_rev": "b"},
    }
    base.update(overrides)
    return ShadowSettings(**base)


class FakeSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


ENV = make_envelope("replay-1", tool_io=RECORDED)


async def test_tool_loop_answers_from_the_recording_and_finishes() -> None:
    seen: list[list[dict[str, Any]]] = []

    def fn(body: dict[str, Any]) -> dict[str, Any]:
        seen.append([dict(m) for m in body["messages"]])
        assert body["stream"] is False
        assert body["model"] == "prod-model"
        assert [t["function"]["name"] for t in body["tools"]] == ["lookup", "save_progress"]
        if len(seen) == 1:
            return reply(None, TOOL_CALL_LOOKUP, TOOL_CALL_SAVE)
        return reply("It was.")

    result = await Replayer(CallableCandidate("cand", fn), settings(), sleep=FakeSleep()).replay(ENV)

    assert result.status == "ok"
    assert result.answer == "It was."
    assert result.error_class is None
    assert result.attempts == 2  # one successful call per round
    assert result.candidate == "cand"
    assert result.req_hash == ENV.req_hash
    assert result.req_id == ENV.req_id
    assert result.pins == {"model_rev": "b"}
    assert [(c.name, c.disposition) for c in result.tool_calls] == [
        ("lookup", "stubbed_recorded"),
        ("save_progress", "blocked"),
    ]
    assert result.tool_calls[0].output == '{"form":"was"}'
    # the second round saw the assistant turn and both tool answers
    second = seen[1]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "tool", "tool"]
    assert second[3] == {"role": "tool", "tool_call_id": "call_1", "content": '{"form":"was"}'}
    assert second[4] == {"role": "tool", "tool_call_id": "call_2", "content": BLOCKED_MESSAGE}
    # the envelope itself is untouched
    assert len(ENV.request.messages) == 2


async def test_usage_is_summed_over_rounds() -> None:
    calls = 0

    def fn(body: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return reply("done") if calls == 3 else reply(None, TOOL_CALL_LOOKUP)

    result = await Replayer(CallableCandidate("cand", fn), settings(), sleep=FakeSleep()).replay(ENV)
    assert result.status == "ok"
    assert calls == 3
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens) == (
        30,
        6,
        36,
    )


async def test_max_tool_rounds_is_respected() -> None:
    calls = 0

    def fn(body: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return reply(f"still calling {calls}", TOOL_CALL_LOOKUP)

    result = await Replayer(
        CallableCandidate("cand", fn), settings(max_tool_rounds=2), sleep=FakeSleep()
    ).replay(ENV)
    assert calls == 3  # the first turn plus two tool rounds
    assert len(result.tool_calls) == 2
    assert result.status == "ok"
    assert result.answer == "still calling 3"


async def test_zero_tool_rounds_makes_a_single_call() -> None:
    calls = 0

    def fn(body: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return reply("x", TOOL_CALL_LOOKUP)

    result = await Replayer(
        CallableCandidate("cand", fn), settings(max_tool_rounds=0), sleep=FakeSleep()
    ).replay(ENV)
    assert calls == 1
    assert result.tool_calls == ()


async def test_always_raising_candidate_gives_an_error_result() -> None:
    def boom(body: dict[str, Any]) -> str:
        raise RuntimeError("candidate exploded")

    sleep = FakeSleep()
    result = await Replayer(CallableCandidate("cand", boom), settings(), sleep=sleep).replay(ENV)
    assert result.status == "error"
    assert result.error_class == "exception"
    assert result.error is not None
    assert "candidate exploded" in result.error
    assert result.answer is None
    assert result.attempts == 1  # "exception" is not retriable
    assert sleep.delays == []


async def test_rate_limited_twice_then_ok_is_retried_with_backoff() -> None:
    calls = 0

    async def flaky(body: dict[str, Any]) -> str:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise CandidateError("rate_limited", "HTTP 429", retry_after_s=1.5)
        return "finally"

    sleep = FakeSleep()
    started = time.perf_counter()
    result = await Replayer(CallableCandidate("cand", flaky), settings(), sleep=sleep).replay(ENV)
    assert time.perf_counter() - started < 0.5  # no real waiting
    assert result.status == "ok"
    assert result.answer == "finally"
    assert result.attempts == 3
    assert len(sleep.delays) == 2
    assert all(d >= 1.5 for d in sleep.delays)  # Retry-After honoured
    assert all(d <= 5.0 for d in sleep.delays)  # capped by backoff_max_s


async def test_retriable_errors_give_up_after_max_attempts() -> None:
    def down(body: dict[str, Any]) -> str:
        raise CandidateError("server_error", "HTTP 503")

    sleep = FakeSleep()
    result = await Replayer(CallableCandidate("cand", down), settings(max_attempts=4), sleep=sleep).replay(
        ENV
    )
    assert result.status == "error"
    assert result.error_class == "server_error"
    assert result.attempts == 4
    assert len(sleep.delays) == 3
    # exponential back-off with ±50 % jitter: attempt k waits base * 2**(k-1) * [0.5, 1.5)
    for k, delay in enumerate(sleep.delays, start=1):
        assert 0.2 * 2 ** (k - 1) * 0.5 <= delay < 0.2 * 2 ** (k - 1) * 1.5


async def test_client_error_is_not_retried() -> None:
    def bad(body: dict[str, Any]) -> str:
        raise CandidateError("client_error", "HTTP 400")

    sleep = FakeSleep()
    result = await Replayer(CallableCandidate("cand", bad), settings(), sleep=sleep).replay(ENV)
    assert (result.status, result.error_class, result.attempts) == ("error", "client_error", 1)
    assert sleep.delays == []


async def test_slow_candidate_times_out() -> None:
    async def slow(body: dict[str, Any]) -> str:
        await asyncio.sleep(5)
        return "never"

    sleep = FakeSleep()
    started = time.perf_counter()
    result = await Replayer(
        CallableCandidate("cand", slow), settings(timeout_s=0.05, max_attempts=2), sleep=sleep
    ).replay(ENV)
    elapsed = time.perf_counter() - started
    assert result.status == "error"
    assert result.error_class == "timeout"
    assert result.attempts == 2
    assert len(sleep.delays) == 1
    assert elapsed < 1.0
    assert result.latency_ms >= 100.0  # two 50 ms attempts


async def test_invalid_reply_is_an_invalid_response_error() -> None:
    def weird(body: dict[str, Any]) -> dict[str, Any]:
        return {"nope": True}

    result = await Replayer(CallableCandidate("cand", weird), settings(), sleep=FakeSleep()).replay(ENV)
    assert (result.status, result.error_class) == ("error", "invalid_response")


def test_replay_body_forces_stream_off_and_keeps_params() -> None:
    env = make_envelope("b1")
    env = env.model_copy(
        update={
            "request": env.request.model_copy(
                update={"params": {"temperature": 0.3, "stream": True, "stream_options": {"x": 1}}}
            )
        }
    )
    body = replay_body(env)
    assert body["stream"] is False
    assert "stream_options" not in body
    assert body["temperature"] == 0.3
    assert body["model"] == "prod-model"
    assert orjson.loads(orjson.dumps(body["messages"]))[1] == {"role": "user", "content": "hello"}


@pytest.mark.parametrize(
    ("returned", "content"),
    [("plain text", "plain text"), ({"choices": [{"message": {"content": "dict"}}]}, "dict")],
)
async def test_callable_candidate_accepts_strings_and_dicts(returned: Any, content: str) -> None:
    cand = CallableCandidate("c", lambda body: returned)
    got = await cand.chat({"messages": []})
    assert got.content == content
    assert got.tool_calls == ()


async def test_malformed_tool_calls_in_a_reply_become_an_invalid_response_error() -> None:
    replayer = Replayer(
        CallableCandidate("cand", lambda body: {"choices": [{"message": {"tool_calls": ["x"]}}]}),
        settings(max_attempts=1),
    )
    result = await replayer.replay(ENV)
    assert result.status == "error"
    assert result.error_class == "invalid_response"


# --------------------------------------------------------------------------- tool success (schemas)


def test_valid_arguments_are_schema_valid_whatever_the_disposition() -> None:
    box = toolbox()
    recorded = box.resolve("lookup", '{"tense": "past", "verb": "be"}')
    blocked = box.resolve("save_progress", '{"student": "s1"}')
    stubbed = box.resolve("weather", '{"city": "Paris"}')
    assert [c.disposition for c in (recorded, blocked, stubbed)] == [
        "stubbed_recorded",
        "blocked",
        "stubbed_config",
    ]
    for call in (recorded, blocked, stubbed):
        assert call.schema_valid is True
        assert call.schema_error is None


def test_arguments_failing_the_schema_are_invalid_with_a_short_reason() -> None:
    box = toolbox()
    wrong_type = box.resolve("weather", '{"city": 7}')
    assert wrong_type.disposition == "stubbed_config"  # the sandbox still answers it
    assert wrong_type.schema_valid is False
    assert wrong_type.schema_error is not None
    assert "$.city" in wrong_type.schema_error
    assert "string" in wrong_type.schema_error

    missing = box.resolve("lookup", '{"verb": "be"}')
    assert missing.schema_valid is False
    assert missing.schema_error is not None
    assert "tense" in missing.schema_error

    extra = box.resolve("weather", '{"city": "Oslo", "units": "metric"}')
    assert extra.schema_valid is False
    assert extra.schema_error is not None
    assert "units" in extra.schema_error


def test_blocked_call_with_invalid_arguments_is_still_blocked_and_invalid() -> None:
    call = toolbox().resolve("save_progress", '{"student": 12}')
    assert call.disposition == "blocked"
    assert call.output == BLOCKED_MESSAGE
    assert call.schema_valid is False


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", '"a string"', 42])
def test_arguments_that_are_not_a_json_object_are_invalid(raw: Any) -> None:
    call = toolbox().resolve("lookup", raw)
    assert call.schema_valid is False
    assert call.schema_error == NOT_AN_OBJECT


def test_a_tool_the_request_did_not_offer_is_not_judged() -> None:
    box = toolbox()
    unknown = box.resolve("secret_readonly", '{"x": 1}')
    assert unknown.disposition == "unknown_tool"
    assert (unknown.schema_valid, unknown.schema_error) == (None, None)
    blocked = box.resolve("delete_everything", "not even json")
    assert blocked.disposition == "blocked"
    assert (blocked.schema_valid, blocked.schema_error) == (None, None)
    # no offered tools at all: nothing to judge against either
    assert toolbox(offered=()).resolve("lookup", '{"verb": 1}').schema_valid is None


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "nope"},
        {"type": "object", "required": "city"},
        {"properties": {"x": {"$ref": "#/$defs/missing"}}},
        {"$ref": "http://127.0.0.1:9/remote.json"},  # never fetched
    ],
    ids=["bad-type", "bad-required", "dangling-ref", "remote-ref"],
)
def test_an_invalid_schema_gives_none_with_a_reason_never_a_crash(schema: dict[str, Any]) -> None:
    box = ReadOnlyToolbox((), readonly=("t",), stubs={}, offered={"t": schema})
    call = box.resolve("t", '{"x": 1}')
    assert call.disposition == "no_stub"
    assert call.schema_valid is None
    assert call.schema_error is not None
    assert call.schema_error.startswith("invalid schema")
    assert len(call.schema_error) <= MAX_ERROR_CHARS


def test_empty_schema_accepts_any_object() -> None:
    box = ReadOnlyToolbox((), readonly=("t",), stubs={}, offered={"t": {}})
    assert box.resolve("t", '{"anything": [1, 2]}').schema_valid is True
    assert box.resolve("t", "[]").schema_valid is False


def test_schema_error_is_cut_to_200_characters() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "integer"}}}
    box = ReadOnlyToolbox((), readonly=("t",), stubs={}, offered={"t": schema})
    call = box.resolve("t", {"q": "x" * 1000})
    assert call.schema_valid is False
    assert call.schema_error is not None
    assert len(call.schema_error) == MAX_ERROR_CHARS
    assert call.schema_error.endswith("…")


def test_validators_are_cached_by_canonical_schema_and_bounded() -> None:
    cache = ValidatorCache(max_size=2)
    reordered = dict(reversed(list(LOOKUP_SCHEMA.items())))
    for offered_schema in (LOOKUP_SCHEMA, reordered, LOOKUP_SCHEMA):
        box = ReadOnlyToolbox((), readonly=("lookup",), stubs={}, offered={"lookup": offered_schema})
        assert box.resolve("lookup", '{"verb": "go", "tense": "past"}').schema_valid is True
    assert cache.compiled == 0  # those toolboxes had private caches
    for _ in range(3):
        toolbox(validators=cache).resolve("lookup", "{}")
    assert cache.compiled == 1
    assert len(cache) == 1
    for name in ("weather", "save_progress", "lookup"):
        toolbox(validators=cache).resolve(name, "{}")
    assert len(cache) == 2  # bounded: the least recently used schema was evicted
    assert cache.compiled == 4  # lookup was evicted by the other two, then compiled again
    with pytest.raises(ValueError, match="max_size"):
        ValidatorCache(max_size=0)


def test_offered_schemas_maps_names_to_parameters_first_wins() -> None:
    tools = (
        ToolSpec(function=FunctionSpec(name="a", parameters={"type": "object"})),
        ToolSpec(function=FunctionSpec(name="b")),
        ToolSpec(function=FunctionSpec(name="a", parameters={"type": "string"})),
    )
    assert offered_schemas(tools) == {"a": {"type": "object"}, "b": {}}


async def test_replayed_tool_calls_carry_their_schema_verdict() -> None:
    schema_env = make_envelope("schema-1", tool_io=RECORDED)
    tools = tuple(
        ToolSpec(function=FunctionSpec(name=name, parameters=SCHEMAS[name]))
        for name in ("lookup", "save_progress")
    )
    schema_env = schema_env.model_copy(
        update={"request": schema_env.request.model_copy(update={"tools": tools})}
    )
    bad_lookup = {"id": "c3", "type": "function", "function": {"name": "lookup", "arguments": '{"verb":1}'}}
    calls = 0

    def fn(body: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return reply(None, TOOL_CALL_LOOKUP, bad_lookup, TOOL_CALL_SAVE) if calls == 1 else reply("ok")

    replayer = Replayer(CallableCandidate("cand", fn), settings(), sleep=FakeSleep())
    result = await replayer.replay(schema_env)
    assert [(c.name, c.disposition, c.schema_valid) for c in result.tool_calls] == [
        ("lookup", "stubbed_recorded", True),
        ("lookup", "no_stub", False),
        ("save_progress", "blocked", True),
    ]
    await replayer.replay(schema_env)
    assert replayer.validators.compiled == 2  # shared across replays: one per distinct schema


# --------------------------------------------------------------------------- model, citations, pins


async def test_result_model_is_the_last_replies_model_else_the_requests() -> None:
    calls = 0

    def fn(body: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        first = reply(None, TOOL_CALL_LOOKUP)
        first["model"] = "first-model"
        return first if calls == 1 else reply("done")  # reply() says "cand-model"

    result = await Replayer(CallableCandidate("cand", fn), settings(), sleep=FakeSleep()).replay(ENV)
    assert result.model == "cand-model"
    plain = await Replayer(CallableCandidate("cand", lambda body: "text"), settings()).replay(ENV)
    assert plain.model == "prod-model"  # the request body's model
    failed = await Replayer(
        CallableCandidate("cand", lambda body: {"nope": 1}), settings(max_attempts=1)
    ).replay(ENV)
    assert (failed.status, failed.model) == ("error", "prod-model")


async def test_cited_ids_come_from_the_final_responses_citations() -> None:
    def fn(body: dict[str, Any]) -> dict[str, Any]:
        data = reply("see [doc:zzz]")
        data["citations"] = ["d1", {"id": "d2", "title": "x"}, {"url": "no id"}, 7, "d1", None]
        return data

    result = await Replayer(CallableCandidate("cand", fn), settings()).replay(ENV)
    assert result.cited_ids == ("d1", "d2", "7")  # the answer text is the comparator's business
    assert (await Replayer(CallableCandidate("c", lambda b: "x"), settings()).replay(ENV)).cited_ids == ()


def test_citation_ids_ignores_what_is_not_a_list_of_ids() -> None:
    assert citation_ids(None) == ()
    assert citation_ids("d1") == ()
    assert citation_ids({"id": "d1"}) == ()
    assert citation_ids([True, "", {"id": ""}, {"id": ["x"]}, "ok"]) == ("ok",)
    parsed = parse_reply({"choices": [{"message": {"content": "a"}}], "citations": [{"id": "p9"}]})
    assert parsed.cited_ids == ("p9",)
    assert parse_reply({"choices": [{"message": {"content": "a"}}]}).cited_ids == ()


async def test_baseline_results_carry_prod_pins_under_configured_ones() -> None:
    env = ENV.model_copy(update={"pins": {"model_rev": "prod-a", "prompt_ver": "p7"}})
    cand = CallableCandidate("baseline", lambda body: "x")
    baseline = await Replayer(cand, settings(pins={"model_rev": "b"}), baseline=True).replay(env)
    assert baseline.pins == {"model_rev": "b", "prompt_ver": "p7"}
    unpinned = await Replayer(cand, settings(pins={}), baseline=True).replay(env)
    assert unpinned.pins == {"model_rev": "prod-a", "prompt_ver": "p7"}
    other = await Replayer(cand, settings(pins={}), baseline=False).replay(env)
    assert other.pins == {}
    assert result_pins(env, {"x": "1"}, baseline=False) == {"x": "1"}


async def test_every_candidate_call_is_admitted_first_retries_and_tool_rounds_too() -> None:
    """The rate cap counts calls: a replay of 2 tool rounds whose first call is retried twice
    takes 4 tokens, each right before its call."""
    log: list[str] = []

    async def admit() -> None:
        log.append("token")

    calls = 0

    def fn(body: dict[str, Any]) -> dict[str, Any] | str:
        nonlocal calls
        calls += 1
        log.append("call")
        if calls <= 2:
            raise CandidateError("server_error", "HTTP 503")
        if calls == 3:
            call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
            return {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [call]}}]}
        return "done"

    replayer = Replayer(CallableCandidate("cand", fn), settings(), sleep=FakeSleep(), admit=admit)
    result = await replayer.replay(ENV)
    assert result.status == "ok"
    assert result.answer == "done"
    assert result.attempts == 4
    assert log == ["token", "call"] * 4
