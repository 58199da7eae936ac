"""Sentence embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI, vLLM, TEI, ...).

A thin synchronous httpx adapter: texts go out in chunks of ``batch_size``, vectors come back
re-ordered by ``index`` and L2-normalised (not every server normalises). Failures are typed so the
comparator can decide between retry and give-up: 429, 5xx, timeouts and connection errors raise
:class:`EmbeddingServiceUnavailable` (a :class:`~shadowlane.errors.RetriableError`); any other non-2xx
answer or a malformed body raises :class:`EmbeddingServiceError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Final

import httpx
import numpy as np
import numpy.typing as npt
from pydantic import SecretStr

from shadowlane.errors import RetriableError, ShadowlaneError

DEFAULT_BATCH_SIZE: Final = 64
_BODY_EXCERPT: Final = 300


class EmbeddingServiceError(ShadowlaneError):
    """The embeddings endpoint refused the request or answered something unusable."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class EmbeddingServiceUnavailable(EmbeddingServiceError, RetriableError):
    """A transient failure of the endpoint (429, 5xx, timeout, connection): try again later."""


def embeddings_url(base_url: str) -> str:
    """Accept ``http://host``, ``http://host/v1`` or the full ``http://host/v1/embeddings``."""
    url = base_url.rstrip("/")
    if url.endswith("/embeddings"):
        return url
    if url.endswith("/v1"):
        return f"{url}/embeddings"
    return f"{url}/v1/embeddings"


class OpenAIEmbeddings:
    """Embedder backed by an OpenAI-compatible HTTP endpoint; rows are L2-normalised float32."""

    name: str

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: SecretStr | None = None,
        timeout_s: float = 30.0,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.name = f"openai:{model}"
        self.model = model
        self.batch_size = batch_size
        self.url = embeddings_url(base_url)
        headers = {"Accept": "application/json"}
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key.get_secret_value()}"
        self._client = httpx.Client(timeout=timeout_s, headers=headers)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts``; shape ``(len(texts), d)`` where ``d`` is whatever the model returns."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single str")
        chunks = [self._post(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        if not chunks:
            return np.zeros((0, 0), dtype=np.float32)
        dims = {c.shape[1] for c in chunks}
        if len(dims) != 1:
            raise EmbeddingServiceError(f"{self.url} returned vectors of differing sizes {sorted(dims)}")
        vectors = np.concatenate(chunks, axis=0)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: npt.NDArray[np.float32] = (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)
        return unit

    def _post(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        payload = {"model": self.model, "input": list(texts), "encoding_format": "float"}
        try:
            response = self._client.post(self.url, json=payload)
        except httpx.TimeoutException as exc:
            raise EmbeddingServiceUnavailable(f"{self.url} timed out: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise EmbeddingServiceUnavailable(f"{self.url} unreachable: {exc!r}") from exc
        status = response.status_code
        if status >= 300:
            message = f"{self.url} answered HTTP {status}: {response.text[:_BODY_EXCERPT]!r}"
            if status == 429 or status >= 500:
                raise EmbeddingServiceUnavailable(message, status_code=status)
            raise EmbeddingServiceError(message, status_code=status)
        try:
            return self._parse(response.json(), len(texts))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise EmbeddingServiceError(
                f"{self.url} returned an unusable body ({exc}): {response.text[:_BODY_EXCERPT]!r}",
                status_code=status,
            ) from exc

    @staticmethod
    def _parse(body: Any, expected: int) -> npt.NDArray[np.float32]:
        items = body["data"]
        if not isinstance(items, list) or len(items) != expected:
            got = len(items) if isinstance(items, list) else type(items).__name__
            raise ValueError(f"expected {expected} embeddings, got {got}")
        indices = [item.get("index") for item in items]
        ordered = items  # servers that omit "index" answer in input order
        if any(i is not None for i in indices):
            if sorted(int(i) for i in indices) != list(range(expected)):
                raise ValueError(f"indices {indices} are not 0..{expected - 1}")
            ordered = sorted(items, key=lambda item: int(item["index"]))
        vectors = np.asarray([item["embedding"] for item in ordered], dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] == 0 or not np.isfinite(vectors).all():
            raise ValueError(f"embeddings are not a finite (n, d) matrix: shape {vectors.shape}")
        return vectors

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAIEmbeddings:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
