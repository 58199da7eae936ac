"""The static embedder: a token-vector table distilled from the pinned MiniLM, the opt-in fast ΔS.

model2vec's recipe, applied here to the model the project already pins (all-MiniLM-L6-v2 int8 ONNX,
Apache-2.0, see ``data/NOTICE``), so no new weights are downloaded:

1. **Distil** (:func:`distil_table`): every vocabulary id ``t`` of the pinned tokenizer goes through
   the MiniLM encoder (:meth:`~shadowlane.compare.embed_onnx.MiniLMEmbedder.token_states`) as the
   3-token input ``[CLS] t [SEP]``; the 3 positions of ``last_hidden_state`` are mean-pooled → a
   ``(vocab, 384)`` table (about 16 s on 2 cores, on the device the MiniLM was built for).
2. **Reduce**: centre on the mean of the ordinary-token rows (ids ≥ :data:`FIRST_ORDINARY_ID`, i.e.
   not ``[unused]``/special/single-character entries) and project onto their principal components
   3 to 258 (the top :data:`DROPPED_COMPONENTS` are dropped, as model2vec does) → ``(vocab, 256)``.
3. **Embed** (:class:`StaticEmbedder`): a text's vector is the SIF-weighted sum of the rows of its
   token ids, weight ``a / (a + p(t))`` with ``a`` = :data:`SIF_A` and ``p`` a Zipf law on the
   WordPiece rank (the vocabulary is ordered roughly by frequency: ``p ∝ 1 / max(t − 1995, 1)``),
   then L2-normalised. ``[CLS]``/``[SEP]``/``[PAD]`` weigh nothing; nothing is truncated. A text
   without tokens embeds as the zero vector, so its ΔS against any non-empty text is 1.

The table is built on first use and kept as ``<cache_dir>/<RECIPE>-<key>.npy`` with a JSON sidecar
(recipe, source hashes, shape, dtype and the ``.npy`` file's sha256); ``key`` hashes
:data:`RECIPE`, ``MODEL_SHA256`` and ``TOKENIZER_SHA256``. Both files are written atomically
(temporary file + rename). A missing, corrupt or mismatched file is rebuilt, never used.

A text's vector depends only on its own tokens (not on the batch it came in), so a rescore
reproduces the comparator's ΔS exactly. Any change of the recipe or of the source model must bump
:data:`RECIPE`: it is the embedder's ``name`` and part of the cached table's file name, and the
embedding cache keys vectors by it, so vectors of two tables never mix.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from shadowlane.compare.embed_onnx import (
    MODEL_SHA256,
    TOKENIZER_SHA256,
    EncoderInputs,
    MiniLMEmbedder,
    load_tokenizer,
)

log = logging.getLogger(__name__)

#: The embedder's name and the table's version: bump on any change of the recipe or the source model.
RECIPE: Final = "static-minilm-l6-v1"
#: Dimensions kept after the projection.
DIMS: Final = 256
#: Leading principal components dropped (the dominant directions shared by all tokens).
DROPPED_COMPONENTS: Final = 2
#: The first WordPiece id after the ``[unused]``, special and single-character entries.
FIRST_ORDINARY_ID: Final = 1996
#: The SIF smoothing constant ``a`` of the weight ``a / (a + p(t))``.
SIF_A: Final = 1e-3
#: ``[CLS] t [SEP]`` inputs per session run while distilling.
DISTIL_BATCH: Final = 512

FloatTable = npt.NDArray[np.float32]


def _special_id(tokenizer: Tokenizer, token: str) -> int:
    token_id = tokenizer.token_to_id(token)
    if token_id is None:
        raise ValueError(f"the tokenizer has no {token} token")
    return int(token_id)


def token_vectors(minilm: MiniLMEmbedder, *, batch_size: int = DISTIL_BATCH) -> FloatTable:
    """Step 1: ``(vocab, minilm.dim)``, row ``t`` the mean of MiniLM's ``last_hidden_state`` over
    the input ``[CLS] t [SEP]`` (attention mask ones, token types zeros)."""
    tokenizer = minilm.tokenizer
    vocab = tokenizer.get_vocab_size()
    cls, sep = _special_id(tokenizer, "[CLS]"), _special_id(tokenizer, "[SEP]")
    out = np.empty((vocab, minilm.dim), dtype=np.float32)
    for start in range(0, vocab, batch_size):
        ids = np.arange(start, min(start + batch_size, vocab), dtype=np.int64)
        inputs = np.stack([np.full_like(ids, cls), ids, np.full_like(ids, sep)], axis=1)
        batch = EncoderInputs(inputs, np.ones_like(inputs), np.zeros_like(inputs))
        out[start : start + ids.size] = minilm.token_states(batch).hidden.mean(axis=1)
    return out


def reduce_dimensions(vectors: npt.NDArray[np.floating]) -> FloatTable:
    """Step 2: centre ``vectors`` on the mean of the ordinary-token rows and project them onto those
    rows' principal components ``DROPPED_COMPONENTS + 1`` to ``DROPPED_COMPONENTS + DIMS``.

    Each component's sign is fixed (its largest-magnitude coordinate positive), so the table does
    not depend on the eigensolver's arbitrary signs."""
    if vectors.ndim != 2 or vectors.shape[0] <= FIRST_ORDINARY_ID:
        raise ValueError(f"expected a (vocab, d) table with vocab > {FIRST_ORDINARY_ID}, got {vectors.shape}")
    if vectors.shape[1] < DROPPED_COMPONENTS + DIMS:
        raise ValueError(f"need at least {DROPPED_COMPONENTS + DIMS} dimensions, got {vectors.shape[1]}")
    x = np.asarray(vectors, dtype=np.float64)
    ordinary = x[FIRST_ORDINARY_ID:]
    mean = ordinary.mean(axis=0)
    centred = ordinary - mean
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)
    order = np.argsort(eigenvalues)[::-1][DROPPED_COMPONENTS : DROPPED_COMPONENTS + DIMS]
    components = eigenvectors[:, order]
    signs = np.sign(components[np.abs(components).argmax(axis=0), np.arange(components.shape[1])])
    components *= np.where(signs == 0.0, 1.0, signs)
    reduced: FloatTable = ((x - mean) @ components).astype(np.float32)
    return reduced


def distil_table(minilm: MiniLMEmbedder, *, batch_size: int = DISTIL_BATCH) -> FloatTable:
    """The ``(vocab, DIMS)`` float32 table of :data:`RECIPE` from a MiniLM session (steps 1 and 2)."""
    return reduce_dimensions(token_vectors(minilm, batch_size=batch_size))


def sif_weights(vocab: int) -> npt.NDArray[np.float32]:
    """Step 3's per-id weight ``a / (a + p(t))``, ``p`` a Zipf law on ``max(t − 1995, 1)`` normalised
    over the whole vocabulary. The 1997 ids below the ordinary word pieces share rank 1 and so most
    of the mass, which makes the weighting mild (0.67 at rank 1, 0.95 at rank 10); normalising over
    the ordinary ids alone, or other ``a``, scored lower against MiniLM."""
    rank = np.maximum(np.arange(vocab, dtype=np.float64) - (FIRST_ORDINARY_ID - 1), 1.0)
    p = 1.0 / rank
    p /= p.sum()
    weights: npt.NDArray[np.float32] = (SIF_A / (SIF_A + p)).astype(np.float32)
    return weights


# --- the table's storage ---------------------------------------------------------------------------


def table_key() -> str:
    """What the cached table depends on: the recipe and the pinned model and tokenizer."""
    source = f"{RECIPE}\n{MODEL_SHA256}\n{TOKENIZER_SHA256}\n".encode()
    return hashlib.sha256(source).hexdigest()[:16]


def table_path(cache_dir: Path) -> Path:
    """The ``.npy`` file of the current recipe's table under ``cache_dir`` (sidecar: ``.json``)."""
    return cache_dir / f"{RECIPE}-{table_key()}.npy"


def _metadata(table: FloatTable, file_sha256: str) -> dict[str, object]:
    return {
        "recipe": RECIPE,
        "model_sha256": MODEL_SHA256,
        "tokenizer_sha256": TOKENIZER_SHA256,
        "shape": list(table.shape),
        "dtype": str(table.dtype),
        "sha256": file_sha256,
    }


def _npy_bytes(table: FloatTable) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, table, allow_pickle=False)
    return buffer.getvalue()


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_table(path: Path, table: FloatTable) -> None:
    """Write ``table`` to ``path`` and its sidecar, each atomically (the ``.npy`` first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _npy_bytes(table)
    _write_atomically(path, data)
    meta = _metadata(table, hashlib.sha256(data).hexdigest())
    _write_atomically(path.with_suffix(".json"), (json.dumps(meta, indent=2) + "\n").encode())


def load_table(path: Path, vocab: int) -> FloatTable | None:
    """The table at ``path`` if it is intact and made by the current recipe for a ``vocab``-row
    tokenizer; ``None`` when it is missing, and ``None`` with a warning when it is unusable."""
    sidecar = path.with_suffix(".json")
    if not path.exists() and not sidecar.exists():
        return None
    try:
        meta = json.loads(sidecar.read_text("utf-8"))
        data = path.read_bytes()
        expected = _metadata(np.empty((vocab, DIMS), dtype=np.float32), hashlib.sha256(data).hexdigest())
        if meta != expected:
            raise ValueError("the sidecar does not match the file or the current recipe")
        table = np.load(io.BytesIO(data), allow_pickle=False)
        if table.shape != (vocab, DIMS) or table.dtype != np.float32 or not np.isfinite(table).all():
            raise ValueError(f"unexpected table {table.shape} {table.dtype}")
    except (OSError, ValueError, TypeError) as exc:
        log.warning("static embedder table %s is unusable (%s); rebuilding it", path, exc)
        return None
    loaded: FloatTable = table
    return loaded


# --- the embedder ----------------------------------------------------------------------------------


class StaticEmbedder:
    """:data:`RECIPE`'s table behind the :class:`~shadowlane.compare.embedder.Embedder` protocol;
    ``DIMS``-dimensional, L2-normalised float32 rows (the zero row for a text without tokens).

    ``cache_dir`` (the comparator passes ``<state_dir>/embedders``) keeps the table between runs;
    ``None`` distils it in memory on every construction. ``minilm`` builds the session the table is
    distilled from (on its ``device``), only when no usable cached table exists. ``built`` says
    whether this construction distilled the table. :meth:`embed` reads only immutable arrays and
    the tokenizer, so it is safe to call from several threads.
    """

    name: str

    def __init__(
        self, cache_dir: Path | None = None, *, minilm: Callable[[], MiniLMEmbedder] = MiniLMEmbedder
    ) -> None:
        self.name = RECIPE
        self.dim: int = DIMS
        self._tokenizer = load_tokenizer(max_tokens=None)  # pinned (sha256 checked); never truncates
        vocab = self._tokenizer.get_vocab_size()
        self.path = None if cache_dir is None else table_path(cache_dir)
        table = None if self.path is None else load_table(self.path, vocab)
        self.built = table is None
        if table is None:
            log.info("distilling the %s table from MiniLM (about 16 s on 2 cores) into %s", RECIPE, self.path)
            table = distil_table(minilm())
            if table.shape != (vocab, DIMS):
                raise ValueError(f"distilled a {table.shape} table for a {vocab}-token vocabulary")
            if self.path is not None:
                save_table(self.path, table)
        weights = sif_weights(vocab)
        for token in ("[CLS]", "[SEP]", "[PAD]"):
            weights[_special_id(self._tokenizer, token)] = 0.0
        weighted = table * weights[:, None]
        weighted.setflags(write=False)
        self._weighted: FloatTable = weighted

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts``; shape ``(len(texts), DIMS)``, input order."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single str")
        out = np.zeros((len(texts), DIMS), dtype=np.float32)
        if not texts:
            return out
        weighted = self._weighted
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        for row, encoding in enumerate(encodings):
            if encoding.ids:
                # Rows summed in token order: a text's vector does not depend on its batch.
                out[row] = weighted[np.asarray(encoding.ids, dtype=np.intp)].sum(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0.0)
        return out
