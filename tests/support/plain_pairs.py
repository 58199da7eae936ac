"""Generated plain pairs (a request, its shadow result and the result's peers) for the tests that
hold the native builder and join equal to the Python ones, and the pair of builders they compare.

Hypothesis draws pairs around every check the native path makes: texts with the sanitizer's
hints, e-mail signs, digit runs in ASCII and other scripts, whitespace the normaliser folds,
citations, gold labels, λ replays, tool calls (prod's with some from the conversation history),
priced models, baseline peers, expected and served pins (matching, differing, absent, keys only
one side has), retrieved passages.
"""

from __future__ import annotations

from typing import Any, Literal

from hypothesis import strategies as st

from shadowlane.compare.build import ComparisonBuilder
from shadowlane.compare.native.builder import PlainPath
from shadowlane.contracts.chat import TokenUsage
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.envelope import (
    GoldLabel,
    ProdOutcome,
    RecordedToolCall,
    RequestEnvelope,
    RetrievedPassage,
)
from shadowlane.contracts.shadow_result import ShadowResult, ShadowToolCall, StabilitySample
from shadowlane.settings import CompareSettings
from tests.support.bag_of_words import BagOfWords
from tests.support.factories import envelope

PIECES = [
    "the answer is",
    "Paris",
    "PARIS",
    "  ",
    "\t",
    "\n",
    "\x1c",
    "\u00a0",
    "\u2028",
    "\u3000",
    "_",
    "sk-",
    "AKIA",
    "AIza",
    "xox",
    "eyJ",
    "BeArEr",
    "bear",
    "@",
    "[doc-1]",
    "[",
    "555 123 4567",
    "1234 5678",
    "(12) 345-678",
    "9",
    "\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661",  # Arabic-Indic digits
    "\u2167",  # Roman numeral eight (Nl)
    "é",
    "ß",
    "\u0130",  # İ: lowercases to i + combining dot
    "\u212a",  # Kelvin sign
    "—",
    ".",
    "-",
]
texts = st.lists(st.sampled_from(PIECES), max_size=8).map("".join) | st.text(max_size=24)


Pair = tuple[RequestEnvelope, ShadowResult, dict[str, ShadowResult]]

EXPECTED_PINS = [{}, {"model_rev": "a"}, {"model_rev": "a", "index": "i1"}, {"model_rev": ""}]
# served pins: matching, differing, absent (""), keys only one side has, in any key order
SERVED_PINS = [
    {},
    {"model_rev": "a"},
    {"model_rev": "b"},
    {"model_rev": ""},
    {"other": "x"},
    {"index": "i1", "model_rev": "a"},
    {"zz": "1", "index": "", "model_rev": "b"},
    {"index": "i2", "é": "1"},
]
CALLS = [
    RecordedToolCall(name="search", output="{}"),
    RecordedToolCall(name="fetch", arguments={"n": 1}, output="x"),
]


@st.composite
def pairs(draw: st.DrawFn) -> Pair:
    plain = draw(st.booleans())  # half the pairs: only the texts decide whether they are plain
    extras = st.just(False) if plain else st.booleans()
    prod_answer = draw(st.none() | texts)
    shadow_answer = draw(
        st.none()
        | texts
        | st.just(prod_answer)
        | st.sampled_from([f"  {prod_answer}  ", (prod_answer or "").upper(), (prod_answer or "") + "\t"])
    )
    tokens = draw(st.none() | st.integers(0, 5000))
    usage = None if tokens is None else TokenUsage(prompt_tokens=tokens, completion_tokens=tokens // 2)
    base = envelope(1)
    env = base.model_copy(
        update={
            "ts_ms": draw(st.integers(0, 2**45)),
            "endpoint": draw(st.sampled_from(["/v1/chat", "/search"])),
            "tenant": draw(st.sampled_from(["default", "acme"])),
            # the request's model ("grammar-tutor") stands in when prod names none: unpriced
            "prod": ProdOutcome(
                answer=prod_answer,
                latency_ms=draw(st.sampled_from([0.0, 12.5, 40.0, 1e-7, 3e9])),
                status=draw(st.sampled_from([200, 429, 500])),
                model=draw(st.sampled_from([None, "gpt-x", "cheap"])),
                usage=usage,
                cited_ids=("doc-1",) if draw(extras) else (),
                served_pins=draw(st.sampled_from(SERVED_PINS)),
                retrieved=(RetrievedPassage(id="doc-1", text="Paris."),) if draw(extras) else (),
            ),
            "pins": draw(st.sampled_from(EXPECTED_PINS)),
            "tool_io": tuple(CALLS[: draw(st.integers(0, 2))]),
            # the first of them from the conversation's history: not this turn's steps
            "history_tool_calls": draw(st.integers(0, 3)),
            "gold": draw(st.sampled_from([GoldLabel(answer="Paris"), GoldLabel(cited_ids=("doc-1",))]))
            if draw(extras)
            else None,
            "buckets": draw(st.sampled_from([{}, {"lang": "en"}])),
        }
    )
    candidate = draw(st.sampled_from(["cand", "baseline"]))
    status: Literal["ok", "error"] = draw(st.sampled_from(["ok", "error"]))
    res = ShadowResult(
        req_hash=env.req_hash,
        req_id=env.req_id,
        candidate=candidate,
        shadow_id="s1",
        ts_ms=1,
        status=status,
        error_class=draw(st.sampled_from([None, "timeout"])) if status == "error" else None,
        answer=shadow_answer,
        latency_ms=draw(st.sampled_from([0.0, 50.0, 0.1, 7e8])),
        pins=draw(st.sampled_from(EXPECTED_PINS)),
        served_pins=draw(st.sampled_from(SERVED_PINS)),
        retrieved=(RetrievedPassage(id="doc-2"),) if draw(extras) else (),
        model=draw(st.sampled_from([None, "gpt-x", "cheap"])),
        usage=draw(st.sampled_from([None, TokenUsage(prompt_tokens=10, completion_tokens=5)])),
        cited_ids=draw(st.sampled_from([(), ("doc-1",)])),
        tool_calls=(ShadowToolCall(name="search", arguments={}, disposition="blocked"),)
        if draw(extras)
        else (),
        stability=(StabilitySample(variant="seed", seed=1, status="ok", answer="x"),) if draw(extras) else (),
    )
    peers = {res.candidate: res}
    if candidate == "cand" and draw(extras):
        peers["baseline"] = res.model_copy(update={"candidate": "baseline", "answer": prod_answer})
    return env, res, peers


def builders(embedder: bool, **overrides: Any) -> tuple[ComparisonBuilder, ComparisonBuilder]:
    """Two builders on the same settings: the first with its native plain path, the second with
    the plain path forced to Python."""
    s = CompareSettings(candidates=("cand", "baseline"), **overrides)
    native = ComparisonBuilder(BagOfWords() if embedder else None, s)
    python = ComparisonBuilder(BagOfWords() if embedder else None, s)
    python.plain = PlainPath(s, python.embedder_name, None, python._sanitizer, native=None)
    return native, python


def exact(c: Comparison) -> list[tuple[str, Any, type]]:
    """Every field of a comparison with its value and its exact type (1 and 1.0 differ)."""
    return [(k, v, type(v)) for k, v in c.__dict__.items()]
