"""Builds valid wire records for tests.

``envelope`` / ``result``: the demo's grammar tutor, stamped now. ``make_envelope`` /
``make_result``: a small generic request whose id (and so ``req_hash``) the test chooses, at a
fixed event time.
"""

from __future__ import annotations

import time

from shadowlane.contracts.chat import ChatMessage, ChatRequest, FunctionSpec, ToolSpec
from shadowlane.contracts.envelope import ProdOutcome, RecordedToolCall, RequestEnvelope, SamplingDecision
from shadowlane.contracts.shadow_result import ShadowResult
from shadowlane.demo.grammar import item_at
from shadowlane.demo.model_server import PREFIX
from shadowlane.hashing import canonical_json, req_hash

TOOLS = (
    ToolSpec(function=FunctionSpec(name="lookup_conjugation", parameters={"type": "object"})),
    ToolSpec(function=FunctionSpec(name="save_progress", parameters={"type": "object"})),
)


def envelope(i: int, *, answer: str | None = None, tag: str = "t") -> RequestEnvelope:
    item = item_at(i)
    request = ChatRequest(
        model="grammar-tutor",
        messages=(
            ChatMessage(role="system", content=f"You are a grammar tutor for student s{i:03d}."),
            ChatMessage(role="user", content=PREFIX + item.sentence),
        ),
        tools=TOOLS,
    )
    rid = f"{tag}-{i:06d}"
    args = {"verb": item.verb, "tense": item.tense, "person": item.person}
    return RequestEnvelope(
        req_id=rid,
        req_hash=req_hash(rid, canonical_json(request.model_dump(mode="json"))),
        ts_ms=time.time_ns() // 1_000_000,
        endpoint="/v1/chat/completions",
        request=request,
        prod=ProdOutcome(answer=answer or f"Corrected: {item.correct}", status=200, latency_ms=40.0),
        tool_io=(
            RecordedToolCall(name="lookup_conjugation", arguments=args, output='{"form":"x"}'),
            RecordedToolCall(
                name="save_progress",
                arguments={"student_id": f"s{i:03d}", "verb": item.verb},
                output='{"saved":true}',
            ),
        ),
        pins={"model_rev": "a"},
        sampling=SamplingDecision(ratio=1.0, bucket=0.5, salt_id="test"),
    )


def renamed(env: RequestEnvelope, req_id: str) -> RequestEnvelope:
    """``env`` under another request id, with the ``req_hash`` the recipe gives it."""
    request = env.request.model_dump(mode="json")
    return env.model_copy(update={"req_id": req_id, "req_hash": req_hash(req_id, canonical_json(request))})


def result(env: RequestEnvelope, candidate: str = "cand", *, answer: str | None = None) -> ShadowResult:
    return ShadowResult(
        req_hash=env.req_hash,
        req_id=env.req_id,
        candidate=candidate,
        shadow_id="s-" + env.req_id,
        ts_ms=time.time_ns() // 1_000_000,
        status="ok",
        answer=answer if answer is not None else env.prod.answer,
        latency_ms=50.0,
    )


TOOL_NAMES = ("lookup", "save_progress")


def make_envelope(
    rid: str,
    *,
    ts_ms: int = 1_000,
    tools: tuple[str, ...] = TOOL_NAMES,
    tool_io: tuple[RecordedToolCall, ...] = (),
    user_text: str = "hello",
    model: str | None = "prod-model",
) -> RequestEnvelope:
    """A valid envelope whose ``req_hash`` is derived from ``rid`` like the hook does."""
    request = ChatRequest(
        model=model,
        messages=(
            ChatMessage(role="system", content="You are helpful."),
            ChatMessage(role="user", content=user_text),
        ),
        tools=tuple(ToolSpec(function=FunctionSpec(name=n, parameters={"type": "object"})) for n in tools),
        params={"temperature": 0.0},
    )
    return RequestEnvelope(
        req_id=rid,
        req_hash=req_hash(rid, canonical_json(request.model_dump(mode="json"))),
        ts_ms=ts_ms,
        endpoint="/v1/chat/completions",
        request=request,
        prod=ProdOutcome(answer="prod answer", status=200, latency_ms=12.0),
        tool_io=tool_io,
        sampling=SamplingDecision(ratio=1.0, bucket=0.5, salt_id="unit"),
    )


def make_result(env: RequestEnvelope, candidate: str, *, ts_ms: int = 1_000) -> ShadowResult:
    return ShadowResult(
        req_hash=env.req_hash,
        req_id=env.req_id,
        candidate=candidate,
        shadow_id=f"s-{env.req_id}-{candidate}",
        ts_ms=ts_ms,
        status="ok",
        answer="shadow answer",
        latency_ms=5.0,
    )
