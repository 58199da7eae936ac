"""ComparisonBuilder's agent-replay fields: prod's recorded tool calls against the replay's, in
order, with the answer judged by ΔS beyond ``lambda_threshold`` (text without an embedder), the
candidate's side masked, and an unfinished replay not judged."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from shadowlane.compare.join import Joined
from shadowlane.compare.prod_side import ProdSide
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.contracts.shadow_result import ShadowResult, ShadowToolCall
from shadowlane.settings import CompareSettings
from tests.support.contracts import CheckedBuilder
from tests.support.factories import envelope, result


class TwoWayEmbedder:
    """Texts containing "apple" point one way, everything else the orthogonal way (ΔS 0 or 1)."""

    name = "two-way"

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return np.array([[1.0, 0.0] if "apple" in t else [0.0, 1.0] for t in texts], dtype=np.float32)


def _calls(env: RequestEnvelope, **overrides: dict[str, Any]) -> tuple[ShadowToolCall, ...]:
    """The replay's calls: prod's recorded ones, with the arguments of the tools named overridden."""
    return tuple(
        ShadowToolCall(
            name=c.name, arguments=overrides.get(c.name, c.arguments), disposition="stubbed_recorded"
        )
        for c in env.tool_io
    )


def _build(env: RequestEnvelope, res: ShadowResult, *, embedder: TwoWayEmbedder | None = None) -> Comparison:
    builder = CheckedBuilder(embedder, CompareSettings(candidates=("cand",), baseline_candidate=None))
    return builder.build([Joined(ProdSide.of(env), res, [])])[0]


def test_a_replay_that_repeats_prods_steps_and_answer_never_diverges() -> None:
    env = envelope(1)
    c = _build(env, result(env).model_copy(update={"tool_calls": _calls(env)}))
    assert (c.prod_steps, c.shadow_steps) == (2, 2)
    assert c.first_divergent_step is None
    assert c.divergence_kind is None


def test_other_arguments_at_step_two_are_reported_with_the_candidates_side_masked() -> None:
    env = envelope(1)
    args = {"student_id": "ann@example.com", "verb": "go"}
    c = _build(env, result(env).model_copy(update={"tool_calls": _calls(env, save_progress=args)}))
    assert (c.first_divergent_step, c.divergence_kind, c.divergence_tool) == (2, "tool_args", "save_progress")
    verb = env.tool_io[1].arguments["verb"]
    assert c.divergence_prod == f'save_progress({{"student_id":"s001","verb":"{verb}"}})'
    assert c.divergence_shadow is not None
    assert c.divergence_shadow.startswith("save_progress(")
    assert "ann@example.com" not in c.divergence_shadow  # masked as the candidate's answers are


def test_the_answer_diverges_beyond_the_lambda_threshold_only() -> None:
    env = envelope(1, answer="an apple a day")
    calls = {"tool_calls": _calls(env)}
    close = _build(
        env, result(env, answer="an apple, daily").model_copy(update=calls), embedder=TwoWayEmbedder()
    )
    assert close.delta_s == 0.0
    assert close.exact_match is False
    assert close.first_divergent_step is None  # a paraphrase: no divergence
    far = _build(env, result(env, answer="a pear").model_copy(update=calls), embedder=TwoWayEmbedder())
    assert far.delta_s == 1.0
    assert (far.first_divergent_step, far.divergence_kind, far.divergence_tool) == (3, "answer", None)
    assert (far.divergence_prod, far.divergence_shadow) == ("an apple a day", "a pear")


def test_without_an_embedder_the_answer_is_judged_by_its_normalised_text() -> None:
    env = envelope(1, answer="I went home.")
    calls = {"tool_calls": _calls(env)}
    same = _build(env, result(env, answer="i  WENT home.").model_copy(update=calls))
    assert same.first_divergent_step is None
    other = _build(env, result(env, answer="I goed home.").model_copy(update=calls))
    assert (other.first_divergent_step, other.divergence_kind) == (3, "answer")


def test_a_replay_that_answers_without_tools_misses_prods_first_step() -> None:
    env = envelope(1)
    c = _build(env, result(env, answer="Corrected: something"))
    assert (c.prod_steps, c.shadow_steps, c.first_divergent_step) == (2, 0, 1)
    assert (c.divergence_kind, c.divergence_tool) == ("missing_step", "lookup_conjugation")
    assert c.divergence_shadow == "Corrected: something"


def test_an_extra_call_after_prods_last_step_is_an_extra_step() -> None:
    env = envelope(1)
    extra = ShadowToolCall(name="lookup_conjugation", arguments={"verb": "be"}, disposition="no_stub")
    c = _build(env, result(env).model_copy(update={"tool_calls": (*_calls(env), extra)}))
    assert (c.prod_steps, c.shadow_steps, c.first_divergent_step, c.divergence_kind) == (
        2,
        3,
        3,
        "extra_step",
    )
    assert c.divergence_prod == env.prod.answer  # prod had answered at that step
    assert c.divergence_shadow == 'lookup_conjugation({"verb":"be"})'


def test_a_failed_replay_gets_step_counts_but_is_not_judged() -> None:
    env = envelope(1)
    failed = result(env).model_copy(
        update={"status": "error", "error_class": "timeout", "answer": None, "tool_calls": _calls(env)[:1]}
    )
    c = _build(env, failed)
    assert (c.prod_steps, c.shadow_steps, c.first_divergent_step, c.divergence_kind) == (2, 1, None, None)


def test_no_tools_on_either_side_leaves_the_agent_fields_unset() -> None:
    env = envelope(1).model_copy(update={"tool_io": ()})
    c = _build(env, result(env, answer="other"))
    assert c.prod_steps is None
    assert c.shadow_steps is None
    assert c.first_divergent_step is None
