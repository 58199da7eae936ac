"""Retrieval drift: what each arm retrieved for the question, as opposed to what it answered.

The hook records prod's retrieval (``set_retrieved``: passage ids and sanitized texts) and a
candidate's replay reports its own (``ShadowResult.retrieved``, and per λ replay
``StabilitySample.retrieved``). Per comparison:

- **ΔS(question, retrieved)** per arm: ΔS between the question and the arm's retrieved text, the
  texts of its passages in rank order joined by a blank line (the context a reader model gets;
  the embedder reads its first tokens, so the top passages weigh most). The question is the text
  of the request's last user message (:func:`question_text`); a λ paraphrase replay
  (``paraphrase:<i>``) is judged against ``envelope.paraphrases[i]``, the wording it was asked.
- **overlap**: the Jaccard index of the arm's passage ids and prod's.
- **coverage**: the share of the target ids the arm retrieved; the target is the gold label's
  cited ids when it has some (the passages a complete answer must cite), else prod's retrieved ids.

The candidate's figures are the **worst over the request and each of its λ paraphrases** that
reported retrieval (highest ΔS, lowest overlap, lowest coverage): the seed asks for ΔS(question,
retrieved) ≤ 0.45 "across three paraphrases", and a retriever that finds the right section for
one wording but not another fails users who ask the other way. Seeded λ replays (same wording) are
not part of it. Prod's ΔS is its own retrieval for the request's wording (the hook records one).

A side that reported no passages has no retrieval figures (an empty list cannot be told from none
on the wire). Candidate passage texts and ids are masked with the hook's sanitizer, as prod's were,
so an id the sanitizer changes compares equal on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from shadowlane.compare import quality as q
from shadowlane.contracts.envelope import RetrievedPassage

if TYPE_CHECKING:
    from shadowlane.compare.prod_side import ProdSide
    from shadowlane.compare.scores import Masked, Scores
    from shadowlane.contracts.chat import ChatMessage
    from shadowlane.contracts.shadow_result import ShadowResult

PARAPHRASE_VARIANT = "paraphrase:"
PASSAGE_SEPARATOR = "\n\n"
CoverageTarget = Literal["gold", "prod"]
MAX_QUESTION_CHARS = 4_000
"""The question is cut to this many characters (code points): the comparator keeps it with every
buffered request. ``native/src/envelope.rs`` mirrors it (the differential test holds them equal)."""


def question_text(messages: Sequence[ChatMessage]) -> str | None:
    """The text of the last user message: its content, or the ``text`` of its ``type: "text"``
    parts joined by a newline, cut to :data:`MAX_QUESTION_CHARS`; None when that is empty or there
    is no user message. (The native reader, ``native/src/envelope.rs``, computes the same.)"""
    for message in reversed(messages):
        if message.role != "user":
            continue
        content = message.content
        if isinstance(content, str):
            return content[:MAX_QUESTION_CHARS] or None
        if content is None:
            return None
        texts = [p["text"] for p in content if p.get("type") == "text" and isinstance(p.get("text"), str)]
        return "\n".join(texts)[:MAX_QUESTION_CHARS] or None
    return None


def passage_ids(passages: Sequence[RetrievedPassage]) -> tuple[str, ...]:
    """The passages' ids, in order, each once."""
    return tuple(dict.fromkeys(p.id for p in passages))


def masked_ids(passages: Sequence[RetrievedPassage], masked: Masked) -> tuple[str, ...]:
    """A candidate's passage ids masked as the hook masked prod's (an id quoting an e-mail or a
    key reads as prod's does: the hook masks ids by the rules alone, never hashed, as this
    sanitizer does), in order, each once; a blank id is left out, as the hook leaves it out."""
    return tuple(dict.fromkeys(m for m in (masked.once(p.id) for p in passages if p.id.strip()) if m))


def joined_text(passages: Sequence[RetrievedPassage]) -> str | None:
    """The retrieved text an arm is judged on: its passage texts in order, joined by a blank line;
    None when no passage has a text (ids only)."""
    texts = [p.text for p in passages if p.text]
    return PASSAGE_SEPARATOR.join(texts) if texts else None


def overlap(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Jaccard index of two id lists; None when either is empty."""
    left, right = set(a), set(b)
    if not left or not right:
        return None
    return len(left & right) / len(left | right)


@dataclass(frozen=True, slots=True)
class Arm:
    """One retrieval to judge: the question it answered, its (masked) text, its ids."""

    question: str | None
    text: str | None
    ids: tuple[str, ...]


def prod_arm(env: ProdSide) -> Arm | None:
    """Prod's retrieval for the request (texts were sanitized by the hook), None without one."""
    if not env.retrieved:
        return None
    return Arm(env.question, joined_text(env.retrieved), passage_ids(env.retrieved))


def candidate_arms(env: ProdSide, res: ShadowResult, masked: Masked) -> tuple[Arm | None, list[Arm]]:
    """The replay's retrieval for the request (None without one) and each λ paraphrase replay's
    (those with a known paraphrase and some passages)."""
    request = (
        Arm(env.question, masked.once(joined_text(res.retrieved)), masked_ids(res.retrieved, masked))
        if res.retrieved
        else None
    )
    paraphrased: list[Arm] = []
    for sample in res.stability:
        if not sample.retrieved or not sample.variant.startswith(PARAPHRASE_VARIANT):
            continue
        index = sample.variant[len(PARAPHRASE_VARIANT) :]
        if not index.isdigit() or int(index) >= len(env.paraphrases):
            continue
        text = masked.once(joined_text(sample.retrieved))
        asked = env.paraphrases[int(index)][:MAX_QUESTION_CHARS]  # cut as the question is
        paraphrased.append(Arm(asked, text, masked_ids(sample.retrieved, masked)))
    return request, paraphrased


def plan(env: ProdSide, res: ShadowResult, scores: Scores, masked: Masked) -> None:
    """Register the ΔS(question, retrieved) pairs a comparison of ``env`` and ``res`` reads."""
    if not env.retrieved and not res.retrieved and not res.stability:
        return
    request, paraphrased = candidate_arms(env, res, masked)
    for arm in (prod_arm(env), request, *paraphrased):
        if arm is not None:
            scores.want(arm.question, arm.text)


def figures(
    env: ProdSide, res: ShadowResult, scores: Scores, masked: Masked, gold_ids: Sequence[str] = ()
) -> dict[str, Any]:
    """The comparison's retrieval drift fields (every one None when neither side retrieved)."""
    out: dict[str, Any] = dict.fromkeys(FIELDS)
    if not env.retrieved and not res.retrieved and not any(s.retrieved for s in res.stability):
        return out
    prod = prod_arm(env)
    if prod is not None:
        out["prod_retrieval_delta_s"] = scores.get(prod.question, prod.text)
    request, paraphrased = candidate_arms(env, res, masked)
    arms = ([request] if request is not None else []) + paraphrased
    if not arms:
        return out
    out["retrieval_paraphrases"] = len(paraphrased)
    scored = [s for s in (scores.get(a.question, a.text) for a in arms) if s is not None]
    out["retrieval_delta_s"] = max(scored) if scored else None
    if prod is not None:
        overlaps = [o for o in (overlap(prod.ids, a.ids) for a in arms) if o is not None]
        out["retrieval_overlap"] = min(overlaps) if overlaps else None
    target: tuple[str, ...] = tuple(gold_ids) or (prod.ids if prod is not None else ())
    if target:
        coverages = [c for c in (q.coverage(target, a.ids) for a in arms) if c is not None]
        out["retrieval_coverage"] = min(coverages) if coverages else None
        kind: CoverageTarget = "gold" if gold_ids else "prod"
        out["retrieval_coverage_target"] = kind
    return out


FIELDS = (
    "prod_retrieval_delta_s",
    "retrieval_delta_s",
    "retrieval_paraphrases",
    "retrieval_overlap",
    "retrieval_coverage",
    "retrieval_coverage_target",
)
"""The ``Comparison`` fields :func:`figures` fills, in the contract's order."""
