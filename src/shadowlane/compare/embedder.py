"""The comparator's embedding interface and the semantic-drift score ΔS.

ΔS(prod, shadow) = 1 − cos(e(prod), e(shadow)), clipped to [0, 1]: 0 means "says the same thing",
values near 1 mean unrelated answers (the raw value can exceed 1 when the cosine is negative; it is
clipped). Embeddings are computed in batches behind :class:`Embedder`; two implementations exist:

- :class:`~shadowlane.compare.embed_onnx.MiniLMEmbedder` (default, ``embedder="minilm"``): local
  all-MiniLM-L6-v2 int8 ONNX, no network, 384 dimensions; on the CPU, or a GPU per
  ``embed_device``.
- :class:`~shadowlane.compare.embed_openai.OpenAIEmbeddings` (``embedder="openai"``): any
  OpenAI-compatible ``/v1/embeddings`` endpoint at ``embed_url``.
- :class:`~shadowlane.compare.embed_static.StaticEmbedder` (``embedder="static"``, opt-in): a token
  table distilled from the same MiniLM, far faster and less faithful (docs/embedders.md).

``embedder="none"`` disables ΔS: :func:`build_embedder` returns ``None``. Otherwise, with
``embed_cache_entries`` > 0 (the default), the embedder is wrapped in a
:class:`~shadowlane.compare.embed_cache.CachingEmbedder`: each distinct text is embedded once.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
from pydantic import SecretStr

from shadowlane.compare.embed_cache import CachingEmbedder
from shadowlane.compare.embed_onnx import (
    MODEL_SHA256,
    TOKENIZER_SHA256,
    MiniLMEmbedder,
    ModelIntegrityError,
)
from shadowlane.compare.embed_openai import (
    EmbeddingServiceError,
    EmbeddingServiceUnavailable,
    OpenAIEmbeddings,
)
from shadowlane.compare.embed_static import StaticEmbedder
from shadowlane.settings import CompareSettings

__all__ = [
    "MODEL_SHA256",
    "TOKENIZER_SHA256",
    "CachingEmbedder",
    "Embedder",
    "EmbeddingServiceError",
    "EmbeddingServiceUnavailable",
    "MiniLMEmbedder",
    "ModelIntegrityError",
    "OpenAIEmbeddings",
    "StaticEmbedder",
    "build_embedder",
    "delta_s",
]

EMBEDDER_CHOICES = ("minilm", "static", "openai", "none")


class Embedder(Protocol):
    """Turns texts into unit-length vectors, many at a time."""

    #: Identifies the model in results, so ΔS values from different embedders are never mixed.
    name: str

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """float32 array of shape ``(len(texts), d)`` whose rows are L2-normalised."""
        ...


def delta_s(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Row-wise ``1 − cos(a[i], b[i])`` clipped to [0, 1]; shape ``(n,)``.

    Rows need not be normalised (the cosine divides by the norms); a zero row has cosine 0, so its
    ΔS is 1. 1-D inputs are treated as a single row.
    """
    x = np.atleast_2d(np.asarray(a, dtype=np.float64))
    y = np.atleast_2d(np.asarray(b, dtype=np.float64))
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"delta_s needs two (n, d) arrays of the same shape, got {x.shape} and {y.shape}")
    norms = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
    dots = np.einsum("ij,ij->i", x, y)
    cos = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0.0)
    drift: npt.NDArray[np.float32] = np.clip(1.0 - cos, 0.0, 1.0).astype(np.float32)
    return drift


def build_embedder(
    settings: CompareSettings, *, api_key: SecretStr | None = None, state_dir: Path | None = None
) -> Embedder | None:
    """The embedder ``settings.embedder`` names, or ``None`` for ``"none"`` (ΔS disabled); behind
    the embedding cache unless ``embed_cache_entries`` is 0.

    ``api_key`` is only used by ``"openai"``. Loading ``"minilm"`` verifies the model and tokenizer
    hashes and builds the onnxruntime session on ``embed_device``, so call this once per process.
    ``"static"`` keeps its distilled table under ``state_dir / "embedders"`` (the settings'
    ``state_dir``); without ``state_dir`` it distils the table in memory on every call (about 16 s,
    with a MiniLM on ``embed_device``). ``embed_device="cuda"`` without a usable CUDA provider is a
    :class:`~shadowlane.errors.ConfigError`.
    """
    embedder = _bare_embedder(settings, api_key, state_dir)
    if embedder is None or settings.embed_cache_entries == 0:
        return embedder
    return CachingEmbedder(
        embedder, max_entries=settings.embed_cache_entries, max_bytes=settings.embed_cache_mb * 2**20
    )


def _bare_embedder(
    settings: CompareSettings, api_key: SecretStr | None, state_dir: Path | None
) -> Embedder | None:
    kind = settings.embedder.strip().lower()
    if kind == "none":
        return None
    if kind == "minilm":
        return MiniLMEmbedder(batch_size=settings.embed_batch, device=settings.embed_device)
    if kind == "static":
        return StaticEmbedder(
            None if state_dir is None else state_dir / "embedders",
            minilm=partial(MiniLMEmbedder, device=settings.embed_device),
        )
    if kind == "openai":
        if not settings.embed_url:
            raise ValueError('compare.embedder="openai" needs compare.embed_url')
        return OpenAIEmbeddings(
            settings.embed_url,
            settings.embed_model,
            api_key=api_key or settings.embed_api_key,
            batch_size=settings.embed_batch,
        )
    raise ValueError(f"unknown compare.embedder {settings.embedder!r}; expected one of {EMBEDDER_CHOICES}")
