"""workers/shadow/tools.py and replay.py: the read-only tool sandbox and the replay loop."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from schemas.envelope import RecordedToolCall
from tests.unit.helpers_unit import make_envelope
from workers.settings import ShadowSettings
from workers.shadow.candidates import CallableCandidate, CandidateError
from workers.shadow.replay import Replayer, replay_body
from workers.shadow.tools import (
    BLOCKED_MESSAGE,
    NO_STUB_MESSAGE,
    UNKNOWN_MESSAGE,
    ReadOnlyToolbox,
    parse_arguments,
)

RECORDED = (
    RecordedToolCall(name="lookup", arguments={"verb": "be", "tense": "past"}, output='{"form":"was"}'),
    RecordedToolCall(name="save_progress", arguments={"student": "s1"}, output='{"saved":true}'),
)


def toolbox(offered: tuple[str, ...] = ("lookup", "save_progress", "weather")) -> ReadOnlyToolbox:
    return ReadOnlyToolbox(
        RECORDED,
        readonly=("lookup", "weather", "secret_readonly"),
        stubs={"weather": '{"sunny":true}'},
        offered=offered,
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
