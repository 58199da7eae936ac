"""Hand-run throughput probe for the local MiniLM embedder (not collected by pytest).

    .venv/bin/python -m tests.bench.embed_probe [--texts 512] [--threads 0] [--repeat 3]

Embeds ``--texts`` synthetic English sentences of 20-40 words with each batch size and prints
embeddings per second (best of ``--repeat`` runs), plus the model's load time.
"""

from __future__ import annotations

import argparse
import random
import time

from shadowlane.compare.embed_onnx import MiniLMEmbedder

BATCH_SIZES = (1, 8, 16, 32, 64)
_VOCABULARY = (
    "the a customer asked whether refund policy applies to orders shipped after holiday season "
    "assistant replied that items returned within thirty days receive full credit unless damaged "
    "kafka consumer group rebalanced partitions while shadow worker throttled requests to candidate "
    "model latency increased because batch size was larger than expected on smaller machines "
    "please summarise this document highlight risks list next steps for engineering team today"
)
_WORDS = _VOCABULARY.split()


def sentences(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        words = rng.choices(_WORDS, k=rng.randint(20, 40))
        out.append(" ".join(words).capitalize() + ".")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads, 0 = onnxruntime default")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    started = time.perf_counter()
    embedder = MiniLMEmbedder(intra_op_threads=args.threads)
    print(f"load (hash check + session): {time.perf_counter() - started:.3f}s, dim={embedder.dim}")
    texts = sentences(args.texts)
    embedder.embed(texts[:64])  # warm-up
    for batch_size in BATCH_SIZES:
        embedder.batch_size = batch_size
        best = float("inf")
        for _ in range(args.repeat):
            started = time.perf_counter()
            embedder.embed(texts)
            best = min(best, time.perf_counter() - started)
        print(f"batch {batch_size:3d}: {len(texts) / best:8.1f} embeddings/s  ({best * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
