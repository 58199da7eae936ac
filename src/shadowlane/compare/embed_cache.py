"""The embedding cache: each distinct text is embedded once, across polls and requests.

:class:`CachingEmbedder` wraps any :class:`~shadowlane.compare.embedder.Embedder`. A prod answer is
read by every candidate and by the baseline of its request, whose results arrive in different
polls, and replayed answers repeat across requests; the comparator's per-poll batch
(:class:`~shadowlane.compare.scores.Scores`) dedupes only within a poll, this dedupes across them.

- **Key**: blake2b-128 of the inner embedder's ``name`` and the text exactly as it is passed to
  ``embed`` (the comparator passes masked answers; normalisation only decides which pairs score 0
  without embedding, it never changes what is embedded). Vectors of different models never mix,
  even in one shared :class:`EmbeddingStore`, and a text is never held in memory by the cache.
- **Bound**: least recently used entries are evicted past ``max_entries`` vectors or past
  ``max_bytes`` of vector data (float32 × dimensions each; the per-entry bookkeeping of roughly
  250 bytes is not counted). A vector larger than ``max_bytes`` alone is not kept.
- **embed()**: cached rows are returned as they are; the misses (deduplicated) go to the inner
  embedder in one call, in their order of first appearance; the rows come back in input order.
- **Counters**: ``hits`` (texts served without embedding, including repeats within one call),
  ``misses`` (texts the inner embedder embedded), ``evictions``; gauges ``entries`` and
  ``bytes``. Exposed as ``<prefix>_embed_cache_*`` by :meth:`CachingEmbedder.collector`.

Thread-safe: the store is locked for lookups and inserts, never while the inner embedder runs.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from shadowlane.metrics import StatsCollector

if TYPE_CHECKING:
    from shadowlane.compare.embedder import Embedder

Vector = npt.NDArray[np.float32]


def cache_key(model: str, text: str) -> bytes:
    """The content address of ``text`` embedded by ``model``: blake2b-128 over the model name
    (length-prefixed, so no name/text split is ambiguous) and the text's UTF-8 bytes."""
    name = model.encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(len(name).to_bytes(4, "big"), digest_size=16)
    digest.update(name)
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.digest()


class EmbeddingStore:
    """A bounded LRU map from :func:`cache_key` to a read-only float32 vector."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError(f"max_entries and max_bytes must be >= 1, got {max_entries}, {max_bytes}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._vectors: OrderedDict[bytes, Vector] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.evictions = 0

    @property
    def entries(self) -> int:
        return len(self._vectors)

    def get_many(self, keys: Sequence[bytes]) -> list[Vector | None]:
        """The vector of each key (``None`` if absent); the found ones become most recently used."""
        found: list[Vector | None] = []
        with self._lock:
            vectors = self._vectors
            for key in keys:
                vector = vectors.get(key)
                if vector is not None:
                    vectors.move_to_end(key)
                found.append(vector)
        return found

    def put_many(self, items: Iterable[tuple[bytes, Vector]]) -> None:
        """Keep each vector (a float32 copy), then evict the least recently used past the bounds."""
        copies = [(key, _frozen(vector)) for key, vector in items]
        with self._lock:
            vectors = self._vectors
            for key, vector in copies:
                if vector.nbytes > self.max_bytes:
                    continue
                old = vectors.pop(key, None)
                if old is not None:
                    self.bytes -= old.nbytes
                vectors[key] = vector
                self.bytes += vector.nbytes
            while len(vectors) > self.max_entries or self.bytes > self.max_bytes:
                _key, evicted = vectors.popitem(last=False)
                self.bytes -= evicted.nbytes
                self.evictions += 1


def _frozen(vector: npt.ArrayLike) -> Vector:
    """A read-only float32 copy: never a view that keeps its whole batch alive."""
    copy: Vector = np.array(vector, dtype=np.float32, copy=True)
    copy.flags.writeable = False
    return copy


class CachingEmbedder:
    """An :class:`~shadowlane.compare.embedder.Embedder` that embeds each distinct text once.

    ``store`` may be shared by several cached embedders (their keys differ by model name);
    without one, a store of ``max_entries`` / ``max_bytes`` is created. Its ``name`` is the inner
    embedder's: cached and fresh vectors are the same model's.
    """

    def __init__(
        self,
        inner: Embedder,
        *,
        max_entries: int = 50_000,
        max_bytes: int = 128 * 2**20,
        store: EmbeddingStore | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.store = store if store is not None else EmbeddingStore(max_entries, max_bytes)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """float32 rows of ``texts`` in order, embedding only the texts not cached (in one call)."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single str")
        if not texts:
            return self.inner.embed(texts)  # the inner embedder's own empty shape
        name = self.inner.name
        keys = [cache_key(name, text) for text in texts]
        found = self.store.get_many(keys)
        todo: dict[bytes, int] = {}  # key: its row among the misses
        missing: list[str] = []
        for key, text, vector in zip(keys, texts, found, strict=True):
            if vector is None and key not in todo:
                todo[key] = len(missing)
                missing.append(text)
        fresh = self.inner.embed(missing) if missing else None
        dims = {v.shape[0] for v in found if v is not None}
        if fresh is not None:
            dims.add(fresh.shape[1])
        if len(dims) != 1:
            raise ValueError(f"{name}: cached and fresh vectors differ in size {sorted(dims)}")
        out = np.empty((len(texts), dims.pop()), dtype=np.float32)
        for row, (key, vector) in enumerate(zip(keys, found, strict=True)):
            if vector is not None:
                out[row] = vector
            else:
                assert fresh is not None
                out[row] = fresh[todo[key]]
        if fresh is not None:
            self.store.put_many(zip(todo, fresh, strict=True))
        with self._lock:
            self.misses += len(missing)
            self.hits += len(texts) - len(missing)
        return out

    def counters(self) -> dict[str, int]:
        """``hits``, ``misses`` (this embedder's) and ``evictions`` (its store's), monotonic."""
        return {"hits": self.hits, "misses": self.misses, "evictions": self.store.evictions}

    def gauges(self) -> dict[str, int]:
        """``entries`` and ``bytes`` (of vector data) in the store now."""
        return {"entries": self.store.entries, "bytes": self.store.bytes}

    def collector(self, prefix: str, labels: Mapping[str, str] | None = None) -> StatsCollector:
        """``<prefix>_embed_cache_{hits,misses,evictions}_total`` and ``…_{entries,bytes}``."""
        return StatsCollector(
            prefix,
            lambda: {f"embed_cache_{k}": v for k, v in self.counters().items()},
            gauges=lambda: {f"embed_cache_{k}": v for k, v in self.gauges().items()},
            labels=labels,
        )
