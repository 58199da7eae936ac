"""The planted corpus through the hook's real envelope builder: each secret in ten places of a
request, and what goes on the topic (the envelope's bytes) scanned for any 8-character piece of it.
Also: harmless look-alikes come out unchanged (at most 1 % may be altered)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from shadowlane.hook.context import RawGold, RawMirror, RawToolCall, RequestLabels
from shadowlane.hook.envelope_builder import EnvelopeBuilder
from shadowlane.sanitize import Sanitizer
from tests.support.secret_corpus import harmless, json_escaped, leaked_in_json, secrets

Placed = tuple[dict[str, Any], dict[str, Any], list[RawToolCall], RequestLabels | None]


def _body(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}, *messages], **extra}


def _answer(content: str = "ok", calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return {"choices": [{"message": message}]}


def _call(arguments: str) -> dict[str, Any]:
    return {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": arguments}}


def _note(text: str) -> str:
    """Tool-call arguments (a JSON string) carrying ``text``."""
    return orjson.dumps({"note": text}).decode()


PLACEMENTS: dict[str, Callable[[str], Placed]] = {
    "user": lambda t: (_body({"role": "user", "content": t}), _answer(), [], None),
    "system": lambda t: (_body({"role": "system", "content": t}), _answer(), [], None),
    "assistant": lambda t: (_body({"role": "assistant", "content": t}), _answer(), [], None),
    "tool-arguments": lambda t: (
        _body({"role": "assistant", "content": None, "tool_calls": [_call(_note(t))]}), _answer(), [], None,
    ),
    "tool-output": lambda t: (
        _body(
            {"role": "assistant", "content": None, "tool_calls": [_call("{}")]},
            {"role": "tool", "tool_call_id": "c1", "content": t},
        ),
        _answer(), [], None,
    ),
    "nested-field": lambda t: (_body(metadata={"note": {"deep": [t]}}), _answer(), [], None),
    "response-text": lambda t: (_body(), _answer(t), [], None),
    "response-tool-arguments": lambda t: (
        _body(), _answer("", [_call(_note(t))]), [], None,
    ),
    "recorded-tool-output": lambda t: (_body(), _answer(), [RawToolCall("lookup", {"q": "x"}, t)], None),
    "gold-label": lambda t: (_body(), _answer(), [], RequestLabels(gold=RawGold(answer=t))),
}  # fmt: skip


def _envelope_text(placed: Placed) -> str:
    body, answer, tools, labels = placed
    raw = RawMirror(
        "r-1", "/v1/chat/completions", orjson.dumps(body), orjson.dumps(answer), 200, 5.0, 0, 0.5,
        "acme", None, tools, {}, labels,
    )  # fmt: skip
    record = EnvelopeBuilder(Sanitizer(), ratio=1.0, salt_id="s").record(raw)
    return record.value.decode()


CORPUS = list(secrets())


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_no_planted_secret_leaves_in_any_placement(placement: str) -> None:
    leaks: list[str] = []
    unlabelled: list[str] = []
    for item in CORPUS:
        out = _envelope_text(PLACEMENTS[placement](item.text))
        if leaked_in_json(item.secret, out):
            leaks.append(f"{item.kind}/{item.form}")
        elif item.label is not None and item.label not in out:
            unlabelled.append(f"{item.kind}/{item.form}")
    assert leaks == []
    assert unlabelled == []  # every mask carries its class


def test_the_corpus_is_as_wide_as_promised() -> None:
    kinds: dict[str, set[str]] = {}
    for item in CORPUS:
        kinds.setdefault(item.kind, set()).add(item.form)
    assert len(kinds) >= 30
    assert all(len(forms) >= 3 for forms in kinds.values())
    assert len(PLACEMENTS) >= 10
    forms = {item.form for item in CORPUS}
    assert {"prose-equals", "prose-colon", "json-in-text"} <= forms


def test_harmless_look_alikes_come_out_unchanged() -> None:
    texts = list(harmless())
    altered = [t for t in texts if json_escaped(t) not in _envelope_text(PLACEMENTS["user"](t))]
    assert len(altered) <= len(texts) // 100, altered
