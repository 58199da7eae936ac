"""Realistic request envelopes of ~1 KB and ~8 KB (chat request + answer + tool I/O)."""

from __future__ import annotations

from typing import Any

from shadowlane.contracts.codec import encode
from shadowlane.contracts.envelope import RequestEnvelope
from tests.support.factories import envelope

_FILLER = (
    "The retrieved passage explains the refund policy for annual plans, the grace period, "
    "and the exceptions for enterprise tenants with custom contracts. "
)


def chat_body(i: int, size: str) -> dict[str, Any]:
    """A chat-completions request body; ``size`` is "1k" or "8k" (of the encoded envelope)."""
    repeat = 2 if size == "1k" else 48
    return {
        "model": "gpt-x",
        "messages": [
            {"role": "system", "content": "You are a support assistant. Cite the documents you use."},
            {
                "role": "user",
                "content": f"Question {i}: can I get a refund after 20 days? " + _FILLER * (repeat // 2),
            },
        ],
        "temperature": 0.2,
    }


def chat_response(i: int, size: str) -> dict[str, Any]:
    repeat = 1 if size == "1k" else 24
    return {
        "model": "gpt-x",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": f"Answer {i}: " + _FILLER * repeat}}
        ],
        "usage": {"prompt_tokens": 120, "completion_tokens": 80, "total_tokens": 200},
    }


def envelope_of_size(i: int, size: str) -> RequestEnvelope:
    """A valid envelope whose encoded size is about 1 KB or 8 KB."""
    env = envelope(i, tag=f"bench{size}")
    extra = _FILLER * (0 if size == "1k" else 47)
    prod = env.prod.model_copy(update={"answer": (env.prod.answer or "") + " " + extra})
    return env.model_copy(update={"prod": prod})


def encoded_size(size: str) -> int:
    return len(encode(envelope_of_size(0, size)))
