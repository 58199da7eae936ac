"""Embedder quality on the calibration set: the checked-in set itself (size, categories, lengths,
byte-identical regeneration), the statistics against scipy and hand-made arrays, and the real MiniLM
reference (it separates paraphrase from contradiction; a random embedder does not)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy import stats  # type: ignore[import-untyped]

from shadowlane.compare.calibration import (
    CATEGORIES,
    CalibrationPair,
    average_ranks,
    dump_pairs,
    evaluate,
    group_medians,
    load_pairs,
    pair_delta_s,
    quality,
    separation_auc,
    spearman,
    threshold_agreement,
)
from shadowlane.compare.embed_onnx import MAX_TOKENS, MiniLMEmbedder
from tests.bench.calibration_set import OUTPUT, generate

SET = Path(__file__).parents[2] / "bench" / "data" / "delta_s_calibration.jsonl"
PROSE = ("paraphrase", "different_fact", "contradiction", "unrelated")
#: Measured on the checked-in set (docs/embedders.md): MiniLM's P(ΔS contradiction > ΔS paraphrase)
#: is 0.707 on the prose pairs; the hash-seeded random embedder below scores 0.475 (chance is 0.5).
MIN_REFERENCE_AUC = 0.65


# ------------------------------------------------------------------------------------ the set


@pytest.fixture(scope="module")
def pairs() -> list[CalibrationPair]:
    return load_pairs(SET)


def test_set_has_enough_pairs_in_every_category_with_unique_ids(pairs: list[CalibrationPair]) -> None:
    assert SET == OUTPUT
    assert len(pairs) >= 360
    counts = Counter(p.category for p in pairs)
    assert set(counts) == set(CATEGORIES)
    assert min(counts.values()) >= 50, counts
    assert len({p.id for p in pairs}) == len(pairs)
    # code and tool calls hold both relations, in similar numbers
    for category in ("code", "tool_call"):
        relations = Counter(p.relation for p in pairs if p.category == category)
        assert set(relations) == {"equivalent", "changed"}
        assert min(relations.values()) >= 25, relations


def test_set_lengths_spread_from_short_to_long(pairs: list[CalibrationPair]) -> None:
    words = [len(text.split()) for p in pairs for text in (p.a, p.b)]
    assert sum(n < 40 for n in words) >= 50
    assert sum(n > 300 for n in words) >= 20
    for category in PROSE:  # each prose category spans the range on its own
        own = [len(p.a.split()) for p in pairs if p.category == category]
        assert min(own) < 40, (category, min(own))
        assert max(own) > 300, (category, max(own))


def test_set_is_what_the_sources_generate_byte_for_byte() -> None:
    assert dump_pairs(generate()).encode("utf-8") == SET.read_bytes()


def test_load_rejects_unknown_fields_repeated_ids_and_wrong_relations(tmp_path: Path) -> None:
    good = {"id": "p1", "category": "paraphrase", "relation": "equivalent", "topic": "t", "a": "x", "b": "y"}
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "p2", "note": "?"}) + "\n")
    with pytest.raises(ValueError, match=":2: expected an object"):
        load_pairs(path)
    path.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n")
    with pytest.raises(ValueError, match="repeated id"):
        load_pairs(path)
    path.write_text(json.dumps({**good, "relation": "contradiction"}) + "\n")
    with pytest.raises(ValueError, match="implies relation equivalent"):
        load_pairs(path)
    path.write_text(json.dumps({**good, "category": "code", "relation": "changed"}) + "\n")
    assert load_pairs(path)[0].group == "code/changed"
    assert dump_pairs(load_pairs(path)) == path.read_text()


# ----------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("seed", range(6))
def test_spearman_and_ranks_match_scipy_with_and_without_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    x = rng.normal(size=n)
    y = 0.6 * x + rng.normal(size=n)
    if seed % 2:  # many ties on both sides
        x, y = np.round(x, 1), np.round(y * 2) / 2
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    np.testing.assert_allclose(average_ranks(y), stats.rankdata(y), rtol=0, atol=1e-12)


def test_spearman_edge_cases() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))  # a constant side has no ranking (scipy: nan)
    with pytest.raises(ValueError, match="same length"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        spearman([1, np.nan], [1, 2])


def test_threshold_agreement_counts_pairs_on_the_same_side() -> None:
    x = [0.10, 0.50, 0.44, 0.46, 0.45, 0.90]
    y = [0.20, 0.60, 0.46, 0.44, 0.10, 0.46]
    # same, same, differ, differ, same (0.45 is not above 0.45), same
    assert threshold_agreement(x, y, 0.45) == pytest.approx(4 / 6)
    assert threshold_agreement(x, x, 0.45) == 1.0
    assert threshold_agreement(x, y, 0.05) == 1.0  # everything above


def test_separation_auc_is_the_share_of_higher_over_lower_with_half_ties() -> None:
    assert separation_auc([0.1, 0.2, 0.3], [0.25, 0.4]) == pytest.approx(5 / 6)
    assert separation_auc([0.1, 0.2], [0.3, 0.4]) == 1.0
    assert separation_auc([0.3, 0.4], [0.1, 0.2]) == 0.0
    assert separation_auc([0.2, 0.2], [0.2]) == 0.5
    rng = np.random.default_rng(1)
    lower, higher = rng.normal(size=50), rng.normal(size=40) + 0.5
    brute = np.mean([(h > lo) + 0.5 * (h == lo) for h in higher for lo in lower])
    assert separation_auc(lower, higher) == pytest.approx(brute)


def test_group_medians_and_quality_on_hand_made_arrays() -> None:
    groups = ["paraphrase", "paraphrase", "contradiction", "contradiction", "code/changed"]
    reference = [0.10, 0.20, 0.50, 0.70, 0.05]
    candidate = [0.15, 0.30, 0.40, 0.80, 0.02]
    assert group_medians(reference, groups) == pytest.approx(
        {"paraphrase": 0.15, "contradiction": 0.60, "code/changed": 0.05}
    )
    q = quality(candidate, reference, groups, threshold=0.45, candidate_name="c", reference_name="r")
    assert q.spearman == pytest.approx(1.0)
    assert q.spearman_related == pytest.approx(1.0)  # no unrelated pairs here: the same pairs
    assert q.agreement == pytest.approx(4 / 5)  # 0.40 vs 0.50 straddle 0.45
    assert q.auc == 1.0
    assert q.reference_auc == 1.0
    assert q.medians["contradiction"] == pytest.approx(0.60)
    assert q.as_dict()["embedder"] == "c"
    with pytest.raises(ValueError, match="paraphrase and contradiction"):
        quality(
            candidate, reference, ["code/changed"] * 5, threshold=0.45, candidate_name="c", reference_name="r"
        )


# ------------------------------------------------------------------------- real embedders


class RandomEmbedder:
    """A vector per text from the text's hash: what an embedder that understands nothing scores."""

    name = "random-by-hash"

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
            row = np.random.default_rng(seed).normal(size=64)
            rows.append(row / np.linalg.norm(row))
        return np.asarray(rows, dtype=np.float32)


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def prose(pairs: list[CalibrationPair]) -> list[CalibrationPair]:
    return [p for p in pairs if p.category in PROSE]


@pytest.fixture(scope="module")
def reference_scores(minilm: MiniLMEmbedder, prose: list[CalibrationPair]) -> npt.NDArray[np.float64]:
    return pair_delta_s(minilm, prose)


@pytest.mark.timeout(300)  # embedding the 256 prose pairs takes ~15 s on 2 idle cores, more when busy
def test_minilm_separates_paraphrase_from_contradiction_and_orders_the_categories(
    prose: list[CalibrationPair], reference_scores: npt.NDArray[np.float64]
) -> None:
    groups = [p.group for p in prose]
    labels = np.asarray(groups)
    auc = separation_auc(
        reference_scores[labels == "paraphrase"], reference_scores[labels == "contradiction"]
    )
    assert auc >= MIN_REFERENCE_AUC
    medians = group_medians(reference_scores, groups)
    # measured 0.128 < 0.144 < 0.184 < 0.945: one changed fact barely moves ΔS above a rewording,
    # a denial moves it more, another topic far more
    assert (
        medians["paraphrase"] < medians["different_fact"] <= medians["contradiction"] < medians["unrelated"]
    )
    assert medians["unrelated"] > 0.45 > medians["contradiction"]  # the drift threshold sits between


@pytest.mark.timeout(300)
def test_a_random_embedder_fails_the_bar_the_reference_meets(
    minilm: MiniLMEmbedder, prose: list[CalibrationPair], reference_scores: npt.NDArray[np.float64]
) -> None:
    random_scores = pair_delta_s(RandomEmbedder(), prose)
    groups = [p.group for p in prose]
    q = quality(
        random_scores,
        reference_scores,
        groups,
        threshold=0.45,
        candidate_name="random",
        reference_name=minilm.name,
    )
    assert q.auc < MIN_REFERENCE_AUC <= q.reference_auc
    assert q.spearman < 0.5


def test_evaluate_scores_an_embedder_against_itself_perfectly(
    minilm: MiniLMEmbedder, pairs: list[CalibrationPair]
) -> None:
    shortest = sorted(pairs, key=lambda p: len(p.a) + len(p.b))
    sample = [p for p in shortest if p.category == "paraphrase"][:6]
    sample += [p for p in shortest if p.category == "contradiction"][:6]
    q = evaluate(minilm, minilm, sample, threshold=0.45)
    assert q.spearman == pytest.approx(1.0)
    assert q.agreement == 1.0
    assert q.auc == q.reference_auc


def test_max_tokens_truncates_long_texts_only_and_names_the_variant(minilm: MiniLMEmbedder) -> None:
    short = "You can get a full refund within 30 days of purchase."
    topics = [
        "Photosynthesis turns light, water and carbon dioxide into glucose and oxygen in chloroplasts.",
        "A TCP connection opens with a three-way handshake of SYN, SYN-ACK and ACK segments.",
        "The probability of rolling a seven with two fair dice is one in six.",
        "Production deploys start as a canary on five percent of traffic for thirty minutes.",
        "Parental leave lasts sixteen weeks at full salary for birth, adoptive and foster parents.",
        "Backups of the production database are kept for thirty-five days in a second region.",
    ]
    long = " ".join([short, *topics])  # ~130 tokens: the first 64 cover only the first topics
    truncated = MiniLMEmbedder(max_tokens=64)
    assert truncated.name == minilm.name + "-max64"
    assert MiniLMEmbedder(max_tokens=MAX_TOKENS).name == minilm.name
    np.testing.assert_allclose(truncated.embed([short]), minilm.embed([short]), atol=1e-6)
    assert not np.allclose(truncated.embed([long]), minilm.embed([long]), atol=1e-3)
    with pytest.raises(ValueError, match="max_tokens"):
        MiniLMEmbedder(max_tokens=MAX_TOKENS + 1)
