"""A deterministic OpenAI-compatible chat model for the grammar tutor (stands in for A and B).

First turn: the model asks for two tools, ``lookup_conjugation`` (read-only) and
``save_progress`` (a write, which the shadow sandbox must block). Second turn: it answers with the
corrected sentence and cites the conjugation-table entry it used (top-level ``citations``).
``skill`` is the share of irregular past-tense errors it catches (model A over-regularises,
model B knows the table). Latency and error rate are configurable; errors are drawn from a
seeded generator so a run is reproducible.

The agent scenario (a user message starting with :data:`AGENT_PREFIX`) takes three tool steps,
one call per turn: ``lookup_conjugation``, ``find_examples`` and ``save_progress``, then answers
as above. ``agent_slip`` is the share of sentences on which a model asks ``find_examples`` for the
other tense at step 2 (a fixed draw per model and sentence, :func:`slips`).

The RAG scenario (a user message worded with one of :data:`~shadowlane.demo.rag.RAG_PREFIXES`)
is answered the same way, and the answer also carries what the model's retriever returned (a
top-level ``retrieved`` list, :func:`shadowlane.demo.rag.retrieve`); ``retrieval_slip`` is the
share of question wordings it retrieves off-topic passages for.

``variability`` is the chance the final answer is worded differently (the corrected sentence
never changes) and ``unstable`` the chance it says something else entirely. Both are drawn from
``Random(f"{name}:{seed}:{sentence}")`` when the request carries an integer ``seed``, so the same
seed gives the same answer. The user may ask with :data:`PREFIX` or any of
:data:`PARAPHRASE_PREFIXES`. With ``stream: true`` the same answer is streamed as server-sent
events (:mod:`shadowlane.demo.sse`).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

import orjson

from shadowlane.demo.asgi_util import Receive, Scope, Send, lifespan, read_body, send_json
from shadowlane.demo.grammar import VERBS, citation_id, conjugate, parse_sentence
from shadowlane.demo.rag import RAG_PREFIXES, is_rag, retrieve
from shadowlane.demo.sse import completion_chunks, send_sse
from shadowlane.hook.context import SHADOW_HEADER

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
FIND_EXAMPLES: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "find_examples",
        "description": "Example sentences using a verb in a tense (read-only)",
        "parameters": {
            "type": "object",
            "properties": {"verb": {"type": "string"}, "tense": {"type": "string"}},
            "required": ["verb", "tense"],
        },
    },
}
AGENT_TOOLS: list[dict[str, Any]] = [*TOOLS, FIND_EXAMPLES]
"""The agent scenario's tools: the tutor's and ``find_examples``."""
AGENT_PREFIX = "Check my homework step by step: "
"""A user message with this prefix runs the agent scenario (:func:`agent_step`)."""
_SHADOW = SHADOW_HEADER.encode()
PREFIX = "Correct this sentence: "
PARAPHRASE_PREFIXES = ("Fix the grammar: ", "Please correct: ", "Make this sentence grammatical: ")
_PREFIXES = (PREFIX, *PARAPHRASE_PREFIXES)
CORRECTED = "Corrected: {}"
CORRECTED_VARIANTS = ("Here is the corrected sentence: {}", "Fixed: {}", "The correct sentence is: {}")
AS_WRITTEN = "Correct as written: {}"
AS_WRITTEN_VARIANTS = ("No changes needed: {}", "This sentence is already correct: {}", "Looks right: {}")
NO_SENTENCE = "Please send one sentence to correct."


@dataclass
class ModelBehaviour:
    name: str
    skill: float = 1.0
    latency_ms: float = 5.0
    error_rate: float = 0.0
    variability: float = 0.0
    unstable: float = 0.0
    agent_slip: float = 0.0  # agent runs whose step 2 asks for examples in the other tense
    retrieval_slip: float = 0.0  # RAG question wordings its retriever answers off topic (demo.rag)
    seed: int = 0
    calls: int = 0
    shadow_calls: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


def paraphrases(sentence: str, *, asked: str | None = None) -> list[str]:
    """Three other user messages asking to correct ``sentence`` (other than ``asked``, which
    defaults to the :data:`PREFIX` wording)."""
    asked = PREFIX + sentence if asked is None else asked
    family = RAG_PREFIXES if is_rag(asked) else _PREFIXES  # a RAG question is reworded as one
    return [m for m in (p + sentence for p in family) if m != asked][:3]


def split_prefix(text: str) -> str | None:
    """The sentence of a user message worded with any known prefix, else None."""
    for prefix in (*_PREFIXES, AGENT_PREFIX, *RAG_PREFIXES):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return None


def sentence_of(messages: list[dict[str, Any]]) -> str:
    """The sentence the latest user message asks to correct ("" when there is none)."""
    for msg in reversed(messages):
        content = msg.get("content")
        if msg.get("role") == "user" and isinstance(content, str):
            sentence = split_prefix(content)
            if sentence is not None:
                return sentence
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


def _tool_turn(sentence: str, verb: str, tense: str, person: str, student: str) -> dict[str, Any]:
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
                    "arguments": orjson.dumps({"student_id": student, "verb": verb}).decode(),
                },
            },
        ],
    }


def _other(tense: str) -> str:
    return "present" if tense == "past" else "past"


def _last_user(messages: list[dict[str, Any]]) -> str:
    content = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), None)
    return content if isinstance(content, str) else ""


def _is_agent(messages: list[dict[str, Any]]) -> bool:
    content = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), None)
    return isinstance(content, str) and content.startswith(AGENT_PREFIX)


def slips(behaviour: ModelBehaviour, sentence: str) -> bool:
    """Whether ``behaviour`` asks for examples in the other tense at step 2 of this sentence's agent
    run (a fixed draw per model and sentence: ``agent_slip`` of the sentences)."""
    draw = int(hashlib.blake2b(f"{behaviour.name}:agent:{sentence}".encode(), digest_size=2).hexdigest(), 16)
    return draw / 65535 < behaviour.agent_slip


def agent_step(
    behaviour: ModelBehaviour, messages: list[dict[str, Any]], sentence: str, parsed: tuple[str, str, str]
) -> dict[str, Any] | None:
    """The agent scenario: one tool call per turn (1 ``lookup_conjugation``, 2 ``find_examples``,
    3 ``save_progress``), then None (the caller answers). At step 2 a model that :func:`slips`
    asks for the other tense than the sentence's."""
    turn = 0
    for msg in reversed(messages):
        if msg.get("role") == "user":
            break
        turn += msg.get("role") == "assistant" and bool(msg.get("tool_calls"))
    verb, tense, person = parsed
    calls: list[tuple[str, dict[str, Any]]] = [
        ("lookup_conjugation", {"verb": verb, "tense": tense, "person": person}),
        ("find_examples", {"verb": verb, "tense": _other(tense) if slips(behaviour, sentence) else tense}),
        ("save_progress", {"student_id": _student(messages), "verb": verb}),
    ]
    if turn >= len(calls):
        return None
    name, args = calls[turn]
    call_id = hashlib.blake2b(sentence.encode(), digest_size=4).hexdigest()
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": f"call_{call_id}_a{turn + 1}",
                "type": "function",
                "function": {"name": name, "arguments": orjson.dumps(args).decode()},
            }
        ],
    }


def _with_form(sentence: str, form: str) -> str:
    words = sentence.rstrip(".").split()
    return " ".join([words[0], form, *words[2:]]) + "."


def reply(
    behaviour: ModelBehaviour, messages: list[dict[str, Any]], *, seed: int | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The assistant message for this conversation state and the ids it cites."""
    sentence = sentence_of(messages)
    parsed = parse_sentence(sentence)
    if parsed is None:
        return {"role": "assistant", "content": NO_SENTENCE}, []
    verb, tense, person = parsed
    if _is_agent(messages):
        step = agent_step(behaviour, messages, sentence, parsed)
        if step is not None:
            return step, []
    elif messages[-1].get("role") != "tool":
        return _tool_turn(sentence, verb, tense, person, _student(messages)), []
    rng = behaviour.rng if seed is None else random.Random(f"{behaviour.name}:{seed}:{sentence}")
    if behaviour.unstable and rng.random() < behaviour.unstable:
        if rng.random() < 0.5:
            return {"role": "assistant", "content": NO_SENTENCE}, []
        other = _other(tense)  # conjugates with the wrong tense
        wrong = _with_form(sentence, conjugate(verb, other, person))
        return {"role": "assistant", "content": CORRECTED.format(wrong)}, [citation_id(verb)]
    form = conjugate(verb, tense, person)
    regularised = VERBS[verb][3]
    knows = (
        int(hashlib.blake2b(f"{behaviour.name}:{sentence}".encode(), digest_size=2).hexdigest(), 16) / 65535
    )
    if sentence.split()[1] == regularised and tense == "past" and knows >= behaviour.skill:
        form = regularised  # the weak model accepts the over-regularised form
    fixed = _with_form(sentence, form)
    template, variants = (
        (AS_WRITTEN, AS_WRITTEN_VARIANTS) if fixed == sentence else (CORRECTED, CORRECTED_VARIANTS)
    )
    if behaviour.variability and rng.random() < behaviour.variability:
        template = rng.choice(variants)
    return {"role": "assistant", "content": template.format(fixed)}, [citation_id(verb)]


def answer(
    behaviour: ModelBehaviour, messages: list[dict[str, Any]], *, seed: int | None = None
) -> dict[str, Any]:
    """The assistant message for this conversation state (see :func:`reply`)."""
    return reply(behaviour, messages, seed=seed)[0]


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
        if any(k == _SHADOW for k, _ in scope.get("headers") or ()):
            behaviour.shadow_calls += 1
        if behaviour.latency_ms:
            await asyncio.sleep(behaviour.latency_ms / 1000 * (0.5 + behaviour.rng.random()))
        if behaviour.error_rate and behaviour.rng.random() < behaviour.error_rate:
            await send_json(send, 503, {"error": {"message": "model overloaded"}})
            return
        seed = body.get("seed")
        seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
        message, citations = reply(behaviour, body.get("messages") or [], seed=seed)
        words = sum(len(str(m.get("content") or "").split()) for m in body.get("messages") or [])
        out_words = len(str(message.get("content") or "").split()) + 8 * len(message.get("tool_calls") or [])
        payload: dict[str, Any] = {
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
        }
        if citations:
            payload["citations"] = citations
        question = _last_user(body.get("messages") or [])
        parsed = parse_sentence(split_prefix(question) or "") if is_rag(question) else None
        if parsed is not None and not message.get("tool_calls"):  # a RAG answer says what it retrieved
            payload["retrieved"] = retrieve(behaviour.name, behaviour.retrieval_slip, question, parsed)
        if body.get("stream") is True:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            await send_sse(send, completion_chunks(payload, include_usage=include_usage))
            return
        await send_json(send, 200, payload)

    return app
