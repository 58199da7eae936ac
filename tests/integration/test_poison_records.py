"""No record can stop a worker, on the real broker.

Each input topic (requests: the shadow worker and the comparator; shadow-results: the
comparator) gets good and bad records of 0.7, 0.9 and 1.0 MiB and of the topic's maximum (raised
to 2 MiB, as a team with large prompts would), interleaved on the same partitions. Every bad one
is dead-lettered once per consuming group, its letter under the DLQ's default 1 MiB limit and
naming the record by size and SHA-256; every good one is compared; the workers stay up.

A DLQ that refuses every letter (its ``max.message.bytes`` below even a stub's size) pauses only
the bad record's partition: the others are compared meanwhile, the refusals are counted and the
gauge shows the blocked partition; once the topic accepts letters again the letter is written and
the partition resumes. A worker stopped while its DLQ refuses still ends within its drain timeout.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import MessageSizeTooLargeError

from shadowlane.compare.embedder import build_embedder
from shadowlane.compare.worker import Comparator
from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.dead_letter import DeadLetter
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.hashing import canonical_json, partition_for, req_hash
from shadowlane.settings import Settings
from shadowlane.shadow.candidates import CallableCandidate
from shadowlane.shadow.worker import ShadowWorker
from tests.support.factories import envelope, result
from tests.support.kafka_io import read_topic
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
TOPIC_MAX = 2 * MIB + 4096  # the input topics' max.message.bytes in this test
SIZES = (int(0.7 * MIB), int(0.9 * MIB), MIB, 2 * MIB)  # the last: the topic's maximum, less headers


async def _alter(kwargs: dict[str, Any], configs: dict[str, dict[str, str]]) -> None:
    """Set topic configs and wait until the broker reports them (the change is asynchronous)."""
    admin = AIOKafkaAdminClient(**kwargs)
    await admin.start()
    try:
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, topic, configs=c) for topic, c in configs.items()
        ]
        await admin.alter_configs(resources)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            described = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in configs]
            )
            seen = {
                resource[3]: {entry[0]: entry[1] for entry in resource[4]}
                for response in described
                for resource in response.resources
            }
            if all(seen.get(t, {}).get(k) == v for t, c in configs.items() for k, v in c.items()):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # the partition leaders apply it from the same metadata update
    finally:
        await admin.close()


def _padded(i: int, size: int) -> RequestEnvelope:
    """A valid envelope of about ``size`` bytes on the wire: a long user message (a big prompt)."""
    base = envelope(i, tag=f"big{size}")
    request = base.request.model_dump(mode="json")
    pad = max(size - len(encode(base)) - 16, 0)
    request["messages"][1]["content"] += " " + "a" * pad
    data = base.model_dump(mode="json") | {
        "request": request,
        "req_hash": req_hash(base.req_id, canonical_json(request)),
    }
    return RequestEnvelope.model_validate(data)


def _bad(size: int, kind: int) -> bytes:
    """A bad record of ``size`` bytes: valid JSON of a wrong schema version, or not JSON at all."""
    if kind % 2:
        return b"\x00\xff" + b"z" * (size - 2)
    head = b'{"schema_version":2,"pad":"'
    return head + b"p" * (size - len(head) - 2) + b'"}'


async def _send(kwargs: dict[str, Any], topic: str, records: list[tuple[bytes, bytes, int]]) -> None:
    producer = AIOKafkaProducer(**kwargs, acks="all", max_request_size=TOPIC_MAX + MIB)
    await producer.start()
    try:
        for key, value, partition in records:
            deadline = time.monotonic() + 15
            while True:
                try:
                    await producer.send_and_wait(topic, value, key=key, partition=partition)
                    break
                except MessageSizeTooLargeError:  # a raised max.message.bytes not applied yet
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
    finally:
        await producer.stop()


def _letters(records: list[Any]) -> list[DeadLetter]:
    return [decode(r.value, DeadLetter) for r in records]


def _assert_named(letters: list[DeadLetter], bad: list[bytes]) -> None:
    """Each letter names one of the bad records by size and digest, keeps at most its head."""
    digests = {hashlib.sha256(value).hexdigest(): len(value) for value in bad}
    for letter in letters:
        assert letter.value_sha256 in digests
        assert letter.value_size == digests[letter.value_sha256]
        assert letter.truncated is True


@pytest.mark.timeout(240)
async def test_big_good_and_bad_requests_interleaved(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    topics = it_settings.topics
    await _alter(kafka_kwargs, {topics.requests_topic: {"max.message.bytes": str(TOPIC_MAX)}})
    partitions = topics.partitions
    good = [_padded(i, size) for i, size in enumerate(SIZES)] + [envelope(i, tag="small") for i in range(4)]
    bad = [_bad(size, i) for i, size in enumerate(SIZES)]
    records: list[tuple[bytes, bytes, int]] = []
    for i, env in enumerate(good):
        partition = partition_for(env.req_hash, partitions)
        if i < len(bad):  # a bad record right before a good one, on its partition
            records.append((f"bad-{i}".encode(), bad[i], partition))
        records.append((env.req_hash.encode(), encode(env), partition))
    await _send(kafka_kwargs, topics.requests_topic, records)

    worker = ShadowWorker(it_settings, CallableCandidate("cand", lambda body: "ok"), kafka_kwargs)
    comparator = Comparator(it_settings, build_embedder(it_settings.compare), kafka_kwargs)
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(comparator.run())]
    try:
        compared = await read_topic(kafka_kwargs, topics.compare_topic, want=len(good), timeout_s=120)
        dead = await read_topic(kafka_kwargs, topics.dlq_topic, want=2 * len(bad), timeout_s=60, settle_s=1.0)
        assert not any(task.done() for task in tasks), "a worker stopped"
    finally:
        worker.stop()
        comparator.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    comparisons = [decode(r.value, Comparison) for r in compared]
    assert sorted(c.req_hash for c in comparisons) == sorted(env.req_hash for env in good)
    assert {c.outcome for c in comparisons} == {"joined"}
    letters = _letters(dead)
    assert sorted(letter.worker for letter in letters) == sorted(
        [worker.group_id, comparator.worker_id] * len(bad)
    )
    assert max(len(r.value) for r in dead) < MIB
    _assert_named(letters, bad)
    assert worker.stats.dead_lettered == comparator.stats.dead_lettered == len(bad)


@pytest.mark.timeout(240)
async def test_big_good_and_bad_results_interleaved(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    topics = it_settings.topics
    await _alter(kafka_kwargs, {topics.shadow_results_topic: {"max.message.bytes": str(TOPIC_MAX)}})
    partitions = topics.partitions
    envs = [envelope(i, tag="res") for i in range(len(SIZES))]
    await _send(
        kafka_kwargs,
        topics.requests_topic,
        [(e.req_hash.encode(), encode(e), partition_for(e.req_hash, partitions)) for e in envs],
    )
    bad = [_bad(size, i) for i, size in enumerate(SIZES)]
    results: list[tuple[bytes, bytes, int]] = []
    for i, (env, size) in enumerate(zip(envs, SIZES, strict=True)):
        partition = partition_for(env.req_hash, partitions)
        results.append((f"bad-{i}".encode(), bad[i], partition))
        big = result(env, answer="")
        answer = "b" * (size - len(encode(big)) - 16)
        results.append((env.req_hash.encode(), encode(result(env, answer=answer)), partition))
    await _send(kafka_kwargs, topics.shadow_results_topic, results)

    comparator = Comparator(it_settings, build_embedder(it_settings.compare), kafka_kwargs)
    task = asyncio.create_task(comparator.run())
    try:
        compared = await read_topic(kafka_kwargs, topics.compare_topic, want=len(envs), timeout_s=120)
        dead = await read_topic(kafka_kwargs, topics.dlq_topic, want=len(bad), timeout_s=60, settle_s=1.0)
        assert not task.done(), "the comparator stopped"
    finally:
        comparator.stop()
        await asyncio.wait_for(task, 60)
    comparisons = [decode(r.value, Comparison) for r in compared]
    assert sorted(c.req_hash for c in comparisons) == sorted(e.req_hash for e in envs)
    assert {c.outcome for c in comparisons} == {"joined"}
    letters = _letters(dead)
    assert len(letters) == len(bad)
    _assert_named(letters, bad)


@pytest.mark.timeout(180)
async def test_a_refusing_dlq_pauses_only_its_partition(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    topics = it_settings.topics
    settings = it_settings.model_copy(
        update={"compare": it_settings.compare.model_copy(update={"drain_timeout_s": 2.0})}
    )
    await _alter(kafka_kwargs, {topics.dlq_topic: {"max.message.bytes": "64"}})  # below any letter
    partitions = topics.partitions
    envs = [envelope(i, tag="dlq") for i in range(12)]
    blocked = 0
    records = [(b"bad-0", b"\x00not json", blocked)]
    records += [(e.req_hash.encode(), encode(e), partition_for(e.req_hash, partitions)) for e in envs]
    await _send(kafka_kwargs, topics.requests_topic, records)
    results = [result(e) for e in envs]
    await _send(
        kafka_kwargs,
        topics.shadow_results_topic,
        [(r.req_hash.encode(), encode(r), partition_for(r.req_hash, partitions)) for r in results],
    )
    elsewhere = [e for e in envs if partition_for(e.req_hash, partitions) != blocked]
    assert elsewhere

    comparator = Comparator(settings, build_embedder(settings.compare), kafka_kwargs)
    task = asyncio.create_task(comparator.run())
    try:
        # the blocked partition's records fetched before it paused are compared too: settle, so
        # that reaching the count with some of those does not end the read early
        compared = await read_topic(
            kafka_kwargs, topics.compare_topic, want=len(elsewhere), timeout_s=60, settle_s=3.0
        )
        assert {decode(r.value, Comparison).req_hash for r in compared} >= {e.req_hash for e in elsewhere}
        assert await wait_until(lambda: comparator.dlq_blocked_partitions == 1, timeout_s=10)
        assert comparator.stats.dlq_failures >= 1
        assert comparator.stats.dead_lettered == 0

        await _alter(kafka_kwargs, {topics.dlq_topic: {"max.message.bytes": str(MIB)}})
        assert await wait_until(lambda: comparator.stats.dead_lettered == 1, timeout_s=60)
        assert comparator.dlq_blocked_partitions == 0
        compared = await read_topic(kafka_kwargs, topics.compare_topic, want=len(envs), timeout_s=60)
        assert {decode(r.value, Comparison).req_hash for r in compared} == {e.req_hash for e in envs}

        # refusing again: a stop does not wait for the letter longer than the drain timeout
        await _alter(kafka_kwargs, {topics.dlq_topic: {"max.message.bytes": "64"}})
        await _send(kafka_kwargs, topics.requests_topic, [(b"bad-1", b"\x00still not json", blocked)])
        assert await wait_until(lambda: comparator.dlq_blocked_partitions == 1, timeout_s=30)
    finally:
        comparator.stop()
        started = time.monotonic()
        await asyncio.wait_for(task, 60)
    assert time.monotonic() - started < settings.compare.drain_timeout_s + 5.0
    dead = _letters(await read_topic(kafka_kwargs, topics.dlq_topic, want=1, timeout_s=10, settle_s=1.0))
    assert [letter.value_size for letter in dead] == [len(b"\x00not json")]
