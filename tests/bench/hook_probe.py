"""Hand-run probe of where the hook's drain time goes (not collected by pytest).

    .venv/bin/python -m tests.bench.hook_probe [--messages 20000] [--rounds 3] [--sizes 1k 8k]

``make bench``'s ``hook_throughput`` row compares the publisher with a raw aiokafka loop. This
probe splits the publisher's cost in the same run, per message:

- ``raw``: the raw ``AIOKafkaProducer.send()`` loop of the same bytes (the row's baseline);
- ``hook``: ``ShadowPublisher.publish()`` drained to the broker (the row's variant);
- ``ship``: the same publisher with every envelope built beforehand, so only queueing, batching
  and delivery remain: the hook's floor with a free builder;
- ``build``: ``EnvelopeBuilder.record`` alone, and ``sanitize``: the sanitizer's share of it
  (``clean`` of the body plus ``mask_text`` of the answer), on the same captures.

``hook`` is close to ``ship + build``: the sender's work is CPU-bound on a machine where the
broker shares the cores. The ratio the row asks for (hook ≥ 0.7× raw) then needs
``build ≤ raw / 0.7 − ship``, which the last column prints.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer

from shadowlane.hook.context import RawMirror
from shadowlane.hook.envelope_builder import EnvelopeBuilder, EnvelopeRecord
from shadowlane.hook.publisher import ShadowPublisher
from shadowlane.sanitize import Sanitizer
from shadowlane.settings import HookSettings
from tests.bench.bench_hook_throughput import PRODUCER
from tests.bench.common import bench_settings, create_topic, delete_topics, kafka_kwargs
from tests.bench.payloads import chat_body, chat_response

ENDPOINT = "/v1/chat/completions"


def _per_message_us(run: Callable[[], object], n: int) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) / n * 1e6


async def probe(size: str, n: int, rounds: int) -> dict[str, float]:
    settings = bench_settings("hookprobe")
    kwargs = kafka_kwargs(settings)
    hook = HookSettings(queue_size=n, batch_size=512)
    sanitizer = Sanitizer()
    builder = EnvelopeBuilder(sanitizer, ratio=1.0, salt_id=hook.salt)
    captures = [
        RawMirror(f"r{i}", ENDPOINT, chat_body(i, size), chat_response(i, size), 200, 12.0, 0, None)
        for i in range(n)
    ]
    built: dict[str, EnvelopeRecord] = {}
    topics: list[str] = []

    async def fresh_topic() -> str:
        name = f"{settings.topics.prefix}{size}.{len(topics)}"
        topics.append(name)
        await create_topic(kwargs, name, settings.topics.partitions)
        return name

    async def raw() -> float:
        name = await fresh_topic()
        producer = AIOKafkaProducer(**kwargs, **PRODUCER)
        await producer.start()
        try:
            started = time.perf_counter()
            futures = [
                await producer.send(name, built[c.req_id].value, key=built[c.req_id].req_hash.encode())
                for c in captures
            ]
            for fut in futures:
                await fut
            return (time.perf_counter() - started) / n * 1e6
        finally:
            await producer.stop()

    async def hooked(prebuilt: bool) -> float:
        name = await fresh_topic()
        if prebuilt:
            builder_record = EnvelopeBuilder.record
            EnvelopeBuilder.record = lambda _self, raw: built[raw.req_id]  # type: ignore[method-assign,assignment]
        publisher = ShadowPublisher(
            hook, topic=name, producer_factory=lambda: AIOKafkaProducer(**kwargs, **PRODUCER)
        )
        try:
            await publisher.start()
            await publisher.connected.wait()
            started = time.perf_counter()
            for c in captures:
                publisher.publish(
                    req_id=c.req_id,
                    endpoint=c.endpoint,
                    request=c.request,
                    response=c.response,
                    status=200,
                    latency_ms=12.0,
                )
            await publisher.stop(drain_timeout_s=120)
            assert publisher.stats.published == n, publisher.stats
            return (time.perf_counter() - started) / n * 1e6
        finally:
            if prebuilt:
                EnvelopeBuilder.record = builder_record  # type: ignore[method-assign]

    def build_all() -> None:
        for c in captures:
            built[c.req_id] = builder.record(c)

    def sanitize_all() -> None:
        for c in captures:
            sanitizer.clean(c.request)
            response: Any = c.response
            sanitizer.mask_text(response["choices"][0]["message"]["content"])

    samples: dict[str, list[float]] = {"raw": [], "hook": [], "ship": [], "build": [], "sanitize": []}
    try:
        for _ in range(rounds):
            samples["build"].append(_per_message_us(build_all, n))
            samples["sanitize"].append(_per_message_us(sanitize_all, n))
            samples["raw"].append(await raw())
            samples["hook"].append(await hooked(prebuilt=False))
            samples["ship"].append(await hooked(prebuilt=True))
    finally:
        await delete_topics(kwargs, topics)
    return {name: statistics.median(values) for name, values in samples.items()}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", nargs="+", default=["1k", "8k"], choices=["1k", "8k"])
    args = parser.parse_args()
    print("µs per message (medians)")
    columns = ("raw", "hook", "ratio", "ship", "build", "sanitize", "build budget")
    print(f"{'size':<5} " + " ".join(f"{c:>8}" for c in columns))
    for size in args.sizes:
        m = await probe(size, args.messages, args.rounds)
        budget = m["raw"] / 0.7 - m["ship"]
        print(
            f"{size:<5} {m['raw']:8.1f} {m['hook']:8.1f} {m['raw'] / m['hook']:8.2f} {m['ship']:8.1f}"
            f" {m['build']:8.1f} {m['sanitize']:8.1f} {budget:8.1f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
