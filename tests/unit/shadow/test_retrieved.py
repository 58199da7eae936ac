"""What a replay records as its candidate's retrieval: a response's top-level ``retrieved`` list,
on the result and on each λ replay (paraphrases included), read back by the comparator's Python path."""

from __future__ import annotations

from typing import Any

from shadowlane.compare.results import NATIVE_RESULTS, decode_result, from_native
from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.envelope import RetrievedPassage
from shadowlane.contracts.shadow_result import ShadowResult
from shadowlane.settings import ShadowSettings
from shadowlane.shadow.candidates import CallableCandidate, parse_reply
from shadowlane.shadow.replay import Replayer
from shadowlane.shadow.stability import replay_variants, stability_variants
from tests.support.factories import make_envelope


def _reply(**extra: Any) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": "ok"}}], **extra}


def test_a_responses_retrieved_list_is_read_in_order() -> None:
    reply = parse_reply(
        _reply(retrieved=["d1", {"id": 2, "text": "two"}, {"id": "d1", "text": "again"}, {"text": "x"}, None])
    )
    assert reply.retrieved == (RetrievedPassage(id="d1"), RetrievedPassage(id="2", text="two"))
    assert parse_reply(_reply(retrieved={"id": "d1"})).retrieved == ()  # not a list: none
    assert parse_reply(_reply()).retrieved == ()


def rag(body: dict[str, Any]) -> dict[str, Any]:
    """A Python RAG candidate: retrieves a passage named after the question it was asked."""
    question = str(body["messages"][-1]["content"])
    return _reply(retrieved=[{"id": f"doc:{question[:12]}", "text": f"About {question}"}])


async def test_the_replay_and_every_paraphrase_replay_carry_their_retrieval() -> None:
    env = make_envelope("rag-1", tools=()).model_copy(update={"paraphrases": ("Other wording", "Third")})
    replayer = Replayer(CallableCandidate("cand", rag), ShadowSettings(max_attempts=1))
    res = await replayer.replay(env)
    assert len(res.retrieved) == 1
    assert res.retrieved[0].text is not None
    assert res.retrieved[0].text.startswith("About ")
    variants = stability_variants(env, seeds=1, paraphrases=3)
    samples = await replay_variants(variants, replayer.replay)
    by_variant = {s.variant: s.retrieved for s in samples}
    assert by_variant["paraphrase:0"] == (
        RetrievedPassage(id="doc:Other wordin", text="About Other wording"),
    )
    assert by_variant["paraphrase:1"] == (RetrievedPassage(id="doc:Third", text="About Third"),)
    assert by_variant["seed:1"] == res.retrieved
    res = res.model_copy(update={"stability": samples})
    data = encode(res)
    assert decode(data, ShadowResult) == res
    if NATIVE_RESULTS is not None:  # the native reader takes it, and keeps every passage
        record = NATIVE_RESULTS(data)
        assert record is not None
        assert from_native(record.fields()) == res
    assert decode_result(data) == res


async def test_a_candidate_without_retrieval_writes_no_retrieved_key() -> None:
    replayer = Replayer(CallableCandidate("cand", lambda body: "plain"), ShadowSettings(max_attempts=1))
    res = await replayer.replay(make_envelope("rag-2", tools=()))
    assert res.retrieved == ()
    assert b'"retrieved"' not in encode(res)
