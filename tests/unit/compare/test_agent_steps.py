"""The first divergent step of an agent run (``shadowlane.compare.agent_steps``): every kind, the
step numbering, the answer rule, and the fields a comparison gets."""

from __future__ import annotations

import pytest

from shadowlane.compare.agent_steps import (
    AGENT_FIELDS,
    MAX_TEXT,
    Divergence,
    Step,
    agent_fields,
    answers_differ,
    cut,
    first_divergence,
)
from shadowlane.compare.quality import tool_key
from shadowlane.contracts.comparison import Comparison

LOOKUP = tool_key("lookup", {"verb": "go", "tense": "past"})
EXAMPLES = tool_key("examples", {"tense": "past", "verb": "go"})
SAVE = tool_key("save", {"student": "s1"})
PROD = (LOOKUP, EXAMPLES, SAVE)


def test_runs_that_agree_on_every_step_and_the_answer_never_diverge() -> None:
    assert first_divergence(PROD, list(PROD), answers_differ=False) is None
    assert first_divergence((), (), answers_differ=False) is None


def test_another_tool_at_step_two_is_a_tool_name_divergence() -> None:
    got = first_divergence(PROD, [LOOKUP, SAVE, SAVE], answers_differ=False)
    assert got == Divergence(
        2, "tool_name", "examples", 'examples({"tense":"past","verb":"go"})', 'save({"student":"s1"})'
    )


def test_the_same_tool_with_other_canonical_arguments_is_a_tool_args_divergence() -> None:
    other = tool_key("examples", {"verb": "go", "tense": "present"})
    got = first_divergence(PROD, [LOOKUP, other, SAVE], answers_differ=True)
    assert got is not None
    assert (got.step, got.kind, got.tool) == (2, "tool_args", "examples")
    assert got.shadow == 'examples({"tense":"present","verb":"go"})'


def test_argument_order_is_not_a_divergence() -> None:
    reordered = tool_key("examples", {"verb": "go", "tense": "past"})  # canonical: keys sorted
    assert first_divergence(PROD, [LOOKUP, reordered, SAVE], answers_differ=False) is None


def test_the_first_difference_wins_over_later_ones() -> None:
    got = first_divergence(PROD, [tool_key("other", {}), SAVE], answers_differ=True)
    assert got is not None
    assert (got.step, got.kind) == (1, "tool_name")


def test_a_call_where_prod_had_answered_is_an_extra_step() -> None:
    got = first_divergence(PROD, [*PROD, SAVE], False, prod_answer="Went.", shadow_answer="Went.")
    assert got == Divergence(4, "extra_step", "save", "Went.", 'save({"student":"s1"})')


def test_a_candidate_that_calls_tools_where_prod_called_none_diverges_at_step_one() -> None:
    got = first_divergence((), [LOOKUP], False, prod_answer="Went.")
    assert got is not None
    assert (got.step, got.kind, got.tool, got.prod) == (
        1,
        "extra_step",
        "lookup",
        "Went.",
    )


def test_an_answer_where_prod_still_called_a_tool_is_a_missing_step() -> None:
    got = first_divergence(PROD, [LOOKUP], False, prod_answer="Went.", shadow_answer="Goed.")
    assert got == Divergence(2, "missing_step", "examples", 'examples({"tense":"past","verb":"go"})', "Goed.")
    none = first_divergence(PROD, [], False, shadow_answer="Goed.")
    assert none is not None
    assert (none.step, none.kind, none.tool) == (1, "missing_step", "lookup")


def test_differing_answers_after_agreeing_steps_diverge_at_the_step_after_the_tools() -> None:
    got = first_divergence(PROD, PROD, True, prod_answer="I went.", shadow_answer="I goed.")
    assert got == Divergence(4, "answer", None, "I went.", "I goed.")
    assert first_divergence((), (), True, "a", "b") == Divergence(1, "answer", None, "a", "b")
    assert first_divergence(PROD, PROD, None) is None  # answers that cannot be judged


@pytest.mark.parametrize(
    ("delta_s", "exact", "threshold", "want"),
    [
        (0.41, False, 0.40, True),  # beyond λ's cut-off: another answer
        (0.40, False, 0.40, False),  # a paraphrase, not a divergence
        (0.0, True, 0.40, False),
        (None, False, 0.40, True),  # no embedder: the normalised texts differ
        (None, True, 0.40, False),
        (None, None, 0.40, None),  # an answer is missing
    ],
)
def test_answers_differ_beyond_the_lambda_threshold_else_by_text(
    delta_s: float | None, exact: bool | None, threshold: float, want: bool | None
) -> None:
    assert answers_differ(delta_s, exact, threshold) is want


def test_cut_keeps_short_texts_and_ends_long_ones_with_an_ellipsis() -> None:
    assert cut("short") == "short"
    assert cut(None) is None
    long = "é" * (MAX_TEXT + 5)
    assert cut(long) == "é" * (MAX_TEXT - 1) + "…"
    assert len(cut(long) or "") == MAX_TEXT
    assert cut("x" * MAX_TEXT) == "x" * MAX_TEXT


def _mask(text: str | None) -> str | None:
    return None if text is None else text.replace("s1", "[ID]")


def test_agent_fields_follow_the_contract_and_mask_the_candidates_call() -> None:
    assert tuple(AGENT_FIELDS) == tuple(name for name in Comparison.model_fields if name in set(AGENT_FIELDS))
    none = agent_fields((), (), True, True, "a", "b", _mask)
    assert list(none) == list(AGENT_FIELDS)
    assert set(none.values()) == {None}
    shadow: list[Step] = [LOOKUP, SAVE]
    got = agent_fields(PROD, shadow, True, False, "p", "s", _mask)
    assert got == {
        "prod_steps": 3,
        "shadow_steps": 2,
        "first_divergent_step": 2,
        "divergence_kind": "tool_name",
        "divergence_tool": "examples",
        "divergence_prod": 'examples({"tense":"past","verb":"go"})',
        "divergence_shadow": 'save({"student":"[ID]"})',  # the candidate's arguments masked
    }
    assert list(got) == list(AGENT_FIELDS)


def test_an_unfinished_replay_gets_its_step_counts_only() -> None:
    got = agent_fields(PROD, [LOOKUP], False, None, "p", None, _mask)
    assert got == {**dict.fromkeys(AGENT_FIELDS), "prod_steps": 3, "shadow_steps": 1}


def test_long_answers_are_cut() -> None:
    got = agent_fields(PROD, PROD, True, True, "p" * 500, "s" * 500, _mask)
    assert got["first_divergent_step"] == 4
    assert got["divergence_prod"] == "p" * (MAX_TEXT - 1) + "…"
    assert got["divergence_shadow"] == "s" * (MAX_TEXT - 1) + "…"
