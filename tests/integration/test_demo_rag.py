"""The demo's RAG scenario end to end on the real broker: prod records what model A retrieved with
``set_retrieved``, model B's replays report their own retrieval (its retriever goes off topic on
some question wordings), every request is λ-sampled so its paraphrases are replayed too, and the
comparisons, window summaries and the report carry ΔS(question, retrieved), overlap and coverage."""

from __future__ import annotations

from pathlib import Path
from statistics import median

import pytest

from shadowlane.contracts.comparison import Comparison
from shadowlane.demo import rag
from shadowlane.demo.grammar import eval_set, parse_sentence
from shadowlane.demo.model_server import paraphrases
from shadowlane.demo.run import DemoOptions, run_demo
from shadowlane.kafka.bootstrap import client_kwargs
from shadowlane.settings import Settings
from tests.support.kafka_io import delete_topics_with_prefix, read_topic

pytestmark = pytest.mark.integration

OPTS = DemoOptions(
    requests=48,
    ab_requests=0,
    concurrency=4,
    prod_latency_ms=5.0,
    candidate_latency_ms=5.0,
    candidate_error_rate=0.0,  # every replay answers: each RAG request's figures are exact
    candidate_unstable=0.0,
    agent_every=5,
    rag_every=3,
    candidate_retrieval_slip=0.2,
    lambda_ratio=1.0,  # every request λ-sampled: every RAG question is asked in its three paraphrases too
    rate_cap=400.0,
    timeout_s=200.0,
)


def _rag_requests() -> dict[str, bool]:
    """req_id → whether model B's retriever goes off topic on any wording of that question."""
    out = {}
    for i, item in enumerate(eval_set(OPTS.requests)):
        if i % OPTS.agent_every == OPTS.agent_every - 1 or i % OPTS.rag_every:
            continue
        asked = rag.RAG_PREFIXES[0] + item.sentence
        wordings = [asked, *paraphrases(item.sentence, asked=asked)]
        assert parse_sentence(item.sentence) is not None
        out[f"demo-{i:06d}"] = any(rag.slips("grammar-b", OPTS.candidate_retrieval_slip, w) for w in wordings)
    return out


@pytest.mark.timeout(320)
async def test_the_rag_scenario_measures_retrieval_drift(it_settings: Settings, tmp_path: Path) -> None:
    settings = it_settings.model_copy(
        update={
            "state_dir": tmp_path,
            "compare": it_settings.compare.model_copy(update={"embedder": "minilm"}),
        }
    )
    expected = _rag_requests()
    off_topic = {rid for rid, slipped in expected.items() if slipped}
    assert off_topic  # the fixed draws give both kinds of request
    assert len(off_topic) < len(expected)

    summary = await run_demo(settings, OPTS)
    assert summary["compared"] == summary["published"] == OPTS.requests

    # the comparisons: one per RAG request and arm carries retrieval figures, no other one does
    kwargs = client_kwargs(settings, settings.bootstrap_servers or "")
    topics = settings.topics.model_copy(update={"prefix": summary["topics_prefix"]})
    try:
        records = await read_topic(kwargs, topics.compare_topic, want=2 * OPTS.requests)
    finally:
        await delete_topics_with_prefix(kwargs, topics.prefix)
    comparisons = [Comparison.model_validate_json(r.value) for r in records]
    by_arm: dict[str, dict[str, Comparison]] = {}
    for c in comparisons:
        if c.retrieval_paraphrases is not None:
            assert c.req_id is not None
            by_arm.setdefault(c.candidate, {})[c.req_id] = c
    assert set(by_arm["grammar-b"]) == set(expected) == set(by_arm["baseline"])
    for rid, c in by_arm["grammar-b"].items():
        assert c.retrieval_paraphrases == 3  # the request and its three paraphrases
        assert c.retrieval_coverage_target == "gold"  # eval traffic: the gold's cited table entry
        assert c.prod_retrieval_delta_s is not None
        assert c.retrieval_delta_s is not None
        if rid in off_topic:  # the worst wording retrieved school notices
            assert (c.retrieval_overlap, c.retrieval_coverage) == (0.0, 0.0)
            assert c.retrieval_delta_s > 0.5
            assert c.retrieval_delta_s > c.prod_retrieval_delta_s + 0.1
        else:
            assert (c.retrieval_overlap, c.retrieval_coverage) == (1.0, 1.0)
            assert c.retrieval_delta_s < 0.6
    # model A retrieves on topic for every wording: the baseline replay matches prod
    for c in by_arm["baseline"].values():
        assert (c.retrieval_overlap, c.retrieval_coverage) == (1.0, 1.0)
    prod = [c.prod_retrieval_delta_s for c in by_arm["grammar-b"].values() if c.prod_retrieval_delta_s]
    assert median(prod) < 0.45  # the seed's bound holds for prod's own retrieval

    # the demo's summary, the window summaries and the report say the same
    figures = summary["retrieval"]
    assert figures["requests"] == len(expected)
    assert figures["paraphrase_retrievals"] == 3 * len(expected)
    assert figures["coverage_mean"] == round(1 - len(off_topic) / len(expected), 4)
    assert figures["beyond_threshold"] >= len(off_topic)
    window = summary["windows"]["candidates"]["grammar-b"]["retrieval"]
    assert window["count"] == len(expected)
    assert window["coverage_mean"] == figures["coverage_mean"]
    assert window["overlap_mean"] == figures["coverage_mean"]
    assert window["prod_delta_s_median"] is not None
    assert window["delta_s_p95"] is not None
    assert window["delta_s_p95"] > 0.5  # the off-topic worst wordings sit in the tail
    report = (tmp_path / "demo-report" / "report.md").read_text()
    assert "### Retrieval drift" in report
    assert f"| candidate | {len(expected)} |" in report
