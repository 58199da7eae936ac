"""A deterministic bag-of-words embedder (hashed words, L2-normalised rows) that stands in for
MiniLM, so every expected ΔS can be recomputed independently of the builder."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

DIM = 1024
WORD = re.compile(r"\w+")


def vector(text: str) -> npt.NDArray[np.float32]:
    """The text's row: each word hashed into one of ``DIM`` counts, L2-normalised."""
    vec = np.zeros(DIM, dtype=np.float64)
    for word in WORD.findall(text.casefold()):
        vec[int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big") % DIM] += 1.0
    norm = float(np.linalg.norm(vec))
    return (vec / norm if norm else vec).astype(np.float32)


class BagOfWords:
    """Hash-of-words vectoriser; records every batch it was asked to embed."""

    name = "bag-of-words"

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    @property
    def embedded(self) -> list[str]:
        return [t for batch in self.batches for t in batch]

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.batches.append(list(texts))
        return np.stack([vector(t) for t in texts]).astype(np.float32)


class SlowBagOfWords(BagOfWords):
    """:class:`BagOfWords` at a set pace (``per_text_s`` of sleep per text, the GIL released as
    onnxruntime releases it): an embedder slower than arrival, reproducibly."""

    name = "bag-of-words-slow"

    def __init__(self, per_text_s: float) -> None:
        super().__init__()
        self.per_text_s = per_text_s

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        time.sleep(self.per_text_s * len(texts))
        return super().embed(texts)
