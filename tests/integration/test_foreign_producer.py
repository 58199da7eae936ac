"""A producer that is not Python and knows only the docs: it writes envelopes as raw JSON bytes,
hashes them with the documented ``req_hash`` recipe (the ``b2sum`` command, when the machine has
it), keys and partitions them as docs/contracts.md says, and gets ``joined`` comparisons from a
shadow worker and the comparator on the real broker. A producer that does not follow them (a
made-up hash, a wrong key, a record the contract refuses) gets each of its records dead-lettered
once by each consuming group, with the reason and the group's name, and nothing joined."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import shutil
import subprocess
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from shadowlane.compare.embedder import build_embedder
from shadowlane.compare.worker import Comparator
from shadowlane.contracts.codec import decode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.dead_letter import DeadLetter
from shadowlane.settings import Settings
from shadowlane.shadow.candidates import CallableCandidate
from shadowlane.shadow.worker import ShadowWorker
from tests.support.kafka_io import read_topic

pytestmark = pytest.mark.integration
N = 6


def _req_hash(req_id: str, canonical: str) -> str:
    """The documented recipe; with the b2sum command when there is one (not Python's hashlib)."""
    data = req_id.encode() + b"\x00" + canonical.encode()
    if shutil.which("b2sum"):
        done = subprocess.run(["b2sum", "-l", "128"], input=data, capture_output=True, check=True)
        return done.stdout.split()[0].decode()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _envelope(i: int, *, claimed: str | None = None, sampling: bool = True) -> tuple[str, bytes]:
    """An envelope as raw bytes and its ``req_hash`` (``claimed``: a made-up one instead)."""
    req_id = f"foreign-{i}"
    request = {"messages": [{"role": "user", "content": f"Fix: I goed home {i}."}], "model": "m"}
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    req_hash = claimed or _req_hash(req_id, canonical)
    ts_ms = int(time.time() * 1000)
    text = (
        f'{{"schema_version":1,"req_id":"{req_id}","req_hash":"{req_hash}","ts_ms":{ts_ms},'
        f'"endpoint":"/v1/chat/completions","request":{canonical},'
        '"prod":{"answer":"I went home.","status":200,"latency_ms":12.5}'
        + (',"sampling":{"ratio":1.0,"bucket":0.5,"salt_id":"foreign"}}' if sampling else "}")
    )
    return req_hash, text.encode()


def _bad_records() -> list[tuple[str, bytes, bytes]]:
    """(reason, value, key) of records that do not follow the docs."""
    made_up, forged = _envelope(100, claimed="0123456789abcdef0123456789abcdef")
    _, value = _envelope(101)
    no_sampling, incomplete = _envelope(102, sampling=False)
    return [
        ("req_hash_mismatch", forged, made_up.encode()),
        ("key_mismatch", value, b"not-the-hash"),
        ("validation", incomplete, no_sampling.encode()),
    ]


@pytest.mark.timeout(120)
async def test_a_producer_following_the_docs_gets_joined_comparisons(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    topic = it_settings.topics.requests_topic
    producer = AIOKafkaProducer(**kafka_kwargs, acks="all")
    await producer.start()
    try:
        partitions = len(await producer.partitions_for(topic))
        hashes = []
        for i in range(N):
            req_hash, value = _envelope(i)
            hashes.append(req_hash)
            partition = int(req_hash[:8], 16) % partitions  # the documented partitioning
            await producer.send_and_wait(topic, value, key=req_hash.encode(), partition=partition)
        bad = _bad_records()
        for _reason, value, key in bad:
            await producer.send_and_wait(topic, value, key=key, partition=0)
    finally:
        await producer.stop()

    worker = ShadowWorker(it_settings, CallableCandidate("cand", lambda body: "I went home."), kafka_kwargs)
    comparator = Comparator(it_settings, build_embedder(it_settings.compare), kafka_kwargs)
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(comparator.run())]
    try:
        records = await read_topic(kafka_kwargs, it_settings.topics.compare_topic, want=N, timeout_s=60)
    finally:
        worker.stop()
        comparator.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    comparisons = [decode(r.value, Comparison) for r in records]
    assert sorted(c.req_hash for c in comparisons) == sorted(hashes)
    assert {c.outcome for c in comparisons} == {"joined"}
    dead = [
        decode(r.value, DeadLetter)
        for r in await read_topic(kafka_kwargs, it_settings.topics.dlq_topic, want=2 * len(bad), settle_s=1.0)
    ]
    groups = {worker.group_id, it_settings.compare.group_id}
    # each bad record once per consuming group, naming it, with the same reason in both
    assert sorted((d.reason, d.worker) for d in dead) == sorted(
        (reason, group) for reason, _, _ in bad for group in groups
    )
    assert {base64.b64decode(d.value_b64 or "") for d in dead} == {value for _, value, _ in bad}
