"""shadowlane/hook/capture.py: the decisions and counting every client-side capture shares."""

from __future__ import annotations

import subprocess
import sys
from types import MappingProxyType
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from shadowlane.hook.capture import (
    DEFAULT_HEADERS,
    HeaderNames,
    begin_client_call,
    header_value,
    is_replay,
    to_json,
)
from shadowlane.hook.context import (
    SHADOW_HEADER,
    RawToolCall,
    record_tool_call,
    recording,
    replaying,
    set_pins,
)
from shadowlane.settings import HookSettings
from tests.support.hook_capture import SpyPublisher

REQUEST = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


class Message(BaseModel):
    role: str
    content: str | None = None
    name: str | None = None


class Failure(Exception):
    def __init__(self, status_code: Any = None, response: Any = None) -> None:
        super().__init__("failed")
        self.status_code, self.response = status_code, response


class Response:
    content = b'{"error": {"message": "overloaded"}}'


class UnreadResponse:
    @property
    def content(self) -> bytes:
        raise RuntimeError("stream not read")


def begin(pub: SpyPublisher, *headers: dict[str, Any] | None, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"request": lambda: REQUEST, "endpoint": "/v1/chat/completions"}
    options |= {"tenant": "default", "names": DEFAULT_HEADERS, **kwargs}
    return begin_client_call(pub, headers, **options)


def test_headers_are_looked_up_in_any_case_across_sources() -> None:
    sources: list[Any] = [None, {"X-Request-ID": ""}, "not a mapping", {"x-request-id": "r-1"}]
    sources.append({"x-request-id": "r-2"})
    assert header_value(sources, "x-request-id") == "r-1"  # the first non-empty one
    assert header_value([{"X-Trace": 7}], "x-trace") == "7"
    assert header_value([], "x-request-id") is None


def test_a_replay_is_marked_by_its_header_or_by_the_context() -> None:
    assert not is_replay([{"x-request-id": "r"}])
    assert is_replay([None, {SHADOW_HEADER.upper(): "1"}])
    with replaying():
        assert is_replay([])
    assert not is_replay([])


def test_to_json_reads_sdk_models_mappings_and_sets() -> None:
    value = {
        "m": Message(role="user", content="hi"),
        "p": MappingProxyType({"a": 1}),
        "s": {"x"},
        "t": (1, 2),
    }
    assert orjson.loads(to_json(value)) == {
        "m": {"role": "user", "content": "hi"},
        "p": {"a": 1},
        "s": ["x"],
        "t": [1, 2],
    }
    with pytest.raises(TypeError):
        to_json({"o": object()})


def test_count_unmirrored_counts_seen_and_the_reason() -> None:
    pub = SpyPublisher()
    pub.count_unmirrored("dropped_incomplete")
    pub.count_unmirrored("dropped_too_large")
    assert (pub.stats.seen, pub.stats.dropped_incomplete, pub.stats.dropped_too_large) == (2, 1, 1)


def test_replays_and_unsampled_calls_are_counted_before_anything_is_copied() -> None:
    def never() -> Any:
        raise AssertionError("the request must not be built")

    pub = SpyPublisher()
    assert begin(pub, {SHADOW_HEADER: "1"}, request=never) is None
    with replaying():
        assert begin(pub, None, request=never) is None
    unsampled = SpyPublisher(HookSettings(sample_ratio=0.0))
    assert begin(unsampled, None, request=never) is None
    assert (pub.stats.seen, pub.stats.skipped_shadow) == (2, 2)
    assert (unsampled.stats.seen, unsampled.stats.sampled_out) == (1, 1)


def test_ids_come_from_the_headers_else_the_given_id_else_a_random_one() -> None:
    pub = SpyPublisher()
    names = HeaderNames(request_id="x-corr", tenant="x-org", trace="x-trace")
    call = begin(pub, {"X-Corr": "c-1", "x-org": "acme", "x-trace": "t-1"}, names=names, req_id="fallback")
    assert (call.req_id, call.tenant, call.trace_id) == ("c-1", "acme", "t-1")
    assert call.bucket == pub.should_sample("c-1")[1]
    assert orjson.loads(call.request) == REQUEST
    assert begin(pub, None, req_id="litellm-call-1").req_id == "litellm-call-1"
    other = begin(pub, None)
    assert len(other.req_id) == 36
    assert (other.tenant, other.trace_id) == ("default", None)


def test_a_request_that_cannot_be_copied_is_counted_and_not_raised() -> None:
    pub = SpyPublisher()
    assert begin(pub, None, request=lambda: {"o": object()}) is None
    assert (pub.stats.seen, pub.stats.dropped_invalid) == (1, 1)


async def test_a_call_is_handed_over_once_with_what_was_recorded_until_then() -> None:
    pub = SpyPublisher()
    await pub.start()
    try:
        with recording():
            set_pins({"prompt_ver": "p1"})
            record_tool_call("lookup", {"q": 1}, "one")
            call = begin(pub, None)
            call.publish(b'{"choices": []}', 200, latency_ms=12.5)
            record_tool_call("lookup", {"q": 2}, "two")  # later: not part of this call
            set_pins({"prompt_ver": "p2"})
            call.publish(b"{}")
            call.drop("dropped_incomplete")
    finally:
        await pub.stop(drain_timeout_s=1.0)
    [handed] = pub.calls
    assert handed["tool_calls"] == [RawToolCall("lookup", {"q": 1}, "one")]
    assert handed["pins"] == {"prompt_ver": "p1"}
    assert (handed["latency_ms"], handed["response"], handed["status"]) == (12.5, b'{"choices": []}', 200)
    assert (pub.stats.seen, pub.stats.dropped_incomplete) == (1, 0)


def test_outside_a_recording_a_call_carries_no_labels() -> None:
    pub = SpyPublisher()
    begin(pub, None).publish(b"{}")
    assert (pub.calls[0]["tool_calls"], pub.calls[0]["pins"], pub.calls[0]["labels"]) == ((), None, None)


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (Failure(503, Response()), (503, Response.content)),
        (Failure(429, UnreadResponse()), (429, None)),
        (Failure(500, None), (500, None)),
    ],
    ids=["with-body", "unread-body", "no-response"],
)
def test_an_error_answer_is_handed_over_with_its_status(failure: Failure, expected: tuple[int, Any]) -> None:
    pub = SpyPublisher()
    begin(pub, None).failed(failure)
    assert (pub.calls[0]["status"], pub.calls[0]["response"]) == expected


@pytest.mark.parametrize("failure", [ConnectionError("down"), Failure("503"), Failure(True), TimeoutError()])
def test_a_failure_without_an_answer_is_counted_incomplete(failure: BaseException) -> None:
    pub = SpyPublisher()
    begin(pub, None).failed(failure)
    assert pub.calls == []
    assert (pub.stats.seen, pub.stats.dropped_incomplete) == (1, 1)


def test_importing_the_hook_imports_no_sdk() -> None:
    modules = ["asgi", "publisher", "context", "capture", "envelope_builder", "openai_client"]
    code = "import sys\n" + "".join(f"import shadowlane.hook.{m}\n" for m in modules)
    code += "print(sorted(m for m in ('openai', 'litellm', 'httpx') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_importing_the_hook_package_defers_pydantic_kafka_and_prometheus_to_start() -> None:
    """``import shadowlane.hook`` stays cheap: the contracts, aiokafka and prometheus_client load
    in ``start()`` and ``collector()``, when the service asks for them."""
    heavy = ("pydantic", "pydantic_settings", "aiokafka", "prometheus_client", "openai", "litellm", "httpx")
    code = f"import sys, shadowlane.hook\nprint(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
