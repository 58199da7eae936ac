"""ComparisonBuilder: field semantics, and its records meet the contract."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from shadowlane.compare import quality as q
from shadowlane.compare.build import tool_agreement
from shadowlane.compare.embed_cache import CachingEmbedder
from shadowlane.compare.embed_onnx import MiniLMEmbedder
from shadowlane.compare.join import Expired, Joined, Output
from shadowlane.compare.prod_side import ProdSide
from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.shadow_result import ShadowToolCall
from tests.support.contracts import CheckedBuilder
from tests.support.factories import envelope, result


class FakeEmbedder:
    """Texts containing "apple" point one way, everything else the orthogonal way."""

    name = "fake"

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        return np.array([[1.0, 0.0] if "apple" in t else [0.0, 1.0] for t in texts], dtype=np.float32)


def test_joined_and_expired_comparisons_validate_against_the_contract() -> None:
    env = envelope(1)
    same = result(env)
    other = result(envelope(2), answer="an apple a day")
    embedder = FakeEmbedder()
    builder = CheckedBuilder(embedder)
    outputs: list[Output] = [
        Joined(ProdSide.of(env), same, []),
        Joined(ProdSide.of(envelope(2)), other, []),
        Expired("shadow_timeout", "cand", env.req_hash, ProdSide.of(env), None, []),
        Expired("request_missing", "cand", other.req_hash, None, other, []),
    ]
    assert builder.needs_embedding(builder.prepare(outputs))
    comps = builder.build(outputs)
    for comp in comps:
        assert decode(encode(comp), Comparison) == comp  # round-trips through the wire contract
    assert comps[0].exact_match is True
    assert comps[0].delta_s == 0.0
    assert comps[1].exact_match is False
    assert comps[1].delta_s == 1.0  # orthogonal embeddings
    assert embedder.calls == 1  # one batch for the whole poll
    assert [c.outcome for c in comps] == ["joined", "joined", "shadow_timeout", "request_missing"]
    assert comps[2].complete is False
    assert comps[2].prod_latency_ms == env.prod.latency_ms
    assert comps[3].shadow_status == "ok"
    assert comps[0].comparison_id != comps[1].comparison_id


def test_shadow_answer_is_masked_before_comparing() -> None:
    env = envelope(3, answer="Write to anna@example.org")
    assert env.prod.answer is not None
    res = result(env, answer="Write to anna@example.org")
    comps = CheckedBuilder(None).build([Joined(ProdSide.of(env), res, [])])
    assert comps[0].exact_match is False  # the envelope's prod answer was not masked in this factory
    masked_env = env.model_copy(update={"prod": env.prod.model_copy(update={"answer": "Write to <email>"})})
    comps = CheckedBuilder(None).build([Joined(ProdSide.of(masked_env), res, [])])
    assert comps[0].exact_match is True
    assert comps[0].delta_s is None  # no embedder: ΔS is off, even for equal answers


def test_without_embedder_delta_s_is_none_even_for_identical_answers() -> None:
    env = envelope(5)
    outputs: list[Output] = [
        Joined(ProdSide.of(env), result(env), []),  # the factory's shadow answers as prod did
        Joined(ProdSide.of(envelope(6)), result(envelope(6), answer="an apple a day"), []),
    ]
    builder = CheckedBuilder(None)
    assert builder.needs_embedding(builder.prepare(outputs)) is False
    same, other = builder.build(outputs)
    assert (same.exact_match, same.delta_s) == (True, None)
    assert (other.exact_match, other.delta_s) == (False, None)
    assert same.lambda_state is None
    with_embedder = CheckedBuilder(FakeEmbedder()).build(outputs[:1])[0]
    assert (with_embedder.exact_match, with_embedder.delta_s) == (True, 0.0)


def test_tool_agreement_and_dispositions() -> None:
    env = envelope(4)
    lookup = env.tool_io[0]
    res = result(env).model_copy(
        update={
            "tool_calls": (
                ShadowToolCall(name=lookup.name, arguments=lookup.arguments, disposition="stubbed_recorded"),
                ShadowToolCall(name="save_progress", arguments={"x": 1}, disposition="blocked"),
            )
        }
    )
    comp = CheckedBuilder(None).build([Joined(ProdSide.of(env), res, [])])[0]
    assert comp.tool_agreement == 1 / 3  # {lookup} shared of {lookup, save(prod args), save(x=1)}
    assert comp.tools_stubbed == 1
    assert comp.tools_blocked == 1
    assert comp.status_pair == "200/ok"
    assert comp.latency_delta_ms == res.latency_ms - env.prod.latency_ms


def test_a_replay_without_tool_calls_gets_what_the_tool_helpers_say() -> None:
    """The builder skips the tool helpers for a replay without tool calls: its fixed answers
    must be theirs, with and without recorded prod calls."""
    with_tools = envelope(5)
    without_tools = with_tools.model_copy(update={"tool_io": ()})
    for env in (with_tools, without_tools):
        side, res = ProdSide.of(env), result(env)
        assert not res.tool_calls
        comp = CheckedBuilder(None).build([Joined(side, res, [])])[0]
        stats = q.tool_stats(res, side.tool_keys)
        assert comp.tool_agreement == tool_agreement(side, res)
        assert (comp.tool_calls, comp.tool_valid, comp.tool_matched_prod, comp.tool_success) == (
            stats.calls, stats.valid, stats.matched_prod, stats.success,
        )  # fmt: skip
        assert (comp.tools_stubbed, comp.tools_blocked) == (0, 0)
    assert [c.tool_agreement for c in CheckedBuilder(None).build(
        [Joined(ProdSide.of(e), result(e), []) for e in (with_tools, without_tools)]
    )] == [0.0, None]  # fmt: skip


def test_breakdown_buckets_travel_from_the_envelope_to_every_comparison() -> None:
    env = envelope(8).model_copy(update={"buckets": {"tense": "past", "person": "3s"}})
    side = ProdSide.of(env)
    joined, timed_out = CheckedBuilder(None).build(
        [Joined(side, result(env), []), Expired("shadow_timeout", "other", env.req_hash, side, None, [])]
    )
    assert joined.buckets == timed_out.buckets == {"tense": "past", "person": "3s"}


def test_each_comparison_names_the_embedder_that_defines_its_delta_s() -> None:
    """Joined comparisons built with an embedder name it (through the cache, the inner model's
    name), also where ΔS is 0 without embedding (equal after normalisation) or could not be
    computed (no shadow answer); without an embedder, and on incomplete comparisons, None."""
    env, other, failed = envelope(9), envelope(10), envelope(11)
    assert env.prod.answer is not None
    no_answer = result(failed).model_copy(
        update={"status": "error", "error_class": "timeout", "answer": None}
    )
    outputs: list[Output] = [
        Joined(ProdSide.of(env), result(env, answer="  " + env.prod.answer.upper()), []),
        Joined(ProdSide.of(other), result(other, answer="The weather in Oslo is rainy today."), []),
        Joined(ProdSide.of(failed), no_answer, []),
        Expired("shadow_timeout", "cand", env.req_hash, ProdSide.of(env), None, []),
        Expired("request_missing", "late", other.req_hash, None, result(other, "late"), []),
    ]
    minilm = MiniLMEmbedder()
    cached = CachingEmbedder(minilm)
    equal, differs, errored, timed_out, missing = CheckedBuilder(cached).build(outputs)
    assert cached.name == minilm.name == "all-MiniLM-L6-v2-onnx-int8"
    assert (equal.exact_match, equal.delta_s, equal.delta_s_embedder) == (True, 0.0, minilm.name)
    assert differs.delta_s is not None
    assert differs.delta_s > 0.3
    assert differs.delta_s_embedder == minilm.name
    assert (errored.delta_s, errored.delta_s_embedder) == (None, minilm.name)
    assert (timed_out.delta_s_embedder, missing.delta_s_embedder) == (None, None)
    assert [c.delta_s_embedder for c in CheckedBuilder(None).build(outputs)] == [None] * 5
