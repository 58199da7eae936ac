"""Per-request quality metrics without embeddings: coverage, citations, cost, grading, λ, tools."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowlane.compare import quality as q
from shadowlane.contracts.shadow_result import ShadowResult, ShadowToolCall, StabilitySample
from shadowlane.hashing import canonical_json
from shadowlane.settings import CompareSettings, ModelPrice

PATTERN = re.compile(CompareSettings().citation_pattern)
PRICES = {"big": ModelPrice(input_per_mtok=3.0, output_per_mtok=15.0)}


def _result(**update: Any) -> ShadowResult:
    base = ShadowResult(
        req_hash="0" * 32,
        req_id="r-1",
        candidate="cand",
        shadow_id="s-1",
        ts_ms=1_000,
        status="ok",
        answer="an answer",
        latency_ms=10.0,
    )
    return base.model_copy(update=update)


def _call(name: str, arguments: dict[str, Any] | str, valid: bool | None) -> ShadowToolCall:
    return ShadowToolCall(name=name, arguments=arguments, disposition="stubbed_recorded", schema_valid=valid)


def _prod_key(name: str, arguments: dict[str, Any]) -> tuple[str, str]:
    """The form ProdSide stores a recorded prod call in."""
    return name, canonical_json(arguments).decode()


def _grader(kind: str, max_delta_s: float = 0.05) -> q.Grader:
    return q.Grader(CompareSettings(grader=kind, solved_max_delta_s=max_delta_s))  # type: ignore[arg-type]


# ---------------------------------------------------------------------- coverage / citations
@pytest.mark.parametrize(
    ("target", "cited", "expected"),
    [
        (("a", "b", "c", "d"), ("b", "d", "x"), 0.5),
        (("a", "b"), ("a", "b"), 1.0),
        (("a", "b", "c"), (), 0.0),
        (("a", "a", "b"), ("a",), 0.5),  # target ids count once
        (("a",), ("z", "a", "a"), 1.0),
    ],
)
def test_coverage_is_share_of_target_ids_cited(
    target: tuple[str, ...], cited: tuple[str, ...], expected: float
) -> None:
    assert q.coverage(target, cited) == pytest.approx(expected)


def test_coverage_without_target_is_none() -> None:
    assert q.coverage((), ("a", "b")) is None
    assert q.coverage([], []) is None


def test_cited_ids_merges_explicit_ids_and_regex_hits_in_order_without_duplicates() -> None:
    text = "See [doc:42] and [cite:a-1], again [doc:42], also [src:x9] but not [doc: 7] or [ref:3]."
    assert q.cited_ids(text, ("e1", "a-1", "e1"), PATTERN) == ("e1", "a-1", "42", "x9")


def test_cited_ids_without_text_keeps_explicit_ids() -> None:
    assert q.cited_ids(None, ("b", "a"), PATTERN) == ("b", "a")
    assert q.cited_ids("", (), PATTERN) == ()
    assert q.cited_ids("no citations here", (), PATTERN) == ()


def test_cited_ids_uses_the_configured_pattern() -> None:
    custom = re.compile(CompareSettings(citation_pattern=r"<<(\w+)>>").citation_pattern)
    assert q.cited_ids("x <<p1>> [doc:42] <<p2>>", (), custom) == ("p1", "p2")


# ---------------------------------------------------------------------- cost
def test_cost_is_prompt_and_completion_tokens_times_price_per_million() -> None:
    cost = q.cost_usd("big", 1_000, 500, PRICES)
    assert cost == pytest.approx((1_000 * 3.0 + 500 * 15.0) / 1e6)
    assert q.cost_usd("big", 0, 0, PRICES) == 0.0
    assert q.cost_usd("big", 2_000_000, 0, PRICES) == pytest.approx(6.0)


@pytest.mark.parametrize(
    ("model", "prompt", "completion"),
    [("unknown", 10, 10), (None, 10, 10), ("big", None, 10), ("big", 10, None)],
)
def test_cost_is_none_when_unpriced_or_usage_missing(
    model: str | None, prompt: int | None, completion: int | None
) -> None:
    assert q.cost_usd(model, prompt, completion, PRICES) is None


# ---------------------------------------------------------------------- grading
def test_grader_name_carries_kind_and_version() -> None:
    assert _grader("contains").name == "contains@1"
    assert _grader("exact").name == "exact@1"
    assert _grader("delta_s").name == "delta_s@1"


def test_contains_grader_normalises_case_and_whitespace() -> None:
    g = _grader("contains")
    assert g.solved("The answer is  PARIS,\nfrance.", "paris, France", None) is True
    assert g.solved("The answer is Lyon.", "Paris", None) is False


def test_exact_grader_needs_equal_normalised_text() -> None:
    g = _grader("exact")
    assert g.solved("  Paris\n", "paris", None) is True
    assert g.solved("Paris, France", "Paris", None) is False


def test_delta_s_grader_uses_the_cutoff_inclusively() -> None:
    g = _grader("delta_s", max_delta_s=0.1)
    assert g.solved("whatever", "gold", 0.1) is True
    assert g.solved("whatever", "gold", 0.05) is True
    assert g.solved("whatever", "gold", 0.1001) is False
    assert g.solved("whatever", "gold", None) is None  # no ΔS to grade with


@pytest.mark.parametrize("kind", ["contains", "exact", "delta_s"])
def test_grader_without_gold_is_none_and_without_answer_is_false(kind: str) -> None:
    g = _grader(kind)
    assert g.solved("anything", None, 0.0) is None
    assert g.solved(None, None, None) is None
    assert g.solved(None, "gold", 0.0) is False


# ---------------------------------------------------------------------- λ
def test_lambda_texts_keeps_ok_samples_with_answers_in_order() -> None:
    res = _result(
        stability=(
            StabilitySample(variant="seed:1", seed=1, status="ok", answer="one"),
            StabilitySample(variant="seed:2", seed=2, status="error", error_class="timeout"),
            StabilitySample(variant="paraphrase:0", status="ok", answer=None),
            StabilitySample(variant="paraphrase:1", status="ok", answer="two"),
            StabilitySample(variant="seed:3", seed=3, status="error", answer="partial"),
        )
    )
    assert q.lambda_texts(res) == ["one", "two"]


def test_lambda_pairs_are_all_unordered_pairs() -> None:
    assert q.lambda_pairs(["a", "b", "c"]) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert q.lambda_pairs(["a"]) == []


@pytest.mark.parametrize(
    ("pairwise", "threshold", "expected"),
    [
        ([0.1, 0.2, 0.3], 0.4, ("convergent", 0.3)),
        ([0.1, 0.41, 0.2], 0.4, ("divergent", 0.41)),
        ([0.4, 0.4], 0.4, ("convergent", 0.4)),  # boundary: ≤ threshold converges
        ([0.0], 0.0, ("convergent", 0.0)),
        ([0.0, 1e-9], 0.0, ("divergent", 1e-9)),
    ],
)
def test_lambda_state_is_convergent_iff_max_pairwise_within_threshold(
    pairwise: list[float], threshold: float, expected: tuple[str, float]
) -> None:
    assert q.lambda_state(pairwise, threshold) == expected


def test_lambda_state_without_pairs_is_unknown() -> None:
    assert q.lambda_state([], 0.4) == (None, None)


# ---------------------------------------------------------------------- tools
def test_tool_stats_counts_valid_and_prod_matched_calls() -> None:
    prod = frozenset({_prod_key("lookup", {"verb": "go", "tense": "past"}), _prod_key("save", {"id": 1})})
    res = _result(
        tool_calls=(
            _call("lookup", {"tense": "past", "verb": "go"}, True),  # prod call, other key order
            _call("save", {"id": 2}, True),  # other arguments: not matched
            _call("lookup", {"verb": "go", "tense": "past"}, False),  # matched though invalid
            _call("unknown", {}, None),  # not offered: neither valid nor matched
        )
    )
    stats = q.tool_stats(res, prod)
    assert (stats.calls, stats.valid, stats.matched_prod) == (4, 2, 2)
    assert stats.success == 0.5


def test_tool_stats_matches_nested_arguments_in_any_key_order() -> None:
    prod = frozenset({_prod_key("search", {"q": "x", "filters": {"a": 1, "b": [1, 2]}})})
    res = _result(tool_calls=(_call("search", {"filters": {"b": [1, 2], "a": 1}, "q": "x"}, True),))
    assert q.tool_stats(res, prod).matched_prod == 1


def test_tool_stats_name_must_match_too() -> None:
    prod = frozenset({_prod_key("lookup", {"verb": "go"})})
    res = _result(tool_calls=(_call("other", {"verb": "go"}, True),))
    assert q.tool_stats(res, prod).matched_prod == 0


def test_tool_success_is_none_without_calls() -> None:
    stats = q.tool_stats(_result(), frozenset())
    assert (stats.calls, stats.valid, stats.matched_prod) == (0, 0, 0)
    assert stats.success is None


def test_tool_key_of_string_arguments_is_the_raw_string() -> None:
    assert q.tool_key("f", "not json") == ("f", "not json")
    assert q.tool_key("f", {"b": 1, "a": 2}) == ("f", '{"a":2,"b":1}')


_PATTERNS = [
    r"\[(?:doc|src|cite):([^\]\s]+)\]",  # the default
    r"\((\w+)\)",
    r"(?i)\[doc:(\w+)\]",
    r"doc-(\d+)",
    r"(doc|src)-(\d+)",
    r"x*\[(\w)\]",
]


@pytest.mark.parametrize("pattern", _PATTERNS)
@given(text=st.text(alphabet="[]()docsrcDOC:-x 0123456789é", max_size=40))
@settings(max_examples=200, deadline=None)
def test_the_citation_guard_never_changes_what_is_found(pattern: str, text: str) -> None:
    compiled = re.compile(pattern)
    guard = q.first_literal(compiled)
    assert q.cited_ids(text, ("e",), compiled, guard) == q.cited_ids(text, ("e",), compiled)


def test_first_literal_is_only_given_for_a_case_sensitive_leading_literal() -> None:
    assert [q.first_literal(re.compile(p)) for p in _PATTERNS] == ["[", "(", None, "d", None, None]
    assert q.first_literal(re.compile("abc", re.IGNORECASE)) is None


def test_tool_arguments_past_64_bits_get_a_key_instead_of_crashing() -> None:
    name, key = q.tool_key("t", {"b": 2**70, "a": 1})
    assert (name, key) == ("t", '{"a":1,"b":1180591620717411303424}')
    assert q.tool_key("t", {"b": 2, "a": 1}) == ("t", '{"a":1,"b":2}')
