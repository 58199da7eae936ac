"""The demo's RAG scenario: the tutor retrieves grammar passages for "which rule applies" questions.

A user message worded with one of :data:`RAG_PREFIXES` asks which grammar rule covers a sentence.
The model server answers it as any correction, and also says what its retriever returned for the
question (a top-level ``retrieved`` list: :func:`retrieve`): the conjugation-table passage of the
sentence's verb (id ``conj-table:<verb>``, the id gold answers cite) and the verb's forms. Prod's
service records model A's retrieval with ``set_retrieved``; a shadow replay records model B's
from the same field. ``retrieval_slip`` is the share of questions on which a model's retriever
returns off-topic passages (school notices): a fixed draw per model and *wording*, so one wording
of a question may retrieve well and a paraphrase of it not, which the comparator's worst over the
λ paraphrases catches. :func:`retrieval_summary` is the demo summary's digest of the comparisons.
"""

from __future__ import annotations

import hashlib
from typing import Any

from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.flag_manifest import Gates
from shadowlane.demo.grammar import OBJECTS, TIME, VERBS, citation_id, conjugate
from shadowlane.stats.quantiles import quantile

RAG_PREFIXES = (
    "Which grammar rule applies to this sentence? ",
    "What rule explains the verb in this sentence? ",
    "Look up the grammar rule for: ",
    "Explain the verb form in: ",
)
"""The RAG question's wordings: the first is what the demo asks, the others its paraphrases."""
OFF_TOPIC = (
    {
        "id": "notice:cafeteria",
        "text": "School notice: the cafeteria opens at 8 am and serves lunch until 2 pm.",
    },
    {"id": "notice:bus-4", "text": "Bus timetable: line 4 leaves the station every 20 minutes on weekdays."},
)


def is_rag(text: str) -> bool:
    return text.startswith(RAG_PREFIXES)


def passages(verb: str, tense: str, person: str) -> list[dict[str, str]]:
    """The on-topic passages for a sentence: the rule for its verb and tense, and the verb's forms."""
    base, third, past, _wrong = VERBS[verb]
    form = conjugate(verb, tense, person)
    return [
        {
            "id": citation_id(verb),
            "text": f"Grammar rule: {person} {form} {OBJECTS[verb]} {TIME[tense]} uses '{form}', the "
            f"{tense} tense of '{verb}'.",
        },
        {"id": f"conj-forms:{verb}", "text": f"Forms of '{verb}': present {base}, {third}; past {past}."},
    ]


def slips(model: str, share: float, question: str) -> bool:
    """Whether ``model``'s retriever goes off topic on this wording (``share`` of the wordings)."""
    draw = int(hashlib.blake2b(f"{model}:rag:{question}".encode(), digest_size=2).hexdigest(), 16)
    return draw / 65535 < share


def retrieve(model: str, share: float, question: str, parsed: tuple[str, str, str]) -> list[dict[str, str]]:
    """What ``model``'s retriever returns for ``question`` (a RAG wording of the parsed sentence)."""
    if slips(model, share, question):
        return [dict(p) for p in OFF_TOPIC]
    return passages(*parsed)


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def retrieval_summary(joined: list[Comparison]) -> dict[str, Any]:
    """The candidate's retrieval drift over its joined comparisons: per arm, ΔS(question, retrieved)
    median and p95 (the candidate's: each request's worst over its λ paraphrases), the share of
    requests beyond the manifest default, overlap and coverage."""
    rows = [c for c in joined if c.retrieval_paraphrases is not None]
    cand = [c.retrieval_delta_s for c in rows if c.retrieval_delta_s is not None]
    prod = [c.prod_retrieval_delta_s for c in joined if c.prod_retrieval_delta_s is not None]
    overlap = [c.retrieval_overlap for c in rows if c.retrieval_overlap is not None]
    coverage = [  # of the expected section (gold cited ids), as windows and the gate read it
        c.retrieval_coverage
        for c in rows
        if c.retrieval_coverage is not None and c.retrieval_coverage_target == "gold"
    ]
    limit = Gates().retrieval_delta_s_max
    return {
        "requests": len(rows),
        "paraphrase_retrievals": sum(c.retrieval_paraphrases or 0 for c in rows),
        "delta_s": {
            "prod": {"median": _r(quantile(prod, 0.5)), "p95": _r(quantile(prod, 0.95))},
            "candidate": {"median": _r(quantile(cand, 0.5)), "p95": _r(quantile(cand, 0.95))},
        },
        "beyond_threshold": sum(1 for v in cand if limit is not None and v > limit),
        "overlap_mean": _r(sum(overlap) / len(overlap)) if overlap else None,
        "coverage_mean": _r(sum(coverage) / len(coverage)) if coverage else None,
    }
