"""shadowlane/hook/bodies.py: captured bodies read as JSON objects, streamed ones reassembled."""

from __future__ import annotations

import orjson

from shadowlane.hook.bodies import as_object, from_sse, is_mapping


def _event(chunk: dict[str, object]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def test_mappings_json_and_nothing() -> None:
    body = {"a": 1}
    assert as_object(body) is body
    assert as_object(b'{"a": 1}') == body
    assert as_object(None) is None
    assert as_object(b"") is None
    assert as_object(b"not json, not events") is None
    assert is_mapping(body)
    assert not is_mapping([("a", 1)])


def test_a_stream_becomes_the_message_it_would_have_answered() -> None:
    stream = b"".join([
        _event({"model": "m", "choices": [{"delta": {"content": "I "}}]}),
        _event({"choices": [{"delta": {"content": "went.", "tool_calls": [
            {"index": 0, "id": "c1", "function": {"name": "look", "arguments": '{"w":'}}]}}]}),
        _event({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"x"}'}}]}}],
                "usage": {"prompt_tokens": 3}, "citations": ["d1"]}),
        b": a comment line\n", b"data: not json\n", b"data: [DONE]\n\n",
    ])  # fmt: skip
    assert as_object(stream) == from_sse(stream) == {
        "model": "m",
        "usage": {"prompt_tokens": 3},
        "citations": ["d1"],
        "choices": [{"message": {"role": "assistant", "content": "I went.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "look", "arguments": '{"w":"x"}'}}]}}],
    }  # fmt: skip
    assert from_sse(b"data: [DONE]\n\n") is None
