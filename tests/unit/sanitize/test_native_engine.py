"""shadowlane/sanitize (native path): ``shadowlane_native.MaskEngine`` runs the rules of
``shadowlane.sanitize.rules`` exactly as the Python reference does, and leaves to Python every
text it does not take."""

from __future__ import annotations

import random
import string
from typing import Any

import orjson
import pytest

from shadowlane.native_path import native_available
from shadowlane.sanitize import Sanitizer
from shadowlane.sanitize.matching import compile_rule
from shadowlane.sanitize.rules import RULES
from tests.support.secret_corpus import harmless, secrets

pytestmark = pytest.mark.skipif(
    not native_available(), reason="the native engine is not built: `make native`"
)


@pytest.fixture(scope="module")
def pair() -> tuple[Sanitizer, Sanitizer]:
    python, native = Sanitizer(path="python"), Sanitizer(path="native")
    assert native.native
    assert not python.native
    return python, native


def _texts() -> list[str]:
    return [p.text for p in secrets(per_format=3)] + list(harmless())


def test_every_corpus_text_is_masked_alike(pair: tuple[Sanitizer, Sanitizer]) -> None:
    python, native = pair
    texts = _texts()
    assert len(texts) > 500
    for text in texts:
        assert native.mask_text(text) == python.mask_text(text), text
        assert native.clean_text(text) == python.clean_text(text), text


def test_seeded_mixtures_of_secrets_and_noise_are_masked_alike(pair: tuple[Sanitizer, Sanitizer]) -> None:
    python, native = pair
    rng = random.Random(20261206)
    pieces = [*_texts(), "\\n", ": ", "=", " is ", "://", "@", "+1 ", "4111 ", "-", "."]
    noise = string.ascii_letters + string.digits + string.punctuation + " \t\n"
    for _ in range(4000):
        parts = [
            rng.choice(pieces) if rng.random() < 0.6 else "".join(rng.choices(noise, k=rng.randint(0, 24)))
            for _ in range(rng.randint(1, 4))
        ]
        text = "".join(parts)
        assert native.mask_text(text) == python.mask_text(text), text


def _payload(text: str) -> dict[Any, Any]:
    return {
        "messages": [{"role": "user", "content": text}, {"role": "tool", "content": (text, 7, None)}],
        "api_key": text,
        "x-auth-token": "abc",
        3: text,
        "nested": {"deeper": [[text, 1.5, True]]},
    }


def test_payloads_are_walked_alike(pair: tuple[Sanitizer, Sanitizer]) -> None:
    python, native = pair
    for text in _texts()[:200]:
        body = _payload(text)
        assert native.clean(body) == python.clean(body)
    cleaned, count = native.clean(_payload("mail a@b.io"))
    assert "api_key" not in cleaned
    assert "x-auth-token" not in cleaned
    assert cleaned[3] == "mail <email>"  # a key that is not a text is kept
    assert cleaned["messages"][1]["content"] == ["mail <email>", 7, None]  # a tuple comes back a list
    assert count == 2 + 4


def test_subclasses_of_str_and_dict_are_walked_as_python_walks_them(
    pair: tuple[Sanitizer, Sanitizer],
) -> None:
    class Text(str):
        pass

    class Body(dict[str, Any]):
        pass

    python, native = pair
    body = Body(a=Text("mail a@b.io"), password="x")
    assert native.clean(body) == python.clean(body) == ({"a": "mail <email>"}, 2)


def test_nesting_past_the_engine_s_depth_is_walked_by_python(pair: tuple[Sanitizer, Sanitizer]) -> None:
    python, native = pair
    value: Any = "mail a@b.io"
    for level in range(300):
        value = {"token": "t", "v": value} if level % 2 else [value]
    assert native.clean(value) == python.clean(value)
    assert native.clean(value)[1] == 150 + 1


@pytest.mark.parametrize("text", ["mail jörg@müller.de now", "reach a@b.io\x1cthen", "ip 10.0.0.1 ²"])
def test_a_text_the_engine_does_not_take_is_masked_by_python(
    pair: tuple[Sanitizer, Sanitizer], text: str
) -> None:
    python, native = pair
    engine = native._engine
    assert engine is not None
    assert engine.mask(text) is None
    assert native.mask_text(text) == python.mask_text(text)
    assert native.mask_text(text)[1] >= 1
    body = {"q": text, "n": [text]}
    assert native.clean(body) == python.clean(body)


def test_a_named_check_is_the_python_function_called_on_the_masked_part() -> None:
    from shadowlane_native import MaskEngine

    seen: list[str] = []

    def refuse(part: str) -> bool:
        seen.append(part)
        return False

    card = compile_rule(next(r for r in RULES if r.name == "card"))
    refusing = type(card)(
        card.rule, card.regex, card.masked_group, refuse, card.triggers, card.lead,
        card.not_after,
    )  # fmt: skip
    need = card.rule.digits[0]
    for compiled, expected in ((card, "pay <card> now"), (refusing, "pay 4111 1111 1111 1111 now")):
        engine = MaskEngine([compiled], [], [(need, 0)], [need], card.rule.digits[1], 6)
        assert engine.mask("pay 4111 1111 1111 1111 now") == (expected, int(compiled is card))
    assert seen == ["4111 1111 1111 1111"]


def test_an_engine_refuses_what_it_cannot_run() -> None:
    from shadowlane_native import MaskEngine

    with pytest.raises(ValueError, match="out of range"):
        MaskEngine([compile_rule(RULES[0])], [("-", [1])], [], [], "", 6)
    with pytest.raises(ValueError, match="at most 64"):
        MaskEngine([compile_rule(RULES[0])] * 65, [], [], [], "", 6)


def test_the_envelope_bytes_are_the_same_on_both_paths() -> None:
    from shadowlane.hook.context import RawMirror
    from shadowlane.hook.envelope_builder import EnvelopeBuilder

    texts = _texts()[:60]
    raws = [
        RawMirror(f"r{i}", "/v1/chat/completions", {"messages": [{"role": "user", "content": t}]},
                  {"choices": [{"message": {"role": "assistant", "content": t}}]}, 200, 12.0, 0, 0.5)
        for i, t in enumerate(texts)
    ]  # fmt: skip
    built = [
        [
            orjson.loads(EnvelopeBuilder(Sanitizer(path=p), ratio=1.0, salt_id="s").record(r).value)
            for r in raws
        ]
        for p in ("python", "native")
    ]
    for python, native in zip(*built, strict=True):
        python.pop("captured_at", None)
        native.pop("captured_at", None)
        assert native == python
