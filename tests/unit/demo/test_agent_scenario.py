"""The demo's agent scenario: three tool steps, one per turn, and model B's step-2 slip on a fixed
share of sentences; the comparator reports that slip as step 2 of the run."""

from __future__ import annotations

from typing import Any

import orjson

from shadowlane.compare.join import Joined
from shadowlane.compare.prod_side import ProdSide
from shadowlane.contracts.envelope import RecordedToolCall
from shadowlane.contracts.shadow_result import ShadowToolCall
from shadowlane.demo.grammar import eval_set, parse_sentence
from shadowlane.demo.model_server import AGENT_PREFIX, PREFIX, ModelBehaviour, reply, slips
from shadowlane.demo.prod_service import Gradebook, run_tool
from shadowlane.demo.run import DemoOptions, candidate_model
from shadowlane.settings import CompareSettings
from tests.support.contracts import CheckedBuilder
from tests.support.factories import envelope, result


def _run(behaviour: ModelBehaviour, sentence: str, prefix: str = AGENT_PREFIX) -> tuple[list[Any], str]:
    """The model's tool loop on one request, tools run by the prod handler: (calls, answer)."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a grammar tutor for student s007."},
        {"role": "user", "content": prefix + sentence},
    ]
    calls: list[tuple[str, dict[str, Any]]] = []
    for _ in range(5):
        message, _cited = reply(behaviour, messages)
        if not message.get("tool_calls"):
            return calls, str(message["content"])
        messages.append(message)
        for call in message["tool_calls"]:
            name, args = call["function"]["name"], orjson.loads(call["function"]["arguments"])
            calls.append((name, args))
            output = orjson.dumps(run_tool(name, args, Gradebook())).decode()
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": output})
    raise AssertionError("the tool loop did not end")


def test_the_agent_scenario_takes_three_steps_one_per_turn() -> None:
    item = eval_set(1)[0]
    verb, tense, person = parse_sentence(item.sentence) or ("", "", "")
    calls, answer = _run(ModelBehaviour("grammar-a"), item.sentence)
    assert calls == [
        ("lookup_conjugation", {"verb": verb, "tense": tense, "person": person}),
        ("find_examples", {"verb": verb, "tense": tense}),
        ("save_progress", {"student_id": "s007", "verb": verb}),
    ]
    assert item.correct in answer
    # the tutor's usual request: both calls in one turn
    plain, _ = _run(ModelBehaviour("grammar-a"), item.sentence, PREFIX)
    assert [name for name, _ in plain] == ["lookup_conjugation", "save_progress"]


def test_a_model_that_slips_asks_step_two_for_the_other_tense_and_then_goes_on() -> None:
    item = next(i for i in eval_set(20) if i.tense == "past")
    calls, answer = _run(ModelBehaviour("grammar-b", agent_slip=1.0), item.sentence)
    assert calls[1] == ("find_examples", {"verb": item.verb, "tense": "present"})
    assert [name for name, _ in calls] == ["lookup_conjugation", "find_examples", "save_progress"]
    assert item.correct in answer
    examples = run_tool("find_examples", calls[1][1], Gradebook())["examples"]
    assert len(examples) == 2


def test_model_b_slips_on_a_fixed_share_of_sentences_and_model_a_never() -> None:
    b = candidate_model(DemoOptions())
    sentences = [i.sentence for i in eval_set(200)]
    share = sum(slips(b, s) for s in sentences) / len(sentences)
    assert 0.2 < share < 0.5
    assert [slips(b, s) for s in sentences] == [slips(b, s) for s in sentences]  # fixed per sentence
    assert not any(slips(ModelBehaviour("grammar-a"), s) for s in sentences)


def test_the_comparator_reports_the_slip_as_step_two() -> None:
    b = candidate_model(DemoOptions())
    item = next(i for i in eval_set(200) if slips(b, i.sentence))
    prod_calls, prod_answer = _run(ModelBehaviour("grammar-a"), item.sentence)
    cand_calls, cand_answer = _run(ModelBehaviour("grammar-b", agent_slip=1.0), item.sentence)
    env = envelope(3, answer=prod_answer).model_copy(
        update={"tool_io": tuple(RecordedToolCall(name=n, arguments=a, output="{}") for n, a in prod_calls)}
    )
    res = result(env, answer=cand_answer).model_copy(
        update={
            "tool_calls": tuple(
                ShadowToolCall(name=n, arguments=a, disposition="stubbed_recorded") for n, a in cand_calls
            )
        }
    )
    builder = CheckedBuilder(None, CompareSettings(candidates=("cand",), baseline_candidate=None))
    (c,) = builder.build([Joined(ProdSide.of(env), res, [])])
    assert (c.prod_steps, c.shadow_steps) == (3, 3)
    assert (c.first_divergent_step, c.divergence_kind, c.divergence_tool) == (2, "tool_args", "find_examples")
    assert c.divergence_prod == f'find_examples({{"tense":"{item.tense}","verb":"{item.verb}"}})'
