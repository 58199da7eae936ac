"""Retrieval drift rules (``shadowlane.compare.retrieval``) and the comparisons that carry them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from shadowlane.compare import retrieval as r
from shadowlane.compare.join import Joined
from shadowlane.compare.prod_side import ProdSide
from shadowlane.contracts.chat import ChatMessage
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.envelope import GoldLabel, RequestEnvelope, RetrievedPassage
from shadowlane.contracts.shadow_result import ShadowResult, StabilitySample
from tests.support.contracts import CheckedBuilder
from tests.support.factories import envelope, result

TOPICS = ("refund", "orbit", "volcano")


class TopicEmbedder:
    """One axis per topic word; a text points along the topics it names (orthogonal otherwise)."""

    name = "topics"

    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.texts.extend(texts)
        rows = [[float(t in text.lower()) for t in TOPICS] + [0.1] for text in texts]
        return np.array(rows, dtype=np.float32)


def P(ident: str, text: str | None = None) -> RetrievedPassage:
    return RetrievedPassage(id=ident, text=text)


REFUND = (P("kb-1", "Refund policy: refunds within 30 days."), P("kb-2", "How a refund is paid out."))
OFF_TOPIC = (P("kb-9", "Orbit of the moon."), P("kb-1", "Refund policy: refunds within 30 days."))


def _env(
    question: str = "How do I get a refund?",
    *,
    retrieved: tuple[RetrievedPassage, ...] = REFUND,
    paraphrases: tuple[str, ...] = (),
    gold: GoldLabel | None = None,
) -> RequestEnvelope:
    env = envelope(1)
    messages = (*env.request.messages[:-1], ChatMessage(role="user", content=question))
    return env.model_copy(
        update={
            "request": env.request.model_copy(update={"messages": messages}),
            "prod": env.prod.model_copy(update={"retrieved": retrieved}),
            "paraphrases": paraphrases,
            "gold": gold,
        }
    )


def _res(env: RequestEnvelope, retrieved: tuple[RetrievedPassage, ...], **update: object) -> ShadowResult:
    return result(env).model_copy(update={"retrieved": retrieved, **update})


def _compare(env: RequestEnvelope, res: ShadowResult, embedder: TopicEmbedder | None = None) -> Comparison:
    builder = CheckedBuilder(embedder if embedder is not None else TopicEmbedder())
    (comparison,) = builder.build([Joined(ProdSide.of(env), res, [])])
    return comparison


def test_the_question_is_the_last_user_messages_text() -> None:
    def msgs(*contents: object) -> list[ChatMessage]:
        return [ChatMessage(role="user", content=c) for c in contents]  # type: ignore[arg-type]

    assert r.question_text(msgs("first", "second")) == "second"
    assert r.question_text([*msgs("asked"), ChatMessage(role="assistant", content="answer")]) == "asked"
    parts = [{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}]
    assert r.question_text(msgs(parts)) == "a\nb"
    assert r.question_text(msgs("earlier", None)) is None  # the last one counts, even empty
    assert r.question_text(msgs("")) is None
    assert r.question_text([ChatMessage(role="system", content="sys")]) is None


def test_overlap_is_the_jaccard_of_ids_and_text_joins_passages_in_rank_order() -> None:
    assert r.overlap(["a", "b"], ["b", "c"]) == 1 / 3
    assert r.overlap(["a"], []) is None
    assert r.joined_text((P("a", "one"), P("b"), P("c", "three"))) == "one\n\nthree"
    assert r.joined_text((P("a"),)) is None
    assert r.passage_ids((P("a"), P("b"), P("a"))) == ("a", "b")


def test_on_topic_retrieval_scores_low_and_matches_prod() -> None:
    env = _env()
    c = _compare(env, _res(env, REFUND))
    assert c.prod_retrieval_delta_s is not None
    assert c.prod_retrieval_delta_s < 0.05
    assert c.retrieval_delta_s == c.prod_retrieval_delta_s
    assert (c.retrieval_overlap, c.retrieval_coverage, c.retrieval_coverage_target) == (1.0, 1.0, "prod")
    assert c.retrieval_paraphrases == 0


def test_off_topic_retrieval_drifts_and_loses_coverage() -> None:
    env = _env()
    c = _compare(env, _res(env, (P("kb-9", "Orbit of the moon and its volcano."),)))
    assert c.retrieval_delta_s is not None
    assert c.retrieval_delta_s > 0.9
    assert c.prod_retrieval_delta_s is not None
    assert c.prod_retrieval_delta_s < 0.05
    assert (c.retrieval_overlap, c.retrieval_coverage) == (0.0, 0.0)


def test_the_worst_paraphrase_counts_and_each_is_judged_against_its_own_wording() -> None:
    wordings = ("Refund: how do I get one?", "Can I get my money back (refund)?", "orbit question")
    env = _env(paraphrases=wordings)
    samples = (
        StabilitySample(variant="seed:1", seed=1, status="ok", answer="x", retrieved=OFF_TOPIC[:1]),
        StabilitySample(variant="paraphrase:0", seed=1, status="ok", answer="x", retrieved=REFUND),
        StabilitySample(variant="paraphrase:1", seed=1, status="ok", answer="x", retrieved=OFF_TOPIC),
        # the third wording is about orbits: its orbit passage is on topic for it
        StabilitySample(
            variant="paraphrase:2", seed=1, status="ok", answer="x", retrieved=(P("kb-9", "Orbit"),)
        ),
        StabilitySample(variant="paraphrase:7", seed=1, status="ok", answer="x", retrieved=OFF_TOPIC),
    )
    embedder = TopicEmbedder()
    c = _compare(env, _res(env, REFUND, stability=samples), embedder)
    assert c.retrieval_paraphrases == 3  # seed replays and an unknown paraphrase are not part of it
    # paraphrase 1 mixes an orbit passage into a refund question: the worst of the four
    mixed = 1 - 1.01 / np.sqrt(1.01 * 2.01)
    assert c.retrieval_delta_s is not None
    assert abs(c.retrieval_delta_s - mixed) < 1e-3
    assert "orbit question" in embedder.texts  # paraphrase 2 was embedded with its own wording
    assert c.retrieval_overlap == 0.0  # paraphrase 2 shares no id with prod
    assert c.retrieval_coverage == 0.0


def test_gold_cited_ids_are_the_coverage_target_when_present() -> None:
    env = _env(gold=GoldLabel(cited_ids=("kb-2", "kb-3")))
    c = _compare(env, _res(env, REFUND))
    assert (c.retrieval_coverage, c.retrieval_coverage_target) == (0.5, "gold")


def test_candidate_only_retrieval_is_judged_without_prod_figures() -> None:
    env = _env(retrieved=())
    c = _compare(env, _res(env, OFF_TOPIC))
    assert c.prod_retrieval_delta_s is None
    assert c.retrieval_overlap is None
    assert c.retrieval_coverage is None
    assert c.retrieval_delta_s is not None
    assert c.retrieval_delta_s > 0.1


def test_without_retrieval_every_field_is_none_and_ids_need_no_embedder() -> None:
    env = _env(retrieved=())
    c = _compare(env, _res(env, ()))
    assert all(getattr(c, name) is None for name in r.FIELDS)
    env = _env()
    ids_only = tuple(P(p.id) for p in REFUND)
    builder = CheckedBuilder(None)
    (c,) = builder.build([Joined(ProdSide.of(env), _res(env, ids_only), [])])
    assert c.retrieval_delta_s is None
    assert c.prod_retrieval_delta_s is None
    assert (c.retrieval_overlap, c.retrieval_coverage, c.retrieval_paraphrases) == (1.0, 1.0, 0)


def test_candidate_passage_texts_are_masked_before_embedding() -> None:
    env = _env()
    embedder = TopicEmbedder()
    _compare(env, _res(env, (P("kb-1", "Refund: write to anna@example.org"),)), embedder)
    assert not any("anna@example.org" in t for t in embedder.texts)
    assert any("refund" in t.lower() and "<" in t for t in embedder.texts)


def test_candidate_ids_are_masked_as_the_hook_masked_prods() -> None:
    """An id the sanitizer changes (it quotes an e-mail) reached the envelope masked: the
    candidate's same id matches it only once masked the same way."""
    env = _env(retrieved=(P("kb/<email>#3", "Refund policy: refunds within 30 days."),))
    c = _compare(env, _res(env, (P("kb/jane.doe@example.com#3", "Refund policy: refunds within 30 days."),)))
    assert (c.retrieval_overlap, c.retrieval_coverage) == (1.0, 1.0)
    other = _compare(env, _res(env, (P("kb/4", "Refund policy: refunds within 30 days."),)))
    assert (other.retrieval_overlap, other.retrieval_coverage) == (0.0, 0.0)


def test_a_pair_with_retrieval_needs_the_embedder() -> None:
    env = _env()
    builder = CheckedBuilder(TopicEmbedder())
    prepared = builder.prepare([Joined(ProdSide.of(env), _res(env, ()), [])])
    assert builder.needs_embedding(prepared)  # prod's retrieval alone is scored
