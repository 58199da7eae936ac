"""The embedding cache: rows in order, one inner call for the misses, LRU bounds by entries and by
bytes, models kept apart, counters and their exposition, the wiring in ``build_embedder`` and the
comparator, and the real MiniLM giving the same ΔS with and without the cache over a run of polls."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from shadowlane.compare.embed_cache import CachingEmbedder, EmbeddingStore, cache_key
from shadowlane.compare.embedder import MiniLMEmbedder, build_embedder
from shadowlane.compare.scores import Scores
from shadowlane.compare.worker import Comparator
from shadowlane.settings import CompareSettings, Settings
from tests.support.bag_of_words import DIM, BagOfWords, vector

ROW_BYTES = DIM * 4  # float32


class Negated(BagOfWords):
    """Another model: the same words, the opposite vectors."""

    name = "negated-bag-of-words"

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return -super().embed(texts)


class Failing(BagOfWords):
    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        raise ConnectionError("embedding service down")


def _cached(max_entries: int = 100, max_bytes: int = 100 * ROW_BYTES) -> tuple[CachingEmbedder, BagOfWords]:
    inner = BagOfWords()
    return CachingEmbedder(inner, max_entries=max_entries, max_bytes=max_bytes), inner


def _expected(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    return np.stack([vector(t) for t in texts])


def test_rows_come_back_in_order_and_only_misses_are_embedded_in_one_call() -> None:
    cache, inner = _cached()
    first = cache.embed(["alpha one", "beta two"])
    np.testing.assert_array_equal(first, _expected(["alpha one", "beta two"]))
    texts = ["gamma three", "beta two", "delta four", "alpha one", "gamma three"]
    rows = cache.embed(texts)
    np.testing.assert_array_equal(rows, _expected(texts))
    assert rows.dtype == np.float32
    # the misses, deduplicated, in their order of first appearance, in one call
    assert inner.batches == [["alpha one", "beta two"], ["gamma three", "delta four"]]
    assert cache.counters() == {"hits": 3, "misses": 4, "evictions": 0}
    assert cache.gauges() == {"entries": 4, "bytes": 4 * ROW_BYTES}
    np.testing.assert_array_equal(
        cache.embed(["delta four", "alpha one"]), _expected(["delta four", "alpha one"])
    )
    assert len(inner.batches) == 2  # all hits: the inner embedder is not called
    assert cache.counters()["hits"] == 5
    assert cache.name == "bag-of-words"


def test_returned_rows_are_copies_and_the_store_keeps_float32() -> None:
    cache, _ = _cached()
    rows = cache.embed(["alpha one"])
    rows[0] = 0.0
    np.testing.assert_array_equal(cache.embed(["alpha one"]), _expected(["alpha one"]))
    (stored,) = cache.store.get_many([cache_key("bag-of-words", "alpha one")])
    assert stored is not None
    assert stored.dtype == np.float32
    assert stored.shape == (DIM,)
    assert not stored.flags.writeable


def test_least_recently_used_is_evicted_past_max_entries() -> None:
    cache, inner = _cached(max_entries=3)
    cache.embed(["a", "b", "c"])
    cache.embed(["a"])  # a is now the most recently used: b is the oldest
    cache.embed(["d"])
    assert cache.counters()["evictions"] == 1
    assert cache.gauges() == {"entries": 3, "bytes": 3 * ROW_BYTES}
    inner.batches.clear()
    cache.embed(["a", "c", "d"])
    assert inner.batches == []
    cache.embed(["b"])
    assert inner.batches == [["b"]]  # evicted: embedded again (and a, now the oldest, goes)
    assert cache.counters() == {"hits": 4, "misses": 5, "evictions": 2}


def test_least_recently_used_is_evicted_past_max_bytes() -> None:
    cache, inner = _cached(max_entries=1000, max_bytes=2 * ROW_BYTES + ROW_BYTES // 2)
    cache.embed(["a", "b", "c"])  # one batch larger than the bound: its oldest rows go
    assert cache.gauges() == {"entries": 2, "bytes": 2 * ROW_BYTES}
    assert cache.counters()["evictions"] == 1
    inner.batches.clear()
    cache.embed(["b", "c"])
    assert inner.batches == []
    tiny, tiny_inner = _cached(max_bytes=ROW_BYTES - 1)  # no vector fits: nothing is kept
    tiny.embed(["a"])
    tiny.embed(["a"])
    assert tiny_inner.batches == [["a"], ["a"]]
    assert tiny.gauges() == {"entries": 0, "bytes": 0}


def test_models_sharing_a_store_never_see_each_others_vectors() -> None:
    store = EmbeddingStore(max_entries=10, max_bytes=10 * ROW_BYTES)
    plain, negated = BagOfWords(), Negated()
    a = CachingEmbedder(plain, store=store)
    b = CachingEmbedder(negated, store=store)
    np.testing.assert_array_equal(a.embed(["same text"]), _expected(["same text"]))
    np.testing.assert_array_equal(b.embed(["same text"]), -_expected(["same text"]))
    assert plain.batches == [["same text"]]
    assert negated.batches == [["same text"]]
    assert store.entries == 2
    assert cache_key("m1", "xtext") != cache_key("m1x", "text")  # the name is length-prefixed
    np.testing.assert_array_equal(b.embed(["same text"]), -_expected(["same text"]))
    assert (a.counters()["hits"], b.counters()["hits"]) == (0, 1)


def test_a_failed_inner_call_caches_and_counts_nothing() -> None:
    cache = CachingEmbedder(Failing(), max_entries=10, max_bytes=10 * ROW_BYTES)
    with pytest.raises(ConnectionError):
        cache.embed(["a", "b"])
    assert cache.counters() == {"hits": 0, "misses": 0, "evictions": 0}
    assert cache.gauges() == {"entries": 0, "bytes": 0}


def test_input_checks() -> None:
    cache, _ = _cached()
    with pytest.raises(TypeError):
        cache.embed("not a list")
    with pytest.raises(ValueError, match="max_entries"):
        EmbeddingStore(0, 10)


def test_a_prod_answer_shared_across_polls_is_embedded_once() -> None:
    """The comparator's own batching (Scores) dedupes within a poll; the cache across polls."""
    cache, inner = _cached()
    prod = "The refund was issued to your card on Monday."
    first = Scores(True)
    first.want(prod, "Your refund went to the card on Monday.")
    first.compute(cache)
    second = Scores(True)  # the baseline's result, a poll later
    second.want(prod, "We refunded your card on Monday.")
    second.compute(cache)
    assert inner.embedded.count(prod) == 1
    assert cache.counters() == {"hits": 1, "misses": 3, "evictions": 0}


def _exposition(cache: CachingEmbedder) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(cache.collector("shadowlane_compare", {"group": "g"}))
    lines = generate_latest(registry).decode().splitlines()
    samples = [line.split(" ") for line in lines if line.startswith("shadowlane_compare_embed_cache")]
    return {name: float(value) for name, value in samples}


def test_counters_and_gauges_are_exposed() -> None:
    cache, _ = _cached(max_entries=2)
    cache.embed(["a", "b", "c"])
    cache.embed(["c"])
    assert _exposition(cache) == {
        'shadowlane_compare_embed_cache_hits_total{group="g"}': 1.0,
        'shadowlane_compare_embed_cache_misses_total{group="g"}': 3.0,
        'shadowlane_compare_embed_cache_evictions_total{group="g"}': 1.0,
        'shadowlane_compare_embed_cache_entries{group="g"}': 2.0,
        'shadowlane_compare_embed_cache_bytes{group="g"}': float(2 * ROW_BYTES),
    }


def test_the_comparator_exports_its_caches_counters() -> None:
    settings = Settings()
    cache, _ = _cached()
    cache.embed(["a", "a"])
    registry = CollectorRegistry()
    for collector in Comparator(settings, cache, {}).metrics.collectors():
        registry.register(collector)
    text = generate_latest(registry).decode()
    group = settings.compare.group_id
    assert f'shadowlane_compare_embed_cache_hits_total{{group="{group}"}} 1.0' in text
    assert f'shadowlane_compare_embed_cache_misses_total{{group="{group}"}} 1.0' in text
    bare = CollectorRegistry()
    for collector in Comparator(settings, BagOfWords(), {}).metrics.collectors():
        bare.register(collector)
    assert "embed_cache" not in generate_latest(bare).decode()  # no cache, no series


# --- the real model --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder(intra_op_threads=1)  # the default batch of 16


def test_build_embedder_puts_the_cache_in_front_by_default(minilm: MiniLMEmbedder) -> None:
    settings = CompareSettings(embed_cache_entries=7, embed_cache_mb=3)
    built = build_embedder(settings)
    assert isinstance(built, CachingEmbedder)
    assert isinstance(built.inner, MiniLMEmbedder)
    assert built.name == minilm.name
    assert (built.store.max_entries, built.store.max_bytes) == (7, 3 * 2**20)
    assert CompareSettings().embed_cache_entries == 50_000
    assert isinstance(build_embedder(CompareSettings(embed_cache_entries=0)), MiniLMEmbedder)
    assert build_embedder(CompareSettings(embedder="none")) is None


_SENTENCES = [
    "Your order {n} shipped on Tuesday and should arrive within three business days.",
    "To reset the password, open Settings, choose Security and follow the link we e-mail you.",
    "The invoice total of {n} EUR includes VAT at the standard rate.",
    "I could not find a booking under that reference; please check the number and try again.",
    "The API returns HTTP 429 when you exceed {n} requests per minute.",
    "def total(items):\n    return sum(item.price * item.qty for item in items)",
    'The tool call get_weather(city="Oslo") returned {n} degrees and light rain.',
    "Refunds are processed within {n} days of receiving the returned item.",
    "Kafka consumers in one group share the partitions of the topics they subscribe to.",
    "The contract renews automatically unless cancelled {n} days before the end of the term.",
    "Unfortunately that product is out of stock; we expect new inventory next week.",
    "SELECT customer_id, SUM(amount) FROM payments GROUP BY customer_id HAVING SUM(amount) > {n};",
    "Your subscription was upgraded to the Pro plan; the difference is prorated.",
    "The flight departs at 07:{n:02d} from terminal 2, gate B14.",
    "Please restart the router, wait a minute, and then reconnect your laptop to the network.",
    "Photosynthesis turns light, water and carbon dioxide into glucose and oxygen.",
]


def _answer(rng: random.Random) -> str:
    """An answer of 1 to 4 sentences (about 15 to 90 tokens), or one of 16 (past the 256-token limit)."""
    count = 16 if rng.random() < 0.04 else rng.randint(1, 4)
    return " ".join(rng.choice(_SENTENCES).format(n=rng.randrange(60)) for _ in range(count))


def test_minilm_delta_s_is_the_same_with_and_without_the_cache(minilm: MiniLMEmbedder) -> None:
    """A run of polls: each request's prod answer is read by its candidate and its baseline, whose
    results land in different polls; a fifth of the requests replay an earlier prod answer. The
    cached run embeds each text once, beside other companions than the uncached run."""
    rng = random.Random(20)
    prods: list[str] = []
    pairs: list[tuple[str, str]] = []
    for _ in range(120):
        prod = rng.choice(prods) if prods and rng.random() < 0.2 else _answer(rng)
        prods.append(prod)
        pairs.append((prod, _answer(rng)))  # the candidate
        pairs.append((prod, prod if rng.random() < 0.3 else _answer(rng)))  # the baseline
    rng.shuffle(pairs)
    polls: list[list[tuple[str, str]]] = []
    start = 0
    while start < len(pairs):
        size = rng.randint(4, 40)
        polls.append(pairs[start : start + size])
        start += size
    cache = CachingEmbedder(minilm)
    fresh: dict[tuple[str, str], float | None] = {}
    cached: dict[tuple[str, str], float | None] = {}
    for poll in polls:
        for embedder, out in ((minilm, fresh), (cache, cached)):
            scores = Scores(True)
            for a, b in poll:
                scores.want(a, b)
            scores.compute(embedder)
            out.update({pair: scores.get(*pair) for pair in poll})
    distinct = {t for pair in pairs for t in pair}
    assert len(distinct) >= 250
    assert cache.counters()["misses"] == cache.gauges()["entries"] <= len(distinct)
    assert cache.counters()["hits"] > 0
    assert fresh.keys() == cached.keys() == set(pairs)
    values = [(fresh[p], cached[p]) for p in fresh]
    diffs = [abs(a - b) for a, b in values if a is not None and b is not None]
    assert len(diffs) == len(values)
    assert max(diffs) <= 1e-6, max(diffs)
    assert fresh == cached  # identical: a row does not depend on its batch companions (or padding)
