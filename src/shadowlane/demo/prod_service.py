"""The demo's prod service: an OpenAI-compatible grammar-tutor endpoint backed by model A.

It runs the tool loop server-side: ``lookup_conjugation`` reads the canonical table,
``find_examples`` (the agent scenario's step 2) returns example sentences and ``save_progress``
really writes to the gradebook. Each executed tool is reported with
:func:`shadowlane.hook.context.record_tool_call` so the shadow can answer from the recording.
It also labels each request for the hook: the other wordings of the user's message
(:func:`set_paraphrases`) and, when the client sends ``x-eval-gold`` (the correct sentence, as the
demo driver does), the gold answer (:func:`set_gold`), and the breakdown labels the lab report
slices by (:func:`set_buckets`: tense, person, verb), and for the RAG scenario what model A's
retriever returned (:func:`set_retrieved`, read from the model's answer: :mod:`shadowlane.demo.rag`).
Citations need nothing here: the hook reads them from the model's response. Otherwise the
handler knows nothing about mirroring: the middleware wraps it from outside.

A/B (the lab): given a ``route`` (a callable returning the :class:`RouteConfig` in force, e.g. a
control-plane watcher's lookup), each request is assigned with :func:`shadowlane.rollout.router.assign`
(sticky on the ``x-user-id`` header when the config says so), served by that arm's model server,
and its exposure recorded (:func:`set_exposure`) so the report can group A/B traffic by arm.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from shadowlane.contracts.route_config import RouteConfig
from shadowlane.demo.asgi_util import Receive, Scope, Send, lifespan, read_body, send_json
from shadowlane.demo.grammar import OBJECTS, citation_id, conjugate, parse_sentence
from shadowlane.demo.model_server import paraphrases, split_prefix
from shadowlane.hook.context import (
    RawExposure,
    record_tool_call,
    set_buckets,
    set_exposure,
    set_gold,
    set_paraphrases,
    set_pins,
    set_retrieved,
)
from shadowlane.rollout.router import assign, ensure_request_id

GOLD_HEADER = b"x-eval-gold"
GOLD_SOURCE = "grammar-eval"


@dataclass
class Gradebook:
    """The side effect a shadow must never cause."""

    writes: list[dict[str, Any]] = field(default_factory=list)


def run_tool(name: str, arguments: dict[str, Any], gradebook: Gradebook) -> dict[str, Any]:
    if name == "lookup_conjugation":
        return {"form": conjugate(arguments["verb"], arguments["tense"], arguments["person"])}
    if name == "find_examples":  # the agent scenario's read-only step 2
        verb, tense = arguments["verb"], arguments["tense"]
        examples = [f"{p.capitalize()} {conjugate(verb, tense, p)} {OBJECTS[verb]}." for p in ("I", "he")]
        return {"examples": examples}
    if name == "save_progress":
        gradebook.writes.append(arguments)
        return {"saved": True, "entries": len(gradebook.writes)}
    return {"error": f"unknown tool {name}"}


def label_request(scope: Scope, messages: list[dict[str, Any]]) -> None:
    """Tell the hook the other wordings of the last user message and, for eval traffic, the gold."""
    text = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), None)
    sentence = split_prefix(text) if isinstance(text, str) else None
    if sentence:
        set_paraphrases(paraphrases(sentence, asked=text))
    parsed = parse_sentence(sentence or "")
    if parsed:
        verb, tense, person = parsed
        set_buckets(tense=tense, person=person, verb=verb)
    gold = _header(scope, GOLD_HEADER)
    if gold:
        cited = [citation_id(parsed[0])] if parsed else []
        set_gold(gold, cited_ids=cited, source=GOLD_SOURCE)


def _header(scope: Scope, name: bytes) -> str | None:
    value = next((v for k, v in scope.get("headers") or () if k == name), None)
    return value.decode("utf-8", errors="replace") if value else None


def route_request(scope: Scope, config: RouteConfig | None) -> str | None:
    """The arm's target for this request under ``config`` (None: no flag, the default model)."""
    if config is None:
        return None
    request_id = ensure_request_id(_header(scope, b"x-request-id"))
    got = assign(request_id, config, endpoint=scope["path"], user_id=_header(scope, b"x-user-id"))
    if got.strategy in ("ab", "canary"):
        set_exposure(RawExposure(config.flag, got.arm, got.serve, got.strategy, config.epoch, got.bucket))
    return got.serve


def prod_app(
    model_url: str,
    gradebook: Gradebook,
    *,
    pins: dict[str, str] | None = None,
    targets: Mapping[str, str] | None = None,
    target_pins: Mapping[str, Mapping[str, str]] | None = None,
    route: Callable[[], RouteConfig | None] | None = None,
) -> Any:
    """ASGI app; the caller owns the lifetime of the returned app's HTTP client via lifespan.

    ``targets`` maps router target names to model-server URLs (``model_url`` serves the rest) and
    ``target_pins`` to the version pins of what served, recorded on the envelope."""
    client = httpx.AsyncClient(base_url=model_url, timeout=30.0)
    urls = dict(targets or {})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            await client.aclose()
            return
        if scope["path"] != "/v1/chat/completions" or scope["method"] != "POST":
            await send_json(send, 404, {"error": {"message": "not found"}})
            return
        body = orjson.loads(await read_body(receive))
        messages = list(body["messages"])
        if pins:
            set_pins(pins)
        label_request(scope, messages)
        target = route_request(scope, route() if route is not None else None)
        if target is not None and target_pins and target in target_pins:
            set_pins(target_pins[target])
        url = f"{urls[target]}/v1/chat/completions" if target in urls else "/v1/chat/completions"
        usage: dict[str, int] = {}
        for _ in range(4):
            resp = await client.post(url, content=orjson.dumps({**body, "messages": messages}))
            if resp.status_code != 200:
                await send_json(send, 502, {"error": {"message": f"model A answered {resp.status_code}"}})
                return
            data = resp.json()
            for key, value in (data.get("usage") or {}).items():
                usage[key] = usage.get(key, 0) + int(value)
            message = data["choices"][0]["message"]
            calls = message.get("tool_calls") or []
            if not calls:
                # the usage of every round of the server-side tool loop, as OpenAI reports it
                retrieved = data.pop("retrieved", None)  # the RAG scenario: what model A retrieved
                if retrieved:
                    set_retrieved(retrieved)
                await send_json(send, 200, {**data, "usage": usage})
                return
            messages.append(message)
            for call in calls:
                fn = call["function"]
                args = orjson.loads(fn["arguments"])
                output = run_tool(fn["name"], args, gradebook)
                record_tool_call(fn["name"], args, output)
                messages.append(
                    {"role": "tool", "tool_call_id": call["id"], "content": orjson.dumps(output).decode()}
                )
        await send_json(send, 508, {"error": {"message": "tool loop did not finish"}})

    return app
