"""workers/demo: the grammar-tutor model's phrasing, instability, paraphrases and citations."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shadowlane.demo.grammar import citation_id, eval_set
from shadowlane.demo.model_server import (
    NO_SENTENCE,
    PARAPHRASE_PREFIXES,
    PREFIX,
    ModelBehaviour,
    model_app,
    paraphrases,
    reply,
    sentence_of,
)
from shadowlane.demo.prod_service import label_request
from shadowlane.hook.context import close_context, open_context

WRONG = "I goed to school yesterday."  # irregular past, over-regularised
RIGHT = "He goes to school every day."


def conversation(text: str) -> list[dict[str, Any]]:
    """The second turn: the user's message, the model's tool calls, one tool answer."""
    user = {"role": "user", "content": text}
    tool_turn, _ = reply(ModelBehaviour("any"), [user])
    call_id = tool_turn["tool_calls"][0]["id"]
    return [user, tool_turn, {"role": "tool", "tool_call_id": call_id, "content": '{"form": "x"}'}]


def final(behaviour: ModelBehaviour, sentence: str, seed: int | None, prefix: str = PREFIX) -> str:
    message, _ = reply(behaviour, conversation(prefix + sentence), seed=seed)
    return str(message["content"])


def corrected_sentence(content: str) -> str:
    return content.split(": ", 1)[1]


@pytest.mark.parametrize("sentence", [WRONG, RIGHT])
def test_same_seed_gives_the_same_answer(sentence: str) -> None:
    for seed in range(10):
        first = final(ModelBehaviour("b", variability=0.5, unstable=0.3), sentence, seed)
        again = final(ModelBehaviour("b", variability=0.5, unstable=0.3, seed=99), sentence, seed)
        assert first == again


@pytest.mark.parametrize(("sentence", "fixed"), [(WRONG, "I went to school yesterday."), (RIGHT, RIGHT)])
def test_variability_changes_the_wording_never_the_sentence(sentence: str, fixed: str) -> None:
    behaviour = ModelBehaviour("b", variability=1.0)
    answers = {final(behaviour, sentence, seed) for seed in range(8)}
    assert len(answers) >= 2
    assert {corrected_sentence(a) for a in answers} == {fixed}


def test_without_variability_the_wording_is_fixed() -> None:
    behaviour = ModelBehaviour("b")
    assert {final(behaviour, WRONG, seed) for seed in range(8)} == {"Corrected: I went to school yesterday."}
    assert {final(behaviour, RIGHT, seed) for seed in range(8)} == {f"Correct as written: {RIGHT}"}


def test_unstable_changes_the_content() -> None:
    stable = final(ModelBehaviour("b"), WRONG, 0)
    answers = [final(ModelBehaviour("b", unstable=1.0), WRONG, seed) for seed in range(12)]
    assert stable not in answers
    assert NO_SENTENCE in answers  # off-topic
    assert "Corrected: I go to school yesterday." in answers  # the wrong tense


def test_skill_still_decides_whether_the_error_is_caught() -> None:
    weak, strong = ModelBehaviour("grammar-a", skill=0.0), ModelBehaviour("grammar-b", skill=1.0)
    assert final(weak, WRONG, 1) == f"Correct as written: {WRONG}"
    assert final(strong, WRONG, 1) == "Corrected: I went to school yesterday."


def test_paraphrased_prefixes_parse() -> None:
    assert len(PARAPHRASE_PREFIXES) == 3
    expected = final(ModelBehaviour("b"), WRONG, None)
    for prefix in (PREFIX, *PARAPHRASE_PREFIXES):
        assert sentence_of([{"role": "user", "content": prefix + WRONG}]) == WRONG
        assert final(ModelBehaviour("b"), WRONG, None, prefix=prefix) == expected
    assert sentence_of([{"role": "user", "content": "Translate: " + WRONG}]) == ""


def test_paraphrases_are_the_three_other_wordings() -> None:
    got = paraphrases(WRONG)
    assert got == [p + WRONG for p in PARAPHRASE_PREFIXES]
    asked = PARAPHRASE_PREFIXES[1] + WRONG
    other = paraphrases(WRONG, asked=asked)
    assert len(other) == 3
    assert asked not in other
    assert PREFIX + WRONG in other
    assert all(sentence_of([{"role": "user", "content": m}]) == WRONG for m in got + other)


def test_final_answers_cite_the_table_entry() -> None:
    user = [{"role": "user", "content": PREFIX + WRONG}]
    assert reply(ModelBehaviour("b"), user)[1] == []  # the tool turn cites nothing
    assert reply(ModelBehaviour("b"), conversation(PREFIX + WRONG))[1] == ["conj-table:go"]
    assert reply(ModelBehaviour("b"), [{"role": "user", "content": "hi"}])[1] == []


async def test_model_app_reads_the_seed_and_returns_citations() -> None:
    behaviour = ModelBehaviour("b", latency_ms=0, variability=1.0)
    transport = httpx.ASGITransport(app=model_app(behaviour))
    async with httpx.AsyncClient(transport=transport, base_url="http://model") as client:

        async def ask(messages: list[dict[str, Any]], seed: Any) -> dict[str, Any]:
            resp = await client.post("/v1/chat/completions", json={"messages": messages, "seed": seed})
            assert resp.status_code == 200
            data: dict[str, Any] = resp.json()
            return data

        first = await ask([{"role": "user", "content": PREFIX + WRONG}], 3)
        assert "citations" not in first
        messages = conversation(PREFIX + WRONG)
        same = [await ask(messages, 5) for _ in range(3)]
        assert same[0]["citations"] == [citation_id("go")]
        assert len({d["choices"][0]["message"]["content"] for d in same}) == 1
        varied = {(await ask(messages, seed))["choices"][0]["message"]["content"] for seed in range(8)}
        assert len(varied) >= 2


def test_prod_service_labels_paraphrases_and_gold() -> None:
    item = next(i for i in eval_set(40) if i.sentence != i.correct)
    text = PARAPHRASE_PREFIXES[0] + item.sentence
    scope = {"headers": [(b"x-eval-gold", item.correct.encode())]}
    ctx, token = open_context()
    try:
        label_request(scope, [{"role": "system", "content": "tutor"}, {"role": "user", "content": text}])
    finally:
        close_context(token)
    labels = ctx.labelled()
    assert labels.gold is not None
    assert labels.gold.answer == item.correct
    assert labels.gold.cited_ids == (citation_id(item.verb),)
    assert len(labels.paraphrases) == 3
    assert text not in labels.paraphrases
    assert labels.citations is None  # read from the model's response by the hook


def test_prod_service_without_the_gold_header_sets_no_gold() -> None:
    ctx, token = open_context()
    try:
        label_request({"headers": []}, [{"role": "user", "content": PREFIX + WRONG}])
        label_request({"headers": []}, [{"role": "user", "content": "no prefix"}])
    finally:
        close_context(token)
    assert ctx.labelled().gold is None
    assert ctx.labelled().paraphrases == tuple(paraphrases(WRONG))
