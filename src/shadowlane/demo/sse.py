"""Streams a finished chat completion the way OpenAI does for ``stream: true`` (the demo models).

:func:`completion_chunks` cuts a ``chat.completion`` into ``chat.completion.chunk`` objects: the
role, the content a few words at a time, each tool call as deltas (id and name first, then its
arguments in two pieces), the finish reason with the response's ``citations``, and the usage in a
last chunk when the request asked for it (``stream_options.include_usage``).
:func:`send_sse` writes them as server-sent events ending with ``data: [DONE]``.
"""

from __future__ import annotations

from typing import Any

import orjson

from shadowlane.demo.asgi_util import Send

WORDS_PER_CHUNK = 3


def _chunk(payload: dict[str, Any], delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": payload["id"],
        "object": "chat.completion.chunk",
        "created": payload.get("created", 0),
        "model": payload["model"],
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [
        " ".join(words[i : i + WORDS_PER_CHUNK]) + (" " if i + WORDS_PER_CHUNK < len(words) else "")
        for i in range(0, len(words), WORDS_PER_CHUNK)
    ]


def completion_chunks(payload: dict[str, Any], *, include_usage: bool = False) -> list[dict[str, Any]]:
    """The chunks that stream ``payload`` (a one-choice chat completion)."""
    choice = payload["choices"][0]
    message = choice["message"]
    chunks = [_chunk(payload, {"role": "assistant", "content": ""})]
    if message.get("content"):
        chunks += [_chunk(payload, {"content": piece}) for piece in _pieces(message["content"])]
    for index, call in enumerate(message.get("tool_calls") or ()):
        fn = call["function"]
        head = {"index": index, "id": call["id"], "type": "function", "function": {"name": fn["name"]}}
        chunks.append(_chunk(payload, {"tool_calls": [head]}))
        half = len(fn["arguments"]) // 2
        for part in (fn["arguments"][:half], fn["arguments"][half:]):
            chunks.append(
                _chunk(payload, {"tool_calls": [{"index": index, "function": {"arguments": part}}]})
            )
    last = _chunk(payload, {}, choice["finish_reason"])
    if "citations" in payload:
        last["citations"] = payload["citations"]
    chunks.append(last)
    if include_usage:
        chunks.append({**_chunk(payload, {}), "choices": [], "usage": payload["usage"]})
    return chunks


async def send_sse(send: Send, chunks: list[dict[str, Any]]) -> None:
    """Send ``chunks`` as a ``text/event-stream`` response, one ``http.response.body`` per event."""
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for chunk in chunks:
        await send(
            {
                "type": "http.response.body",
                "body": b"data: " + orjson.dumps(chunk) + b"\n\n",
                "more_body": True,
            }
        )
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
