"""The ΔS benchmarks' answer generator (``tests/bench/payloads.py``): the checked-in length
histogram is honoured, every answer has the token count it drew, and the identical-answer share is
the stated one."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from scipy import stats  # type: ignore[import-untyped]

from shadowlane.compare.quality import normalise
from tests.bench.payloads import (
    ANSWER_LENGTHS,
    DS_CANDIDATES,
    IDENTICAL_SHARE,
    AnswerMix,
    LengthBin,
    LengthHistogram,
    answer_mix,
    answer_tokenizer,
    answer_tokens,
)

REQUESTS = 600  # 600 prod answers + ~1,440 written results: ~2,000 draws


@pytest.fixture(scope="module")
def mix() -> AnswerMix:
    return answer_mix(REQUESTS)


def written(mix: AnswerMix) -> list[str]:
    """Every answer that was written, in the order their lengths were drawn."""
    out: list[str] = []
    for request in mix.requests:
        out.append(request.prod)
        out.extend(answer for _, answer in request.results if answer != request.prod)
    return out


def bin_counts(histogram: LengthHistogram, lengths: list[int]) -> list[int]:
    counts = [0] * len(histogram.bins)
    for n in lengths:
        counts[histogram.bin_of(n)] += 1
    return counts


def fits(histogram: LengthHistogram, lengths: list[int]) -> float:
    """The chi-square p-value of ``lengths`` against ``histogram``'s shares."""
    expected = [b.share * len(lengths) for b in histogram.bins]
    return float(stats.chisquare(bin_counts(histogram, lengths), expected).pvalue)


def test_the_checked_in_histogram_spans_20_to_400_tokens_and_leans_to_60_200() -> None:
    histogram = LengthHistogram.load()
    assert (histogram.bins[0].lo, histogram.bins[-1].hi) == (20, 400)
    assert sum(b.share for b in histogram.bins) == pytest.approx(1.0)
    middle = sum(b.share for b in histogram.bins if b.lo >= 60 and b.hi <= 199)
    assert middle > 0.5


def test_a_histogram_with_a_gap_or_shares_not_summing_to_one_is_refused(tmp_path: Path) -> None:
    data = json.loads(ANSWER_LENGTHS.read_text("utf-8"))
    gap = tmp_path / "gap.json"
    gap.write_text(json.dumps({**data, "bins": [data["bins"][0], *data["bins"][2:]]}), "utf-8")
    with pytest.raises(ValueError, match="contiguous"):
        LengthHistogram.load(gap)
    short = tmp_path / "short.json"
    short.write_text(json.dumps({**data, "bins": data["bins"][:-1]}), "utf-8")
    with pytest.raises(ValueError, match="sum"):
        LengthHistogram.load(short)


def test_every_answer_has_exactly_the_tokens_it_drew(mix: AnswerMix) -> None:
    tokenizer = answer_tokenizer()
    texts = written(mix)
    assert len(texts) == len(mix.lengths)
    assert [len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)] == list(mix.lengths)
    assert answer_tokens(tokenizer, texts[0]) == mix.lengths[0]
    assert min(mix.lengths) >= 20
    assert max(mix.lengths) <= 400


def test_the_lengths_follow_the_checked_in_histogram(mix: AnswerMix) -> None:
    histogram = LengthHistogram.load()
    lengths = list(mix.lengths)
    assert fits(histogram, lengths) > 0.001
    for share, b in zip(
        [c / len(lengths) for c in bin_counts(histogram, lengths)], histogram.bins, strict=True
    ):
        assert share == pytest.approx(b.share, abs=0.035)
    # and the check has teeth: the same number of lengths drawn uniformly over 20-400 fails it
    rng = random.Random(1)
    uniform = [rng.randint(20, 400) for _ in lengths]
    assert fits(histogram, uniform) < 1e-6


def test_another_histogram_is_honoured_too() -> None:
    long_only = LengthHistogram((LengthBin(20, 299, 0.0), LengthBin(300, 400, 1.0)))
    mix = answer_mix(20, histogram=long_only, seed=3)
    assert all(300 <= n <= 400 for n in mix.lengths)


def test_the_identical_share_is_the_stated_one(mix: AnswerMix) -> None:
    assert mix.identical_share == IDENTICAL_SHARE == 0.2
    assert mix.pairs == REQUESTS * len(DS_CANDIDATES)
    assert mix.identical == round(IDENTICAL_SHARE * mix.pairs)
    for request in mix.requests:
        assert [c for c, _ in request.results] == list(DS_CANDIDATES)
        for _, answer in request.results:  # the others differ from prod's even after normalising
            assert answer == request.prod or normalise(answer) != normalise(request.prod)
    assert answer_mix(50, identical_share=0.5).identical == 75


def test_texts_to_embed_are_the_distinct_differing_answers_and_their_prod(mix: AnswerMix) -> None:
    texts = mix.texts_to_embed()
    assert len(texts) == len(set(texts))
    expected = {
        text for r in mix.requests for _, answer in r.results if answer != r.prod for text in (r.prod, answer)
    }
    assert set(texts) == expected
    everything = {t for r in mix.requests for t in (r.prod, *(a for _, a in r.results))}
    assert len(texts) < len(everything)  # prod answers whose results are all identical are left out


def test_answers_are_varied_prose_and_the_mix_is_deterministic(mix: AnswerMix) -> None:
    texts = written(mix)
    assert len(set(texts)) == len(texts)  # no answer repeats across requests
    vocabulary = {w.strip(".,:`").casefold() for t in texts for w in t.split()}
    assert len(vocabulary) > 150
    assert answer_mix(30) == answer_mix(30)
    assert answer_mix(30, seed=1) != answer_mix(30, seed=2)
