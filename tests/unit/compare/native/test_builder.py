"""The native builder of plain pairs (``shadowlane_native.build_plain``) against the Python one.

The native path may decline any pair (the Python builder then builds it); a comparison it builds
must equal the Python builder's in every value, type and key order, and encode to the same
bytes. Hypothesis generates pairs around every check the native path makes: texts with the
sanitizer's hints, e-mail signs, digit runs in ASCII and other scripts, whitespace the
normaliser folds, citations, gold labels, λ replays, tool calls, priced models, baseline peers,
with and without an embedder.
"""

from __future__ import annotations

from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadowlane.compare.agent_steps import cut
from shadowlane.compare.build import ComparisonBuilder
from shadowlane.compare.embed_onnx import MiniLMEmbedder
from shadowlane.compare.join import Joined, Output
from shadowlane.compare.native.builder import NATIVE_PLAIN, PlainPath, _template
from shadowlane.compare.prod_side import ProdSide, read_request
from shadowlane.compare.results import read_result
from shadowlane.contracts.codec import encode
from shadowlane.contracts.envelope import ProdOutcome
from shadowlane.contracts.shadow_result import ShadowResult
from shadowlane.sanitize import MASK_GUARD
from shadowlane.settings import CompareSettings, ModelPrice
from tests.support.factories import envelope
from tests.support.plain_pairs import Pair, builders, exact, pairs

pytestmark = pytest.mark.skipif(NATIVE_PLAIN is None, reason="shadowlane_native is not built")


def _joined(pair: Pair, native: bool) -> Joined:
    """The pair as the join hands it over: read from its bytes by the native readers (which must
    vouch for every generated record) or by Python alone."""
    env, res, peers = pair
    if not native:
        return Joined(ProdSide.decode_python(encode(env), env.req_hash.encode()), res, [], dict(peers))
    records = {name: read_result(encode(peer)) for name, peer in peers.items()}
    side = read_request(encode(env), env.req_hash.encode())
    assert not isinstance(side, ProdSide)
    assert not any(isinstance(r, ShadowResult) for r in records.values())
    return Joined(side, records[res.candidate], [], records)


def _check(native: ComparisonBuilder, python: ComparisonBuilder, pairs: list[Pair]) -> int:
    """Both builders agree on every comparison (the native one reading native records, the
    Python one Python records), and the native path's wire bytes are orjson's for the Python
    builder's record; returns how many the native path built."""
    native_side: list[Output] = [_joined(p, native=True) for p in pairs]
    prepared = native.prepare(native_side)
    got, want = native.finish(prepared), python.build([_joined(p, native=False) for p in pairs])
    assert [exact(c) for c in got] == [exact(c) for c in want]
    assert [encode(c) for c in got] == [encode(c) for c in want]
    for data, comparison in zip(prepared.wire, want, strict=True):
        assert data is None or data == encode(comparison)
    return sum(data is not None for data in prepared.wire)


PRICES = {"gpt-x": ModelPrice(input_per_mtok=2.5, output_per_mtok=10.0)}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pair=pairs(),
    embedder=st.booleans(),
    baseline=st.sampled_from(["baseline", None]),
    priced=st.booleans(),
    citation=st.sampled_from([None, r"\[([A-Za-z0-9_\-]+)\]", r"(?:see )?\[([a-z0-9\-]+)\]"]),
)
def test_native_plain_pairs_equal_the_python_builder(
    pair: Pair,
    embedder: bool,
    baseline: str | None,
    priced: bool,
    citation: str | None,
) -> None:
    overrides: dict[str, Any] = {"baseline_candidate": baseline, "prices": PRICES if priced else {}}
    if citation is not None:
        overrides["citation_pattern"] = citation
    native, python = builders(embedder, **overrides)
    _check(native, python, [pair])


def _plain_pair(prod: str | None, shadow: str | None) -> Pair:
    env = envelope(1).model_copy(
        update={"prod": ProdOutcome(answer=prod, status=200, latency_ms=10.0), "tool_io": ()}
    )
    res = ShadowResult(
        req_hash=env.req_hash, req_id=env.req_id, candidate="cand", shadow_id="s", ts_ms=1, status="ok",
        answer=shadow, latency_ms=12.0,
    )  # fmt: skip
    return env, res, {"cand": res}


@pytest.mark.parametrize(
    ("prod", "shadow"),
    [
        ("The capital is Paris.", "The capital is Paris."),
        ("The capital is Paris.", "the  capital IS paris."),  # equal once normalised
        ("Paris", "Lyon"),
        (None, "Paris"),
        ("Paris", None),
        ("", "tiny"),
        ("x", "Flights at 9 and 10, gate 12-14."),  # eight digits in one run at most
        ("x", "ring 55 or 512"),  # digits, but no run a number rule needs: nothing to mask
        ("a\x1cb  c", "A B\tc"),  # str.split() also splits at \x1c-\x1f
    ],
)
def test_plain_pairs_take_the_native_path(prod: str | None, shadow: str | None) -> None:
    native, python = builders(embedder=False)
    assert _check(native, python, [_plain_pair(prod, shadow)]) == 1


@pytest.mark.parametrize(
    ("prod", "shadow", "embedder"),
    [
        ("a", "mail me: ann@example.com", False),  # the e-mail pass may mask it
        ("a", "call 555 123 4567 now", False),  # nine digits: the number pass may mask it
        ("a", "dial 555 123 456", False),  # exactly nine
        ("a", "1\x1c2\x1c3\x1c4\x1c5\x1c6\x1c7\x1c8\x1c9", False),  # \s includes \x1c-\x1f
        ("a", "call ٥٥٥ ١٢٣ ٤٥٦٧ now", False),  # in another script too
        ("a", "token sk-abcdefghijklmnopqrstu", False),
        ("a", "use BeArEr abcdefghijk", False),
        ("a", "key ghp_abc", False),  # a token prefix: a secret rule may mask it
        ("a", "Client_Secret: x", False),  # a key name before ':' (ASCII case folded)
        ("a", "ip 10.0.0.1 here", False),  # four digits joined by dots: the IP rule may mask it
        ("Straße", "STRASSE", False),  # non-ASCII texts that differ: Python normalises them
        ("see [doc-1]", "see [doc-1]", False),  # a citation target: coverage is Python's
        ("Paris", "Lyon", True),  # the embedder scores them
    ],
)
def test_pairs_that_are_not_plain_are_left_to_python(prod: str, shadow: str, embedder: bool) -> None:
    native, python = builders(embedder)
    assert _check(native, python, [_plain_pair(prod, shadow)]) == 0


def test_a_custom_sanitizer_turns_the_native_path_off() -> None:
    from shadowlane.sanitize import Sanitizer

    class Stricter(Sanitizer):
        pass

    s = CompareSettings(candidates=("cand",))
    assert ComparisonBuilder(None, s).plain.enabled
    assert not ComparisonBuilder(None, s, Stricter()).plain.enabled


def test_the_benchmark_pairs_take_the_native_path() -> None:
    from tests.bench.bench_compare import envelopes
    from tests.support.factories import result

    native, python = builders(embedder=False)
    pairs: list[Pair] = []
    for env in envelopes(20):
        res = result(env, "cand")
        pairs.append((env, res, {"cand": res}))
    assert _check(native, python, pairs) == 20


@settings(max_examples=300, deadline=None)
@given(
    prod_ms=st.floats(min_value=0.0, allow_infinity=False),
    shadow_ms=st.floats(min_value=0.0, allow_infinity=False),
    text=st.text(max_size=12),
    ts=st.integers(0, 2**62),
)
def test_the_native_wire_bytes_spell_floats_strings_and_ints_as_orjson(
    prod_ms: float, shadow_ms: float, text: str, ts: int
) -> None:
    """Any latency (and their difference), ids and pins with any characters, any event time."""
    env = envelope(1).model_copy(
        update={
            "ts_ms": ts,
            "tenant": text or "t",
            "pins": {text: text},
            "buckets": {"k": text},
            "prod": ProdOutcome(answer="same", status=200, latency_ms=prod_ms),
            "tool_io": (),
        }
    )
    res = ShadowResult(
        req_hash=env.req_hash, req_id=env.req_id, candidate="cand", shadow_id="s", ts_ms=1, status="ok",
        answer="same", latency_ms=shadow_ms, pins={"rev": text},
    )  # fmt: skip
    native, python = builders(embedder=False)
    assert _check(native, python, [(env, res, {"cand": res})]) == 1


@pytest.mark.parametrize("field", ["status_pair", "delta_s_embedder"])
def test_the_native_config_refuses_a_template_without_a_field_it_fills(field: str) -> None:
    """A field missing from the template would be appended at the record's end, out of order."""
    assert NATIVE_PLAIN is not None
    config_type = NATIVE_PLAIN[0]
    template = _template()
    config_type(None, "some-embedder", None, [], template, MASK_GUARD)  # the contract's own is accepted
    assert template["delta_s_embedder"] is None  # the name goes into the config's copy
    del template[field]
    with pytest.raises(ValueError, match=field):
        config_type(None, None, None, [], template, MASK_GUARD)


def test_both_paths_name_the_real_embedder_on_every_joined_pair() -> None:
    """With MiniLM, the native path builds a pair equal after normalisation (ΔS 0, never embedded)
    and one with a missing answer, naming MiniLM as the Python builder does; the pair MiniLM
    scores is the Python builder's, with the same name."""
    s = CompareSettings(candidates=("cand",))
    minilm = MiniLMEmbedder()
    native, python = ComparisonBuilder(minilm, s), ComparisonBuilder(minilm, s)
    python.plain = PlainPath(s, python.embedder_name, None, python._sanitizer, native=None)
    generated = [
        _plain_pair("The capital is Paris.", "the  capital IS paris."),
        _plain_pair("Paris", None),
        _plain_pair("The capital is Paris.", "It rains in Oslo."),
    ]
    assert _check(native, python, generated) == 2
    built = native.build([_joined(p, native=True) for p in generated])
    assert [c.delta_s_embedder for c in built] == [minilm.name] * 3
    assert [c.delta_s for c in built][:2] == [0.0, None]
    assert built[2].delta_s is not None
    assert built[2].delta_s > 0.3


def _native_builds(shadow: str, guard: Any) -> bool:
    """Whether the native path builds the pair (prod answered "x", the candidate ``shadow``) when
    its config is given ``guard`` as the sanitizer's hints."""
    assert NATIVE_PLAIN is not None
    config_type, build_plain = NATIVE_PLAIN
    config = config_type(None, None, "[", [], _template(), guard)  # "[": the citation pattern's
    joined = _joined(_plain_pair("x", shadow), native=True)
    return build_plain(joined.envelope, joined.result, config) is not None  # type: ignore[arg-type]


def test_the_native_guard_is_the_sanitizers_own_hints() -> None:
    """The native path keeps no copy of the hints: change what the sanitizer hands over and the
    native decision follows."""
    minimum, hints, any_case, ascii_fold, runs = MASK_GUARD
    assert _native_builds("a quiet zz answer", MASK_GUARD)
    assert not _native_builds("a quiet zz answer", (minimum, [*hints, "zz"], any_case, ascii_fold, runs))
    assert not _native_builds("a QuoTe answer", (minimum, hints, [*any_case, "quote"], ascii_fold, runs))
    assert not _native_builds("a QuIcK answer", (minimum, hints, any_case, [*ascii_fold, "quick"], runs))
    assert not _native_builds("one 23 six", (minimum, hints, any_case, ascii_fold, [*runs, (2, "")]))
    assert _native_builds("tiny", MASK_GUARD)
    assert not _native_builds("tiny", (3, [*hints, "t"], any_case, ascii_fold, runs))
    assert not _native_builds("55/123/45", (minimum, hints, any_case, ascii_fold, [*runs, (6, "/")]))
    assert _native_builds("55/123/45", MASK_GUARD)


@pytest.mark.parametrize(
    "guard",
    [
        (6, ["_", "é"], [], [], [(9, "().-")]),  # a non-ASCII hint would need Python's character rules
        (6, ["_"], ["token"], [], [(9, "().-")]),  # 'k': the Kelvin sign lowercases to it
        (6, ["_"], ["Bearer"], [], [(9, "().-")]),  # not lowercase
        (6, ["_"], [], ["Token"], [(9, "().-")]),  # not lowercase
        (6, ["_"], [], [], [(0, "().-")]),
    ],
)
def test_the_native_config_refuses_hints_it_cannot_match_as_python_does(guard: Any) -> None:
    assert NATIVE_PLAIN is not None
    with pytest.raises(ValueError):  # noqa: PT011 (the messages differ per hint)
        NATIVE_PLAIN[0](None, None, None, [], _template(), guard)


@pytest.mark.parametrize("status", ["ok", "error"])
@pytest.mark.parametrize("answer", ["Paris", "word " * 60, "é" * 250, None])
def test_a_replay_without_calls_against_prod_tool_steps_misses_the_first_step_natively(
    status: Literal["ok", "error"], answer: str | None
) -> None:
    """Prod's two recorded calls, a replay that answered at once: ``missing_step`` at step 1 when
    it finished (its answer cut to ``agent_steps.MAX_TEXT``), step counts only when it failed."""
    # two recorded tool calls; a non-ASCII answer is plain only when it equals prod's
    env = envelope(1, answer=answer if answer is not None and not answer.isascii() else None)
    res = ShadowResult(
        req_hash=env.req_hash, req_id=env.req_id, candidate="cand", shadow_id="s", ts_ms=1,
        status=status, error_class="timeout" if status == "error" else None, answer=answer, latency_ms=12.0,
    )  # fmt: skip
    native, python = builders(embedder=False)
    pair: Pair = (env, res, {"cand": res})
    assert _check(native, python, [pair]) == 1
    (c,) = python.build([_joined(pair, native=False)])
    assert (c.prod_steps, c.shadow_steps) == (2, 0)
    if status == "ok":
        assert (c.first_divergent_step, c.divergence_kind, c.divergence_tool) == (
            1,
            "missing_step",
            "lookup_conjugation",
        )
        assert c.divergence_prod is not None
        assert c.divergence_prod.startswith("lookup_conjugation({")
        assert c.divergence_shadow == cut(answer)
    else:
        assert c.first_divergent_step is None
        assert c.divergence_kind is None
