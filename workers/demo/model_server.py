"""A deterministic OpenAI-compatible chat model for the grammar tutor (stands in for A and B).

First turn: the model asks for two tools, ``lookup_conjugation`` (read-only) and
``save_progress`` (a write, which the shadow sandbox must block). Second turn: it answers with the
corrected sentence. ``skill`` is the share of irregular past-tense errors it catches (model A
over-regularises, model B knows the table). Latency and error rate are configurable; errors are
drawn from a seeded generator so a run is reproducible.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

import orjson

from workers.demo.asgi_util import Receive, Scope, Send, lifespan, read_body, send_json
from workers.demo.grammar import VERBS, conjugate, parse_sentence

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "lookup_conjugation",
            "description": "Look up the canonical form of a verb",
            "parameters": {
                "type": "object",
                "properties": {
                    "verb": {"type": "string"},
                    "tense": {"type": "string"},
                    "person": {"type": "string"},
                },
                "required": ["verb", "tense", "person"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "save_progress",
            "description": "Store the student's result (writes to the gradebook)",
            "parameters": {
                "type": "object",
                "properties": {"student_id": {"type": "string"}, "verb": {"type": "string"}},
                "required": ["student_id", "verb"],
            },
        },
    },
]
PREFIX = "Correct this sentence: "


@dataclass
class ModelBehaviour:
    name: str
    skill: float = 1.0
    latency_ms: float = 5.0
    error_rate: float = 0.0
    seed: int = 0
    calls: int = 0
    shadow_calls: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


def _sentence(messages: list[dict[str, Any]]) -> str:
    for msg in reversed(messages):
        content = msg.get("content")
        if msg.get("role") == "user" and isinstance(content, str) and content.startswith(PREFIX):
            return content[len(PREFIX) :]
    return ""


def _student(messages: list[dict[str, Any]]) -> str:
    for msg in messages:
        if (
            msg.get("role") == "system"
            and isinstance(msg.get("content"), str)
            and "student " in msg["content"]
        ):
            return str(msg["content"]).split("student ", 1)[1].split()[0].strip(".")
    return "anonymous"


def answer(behaviour: ModelBehaviour, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The assistant message for this conversation state."""
    sentence = _sentence(messages)
    parsed = parse_sentence(sentence)
    if parsed is None:
        return {"role": "assistant", "content": "Please send one sentence to correct."}
    verb, tense, person = parsed
    if messages[-1].get("role") != "tool":
        call_id = hashlib.blake2b(sentence.encode(), digest_size=4).hexdigest()
        args = {"verb": verb, "tense": tense, "person": person}
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{call_id}_1",
                    "type": "function",
                    "function": {"name": "lookup_conjugation", "arguments": orjson.dumps(args).decode()},
                },
                {
                    "id": f"call_{call_id}_2",
                    "type": "function",
                    "function": {
                        "name": "save_progress",
                        "arguments": orjson.dumps({"student_id": _student(messages), "verb": verb}).decode(),
                    },
                },
            ],
        }
    words = sentence.rstrip(".").split()
    form = conjugate(verb, tense, person)
    regularised = VERBS[verb][3]
    knows = (
        int(hashlib.blake2b(f"{behaviour.name}:{sentence}".encode(), digest_size=2).hexdigest(), 16) / 65535
    )
    if words[1] == regularised and tense == "past" and knows >= behaviour.skill:
        form = regularised  # the weak model accepts the over-regularised form
    fixed = " ".join([words[0], form, *words[2:]]) + "."
    if fixed == sentence:
        return {"role": "assistant", "content": f"Correct as written: {fixed}"}
    return {"role": "assistant", "content": f"Corrected: {fixed}"}


def model_app(behaviour: ModelBehaviour) -> Any:
    """An ASGI app serving ``POST /v1/chat/completions``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["path"] != "/v1/chat/completions" or scope["method"] != "POST":
            await send_json(send, 404, {"error": {"message": "not found"}})
            return
        body = orjson.loads(await read_body(receive))
        behaviour.calls += 1
        if any(k == b"x-shadowlane-shadow" for k, _ in scope.get("headers") or ()):
            behaviour.shadow_calls += 1
        if behaviour.latency_ms:
            await asyncio.sleep(behaviour.latency_ms / 1000 * (0.5 + behaviour.rng.random()))
        if behaviour.error_rate and behaviour.rng.random() < behaviour.error_rate:
            await send_json(send, 503, {"error": {"message": "model overloaded"}})
            return
        message = answer(behaviour, body.get("messages") or [])
        words = sum(len(str(m.get("content") or "").split()) for m in body.get("messages") or [])
        out_words = len(str(message.get("content") or "").split()) + 8 * len(message.get("tool_calls") or [])
        await send_json(
            send,
            200,
            {
                "id": f"chatcmpl-{behaviour.calls}",
                "object": "chat.completion",
                "model": behaviour.name,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": words,
                    "completion_tokens": out_words,
                    "total_tokens": words + out_words,
                },
            },
        )

    return app
