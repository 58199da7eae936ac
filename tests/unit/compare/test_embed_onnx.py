"""The MiniLM embedder's public seam (tokenizer → pad → encoder → pool, on the real int8 model) and
its device selection: the provider rule, ``auto``/``cpu``/``cuda`` on this machine (no GPU, CPU-only
onnxruntime), and the ``compare.embed_device`` setting."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import get_args

import numpy as np
import onnxruntime as ort
import pytest
from pydantic import ValidationError

from shadowlane.compare.embed_onnx import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    MAX_TOKENS,
    EmbedDevice,
    MiniLMEmbedder,
    load_tokenizer,
    mean_pool,
    session_providers,
)
from shadowlane.errors import ConfigError, ShadowlaneError
from shadowlane.settings import CompareSettings, load_settings

NO_CUDA = CUDA_PROVIDER not in ort.get_available_providers()
needs_no_cuda = pytest.mark.skipif(not NO_CUDA, reason="this onnxruntime has a CUDA provider")

#: Ascending token counts, so ``embed`` runs them as one batch in this order.
TEXTS = [
    "Hi.",
    "The capital of France is Paris.",
    "Please restart the server to apply the update tonight.",
    "You can cancel your subscription at any time from the settings page of your account.",
]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder(batch_size=len(TEXTS), intra_op_threads=1, device="cpu")


# --- the seam --------------------------------------------------------------------------------------


def test_pooled_token_states_are_the_embeddings(minilm: MiniLMEmbedder) -> None:
    encodings = minilm.tokenizer.encode_batch(TEXTS)
    lengths = [len(e.ids) for e in encodings]
    assert lengths == sorted(lengths)
    assert len(set(lengths)) == len(lengths)
    inputs = minilm.pad(encodings)
    width = max(lengths)
    assert inputs.input_ids.shape == inputs.attention_mask.shape == (len(TEXTS), width)
    assert inputs.attention_mask.sum(axis=1).tolist() == lengths
    pad_id = minilm.tokenizer.token_to_id("[PAD]")
    assert (inputs.input_ids[0, lengths[0] :] == pad_id).all()

    states = minilm.token_states(inputs)
    assert states.hidden.shape == (len(TEXTS), width, minilm.dim)
    assert states.hidden.dtype == np.float32
    assert states.mask is inputs.attention_mask
    # one batch, same order: the same computation as embed(), so bit-identical
    assert np.array_equal(mean_pool(states), minilm.embed(TEXTS))


def test_padding_does_not_reach_the_pooled_vector(minilm: MiniLMEmbedder) -> None:
    alone = mean_pool(minilm.token_states(minilm.pad(minilm.tokenizer.encode_batch(TEXTS[:1]))))
    padded = mean_pool(minilm.token_states(minilm.pad(minilm.tokenizer.encode_batch(TEXTS))))
    np.testing.assert_allclose(padded[0], alone[0], atol=1e-5)


def test_tokenizers_truncate_as_asked(minilm: MiniLMEmbedder) -> None:
    long_text = "word " * 600
    assert len(minilm.tokenizer.encode(long_text).ids) == MAX_TOKENS
    assert len(load_tokenizer(max_tokens=None).encode(long_text).ids) == 602  # [CLS] 600 × word [SEP]
    assert len(load_tokenizer(max_tokens=64).encode(long_text).ids) == 64


# --- the provider rule -----------------------------------------------------------------------------


def test_session_providers_rule() -> None:
    with_cuda = [CUDA_PROVIDER, CPU_PROVIDER]
    assert session_providers("auto", with_cuda) == [CUDA_PROVIDER, CPU_PROVIDER]
    assert session_providers("cuda", with_cuda) == [CUDA_PROVIDER, CPU_PROVIDER]
    assert session_providers("cpu", with_cuda) == [CPU_PROVIDER]
    assert session_providers("auto", [CPU_PROVIDER]) == [CPU_PROVIDER]
    assert session_providers("cpu", [CPU_PROVIDER]) == [CPU_PROVIDER]
    with pytest.raises(ConfigError, match="has no CUDAExecutionProvider"):
        session_providers("cuda", ["AzureExecutionProvider", CPU_PROVIDER])
    with pytest.raises(ValueError, match="device must be one of"):
        session_providers("gpu", with_cuda)  # type: ignore[arg-type]


# --- devices on this machine ----------------------------------------------------------------------


@needs_no_cuda
def test_auto_runs_on_the_cpu_here_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="shadowlane.compare.embed_onnx"):
        auto = MiniLMEmbedder(intra_op_threads=1)
    assert auto.device == "cpu"
    assert auto.providers == (CPU_PROVIDER,)
    lines = [r.getMessage() for r in caplog.records if r.name == "shadowlane.compare.embed_onnx"]
    assert len(lines) == 1
    assert "all-MiniLM-L6-v2-onnx-int8 embedder on cpu" in lines[0]
    assert CPU_PROVIDER in lines[0]


def test_cpu_runs_and_the_name_does_not_depend_on_the_device(minilm: MiniLMEmbedder) -> None:
    assert minilm.device == "cpu"
    assert minilm.providers == (CPU_PROVIDER,)
    assert minilm.name == "all-MiniLM-L6-v2-onnx-int8"
    vectors = minilm.embed(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    if NO_CUDA:
        assert MiniLMEmbedder(intra_op_threads=1, device="auto").name == minilm.name


@needs_no_cuda
def test_cuda_without_the_provider_is_one_clear_line() -> None:
    with pytest.raises(ConfigError) as caught:
        MiniLMEmbedder(device="cuda")
    message = str(caught.value)
    assert isinstance(caught.value, ShadowlaneError)
    assert "\n" not in message
    assert "compare.embed_device is 'cuda'" in message
    assert f"no {CUDA_PROVIDER}" in message
    assert "install onnxruntime-gpu" in message


# --- the setting -----------------------------------------------------------------------------------


def test_the_setting_offers_exactly_the_embedder_devices() -> None:
    annotation = CompareSettings.model_fields["embed_device"].annotation
    assert get_args(annotation) == get_args(EmbedDevice)
    assert CompareSettings().embed_device == "auto"
    for device in get_args(EmbedDevice):
        assert CompareSettings(embed_device=device).embed_device == device
    with pytest.raises(ValidationError, match="embed_device"):
        CompareSettings(embed_device="gpu")  # type: ignore[arg-type]


def test_the_setting_from_the_environment_and_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SHADOWLANE_CONFIG", raising=False)
    monkeypatch.setenv("SHADOWLANE_COMPARE__EMBED_DEVICE", "cpu")
    assert load_settings().compare.embed_device == "cpu"
    monkeypatch.setenv("SHADOWLANE_COMPARE__EMBED_DEVICE", "tpu")
    with pytest.raises(ConfigError, match="embed_device"):
        load_settings()
    monkeypatch.delenv("SHADOWLANE_COMPARE__EMBED_DEVICE")
    config = tmp_path / "shadowlane.toml"
    config.write_text('[compare]\nembed_device = "cuda"\n')
    assert load_settings(config_file=config).compare.embed_device == "cuda"
