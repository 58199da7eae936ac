"""The planted corpus through the hook's real envelope builder: each secret in ten places of a
request, and what goes on the topic (the envelope's bytes) scanned for any 8-character piece of it.
Also: harmless look-alikes come out unchanged (at most 1 % may be altered)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from shadowlane.hook.context import RawGold, RawMirror, RawPassage, RawToolCall, RequestLabels
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
    "retrieved-snippet": lambda t: (
        _body(), _answer(), [], RequestLabels(retrieved=(RawPassage("doc-1", "Snippet: " + t),)),
    ),
    "retrieved-id": lambda t: (_body(), _answer(), [], RequestLabels(retrieved=(RawPassage(t, "text"),))),
}  # fmt: skip


def _envelope_bytes(placed: Placed, sanitizer: Sanitizer | None = None) -> bytes:
    """What the hook's real builder puts on the topic for a request holding ``placed``."""
    body, answer, tools, labels = placed
    raw = RawMirror(
        "r-1", "/v1/chat/completions", orjson.dumps(body), orjson.dumps(answer), 200, 5.0, 0, 0.5,
        "acme", None, tools, {}, labels,
    )  # fmt: skip
    return EnvelopeBuilder(sanitizer or Sanitizer(), ratio=1.0, salt_id="s").record(raw).value


def _envelope_text(placed: Placed) -> str:
    return _envelope_bytes(placed).decode()


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


STRICT = ("model", "role", "name", "type", "id", "tool_call_id")


def _strict_envelope(placed: Placed) -> dict[str, Any]:
    wire: dict[str, Any] = orjson.loads(_envelope_bytes(placed, Sanitizer(strict=STRICT, salt="s3cret-salt")))
    return wire


def _texts_under(value: Any, key: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in _texts_under(v, k)]
    if isinstance(value, list):
        return [pair for v in value for pair in _texts_under(v, key)]
    return [(key, value)] if isinstance(value, str) else []


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_strict_mode_lets_no_free_text_out(placement: str) -> None:
    for item in CORPUS[::7]:
        wire = _strict_envelope(PLACEMENTS[placement](item.text))
        assert not leaked_in_json(item.secret, orjson.dumps(wire).decode())
        parts = [wire["request"], wire["prod"], wire["tool_io"], wire["gold"]]
        for key, text in _texts_under(parts):
            kept = key in STRICT or key == "arguments" or not text.strip()
            # a tool output that held JSON keeps its short head and structure, its texts hashed
            assert kept or text.startswith("<text:") or (key == "output" and "<text:" in text), (key, text)


def test_strict_mode_hashes_equal_texts_alike_and_keeps_the_allowed_keys() -> None:
    strict = Sanitizer(strict=STRICT, salt="s3cret-salt")
    body = {"model": "gpt-x", "messages": [{"role": "user", "content": "Where is my order?"}]}
    cleaned, _ = strict.clean(body)
    assert cleaned["model"] == "gpt-x"
    assert cleaned["messages"][0]["role"] == "user"
    content = cleaned["messages"][0]["content"]
    assert content.startswith("<text:")
    assert strict.mask_text("Where is my order?")[0] == content
    assert Sanitizer(strict=STRICT, salt="other").mask_text("Where is my order?")[0] != content
    assert Sanitizer().clean(body)[0] == body  # not strict: prose is kept
