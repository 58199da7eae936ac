"""shadowlane/compare/rescore.py's ``Rescorer`` on records as Kafka hands them over (no broker):
a rescore with the comparator's embedder reproduces its comparisons byte for byte, ΔS and
``delta_s_embedder`` included; a rescore with another embedder names that one on every joined
comparison. Real embedders: the static table (distilled once for the module, ~16 s) and MiniLM.
(Reading the range from Kafka: tests/integration/test_cli_commands.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from shadowlane.compare.build import ComparisonBuilder
from shadowlane.compare.embed_onnx import MiniLMEmbedder
from shadowlane.compare.embed_static import RECIPE, StaticEmbedder
from shadowlane.compare.embedder import Embedder
from shadowlane.compare.join import Expired, Joined, Output
from shadowlane.compare.prod_side import ProdSide
from shadowlane.compare.rescore import Rescorer, RescoreResult, verify
from shadowlane.contracts.codec import encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.contracts.shadow_result import ShadowResult
from shadowlane.settings import CompareSettings, Settings
from tests.support.factories import envelope, result

pytestmark = pytest.mark.timeout(600)  # the static table's distillation, on a busy 2-core machine

SETTINGS = Settings(compare=CompareSettings(candidates=("cand",)))


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def static(minilm: MiniLMEmbedder, tmp_path_factory: pytest.TempPathFactory) -> StaticEmbedder:
    cache: Path = tmp_path_factory.mktemp("embedders")
    return StaticEmbedder(cache, minilm=lambda: minilm)


def _traffic() -> tuple[list[RequestEnvelope], list[ShadowResult]]:
    """Four requests: an answer equal to prod's once normalised, two that differ, one that the
    candidate never answered (a shadow timeout)."""
    envs = [envelope(60 + i, tag="rescore") for i in range(4)]
    prod = envs[0].prod.answer
    assert prod is not None
    results = [
        result(envs[0], answer=f"  {prod.upper()} "),
        result(envs[1], answer="The weather in Oslo is rainy today."),
        result(envs[2], answer="Please restart the router and try again."),
    ]
    return envs, results


def _record(topic: str, offset: int, ts_ms: int, key: str, value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, 0, offset, ts_ms, 0, key.encode(), value, None, len(key), len(value), ())


def _rescore(
    embedder: Embedder | None, envs: list[RequestEnvelope], results: list[ShadowResult]
) -> RescoreResult:
    t = SETTINGS.topics
    requests = [_record(t.requests_topic, i, e.ts_ms, e.req_hash, encode(e)) for i, e in enumerate(envs)]
    replies = [
        _record(t.shadow_results_topic, i, r.ts_ms, r.req_hash, encode(r)) for i, r in enumerate(results)
    ]
    rescorer = Rescorer(SETTINGS, embedder, min(e.ts_ms for e in envs), max(e.ts_ms for e in envs) + 1)
    rescorer.feed({TopicPartition(t.requests_topic, 0): requests})
    rescorer.feed({TopicPartition(t.shadow_results_topic, 0): replies})
    return rescorer.finish()


def _live(embedder: Embedder, envs: list[RequestEnvelope], results: list[ShadowResult]) -> list[Comparison]:
    """What the comparator with ``embedder`` wrote for the same records."""
    sides = [ProdSide.of(e) for e in envs]
    outputs: list[Output] = [Joined(side, res, []) for side, res in zip(sides, results, strict=False)]
    outputs.append(Expired("shadow_timeout", "cand", envs[3].req_hash, sides[3], None, []))
    return ComparisonBuilder(embedder, SETTINGS.compare).build(outputs)


def test_a_rescore_with_the_static_embedder_reproduces_its_delta_s_and_names_it(
    static: StaticEmbedder, minilm: MiniLMEmbedder
) -> None:
    envs, results = _traffic()
    live = _live(static, envs, results)
    order = {e.req_hash: i for i, e in enumerate(envs)}
    rescored = sorted(_rescore(static, envs, results).comparisons, key=lambda c: order[c.req_hash])
    assert [c.outcome for c in rescored] == ["joined", "joined", "joined", "shadow_timeout"]
    assert [c.delta_s_embedder for c in rescored] == [RECIPE, RECIPE, RECIPE, None]
    assert [c.delta_s for c in rescored] == [c.delta_s for c in live]
    assert rescored[0].delta_s == 0.0
    assert all(c.delta_s is not None and c.delta_s > 0.0 for c in rescored[1:3])
    assert verify(rescored, {c.comparison_id: encode(c) for c in live}).ok  # byte for byte

    # the comparator ran MiniLM: a rescore with the static embedder switches every joined
    # comparison to it, and --verify shows each as changed (the name differs even where ΔS is 0)
    live_minilm = _live(minilm, envs, results)
    assert [c.delta_s_embedder for c in live_minilm] == [minilm.name] * 3 + [None]
    check = verify(rescored, {c.comparison_id: encode(c) for c in live_minilm})
    assert (check.identical, len(check.different)) == (1, 3)  # only the timeout is unchanged


def test_a_rescore_without_an_embedder_names_none() -> None:
    envs, results = _traffic()
    rescored = _rescore(None, envs, results).comparisons
    assert len(rescored) == 4
    assert all(c.delta_s is None and c.delta_s_embedder is None for c in rescored)
