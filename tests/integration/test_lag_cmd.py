"""``shadowlane lag`` against the real broker: a group that consumed and committed part of a topic
shows the rest as its lag, per partition, from outside (no member running), once and as an exporter."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shadowlane.demo.procs import WorkerProcess
from shadowlane.settings import Settings, settings_env

pytestmark = pytest.mark.integration

PER_PARTITION = {0: 9, 1: 6, 2: 3, 3: 0}  # records produced to each of the 4 partitions
COMMITTED = {0: 4, 1: 6}  # what the group commits; partitions 2 and 3 it never commits


async def lag_cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, **settings_env(settings)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shadowlane.cli.main", "lag", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def backlog(settings: Settings, kwargs: dict[str, Any]) -> str:
    """Produce :data:`PER_PARTITION`, then commit :data:`COMMITTED` as a shadow group that leaves."""
    topic = settings.topics.requests_topic
    producer = AIOKafkaProducer(**kwargs, acks="all")
    await producer.start()
    try:
        for partition, n in PER_PARTITION.items():
            for i in range(n):
                await producer.send_and_wait(
                    topic, b"{}", key=f"k{partition}-{i}".encode(), partition=partition
                )
    finally:
        await producer.stop()
    group = f"{settings.shadow.group_prefix}lagged"
    consumer = AIOKafkaConsumer(**kwargs, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in PER_PARTITION])
        await consumer.seek_to_beginning()
        read: dict[int, int] = {}
        deadline = time.monotonic() + 30
        while any(read.get(p, 0) < n for p, n in COMMITTED.items()) and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                read[tp.partition] = read.get(tp.partition, 0) + len(records)
        assert all(read.get(p, 0) >= n for p, n in COMMITTED.items()), read
        await consumer.commit({TopicPartition(topic, p): offset for p, offset in COMMITTED.items()})
    finally:
        await consumer.stop()
    return group


@pytest.mark.timeout(240)
async def test_lag_is_read_from_the_broker_with_no_member_running(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    group = await backlog(it_settings, kafka_kwargs)
    code, out, err = await lag_cli(it_settings, "--json")
    assert code == 0, err
    groups = {g["group"]: g for g in orjson.loads(out)["groups"]}
    assert group in groups  # found by its name: the shadow groups' prefix
    found = groups[group]
    assert found["members"] == 0
    rows = {row["partition"]: row for row in found["partitions"]}
    assert set(rows) == set(PER_PARTITION)  # every partition of the topic the group reads
    for partition, n in PER_PARTITION.items():
        row = rows[partition]
        assert row["topic"] == it_settings.topics.requests_topic
        assert row["log_end"] == n
        assert row["last_stable"] == n
        assert row["committed"] == COMMITTED.get(partition)
        # never committed: counted from the log start, where a worker would begin
        assert row["lag"] == n - COMMITTED.get(partition, 0)
        assert row["owner"] is None
    assert found["lag"] == (9 - 4) + (6 - 6) + 3 + 0

    code, out, err = await lag_cli(it_settings, "--group", group)
    assert code == 0, err
    assert out.splitlines()[0] == f"{group}  state=Empty  members=0  lag=8"
    assert out.splitlines()[2].split()[:7] == [
        it_settings.topics.requests_topic,
        "0",
        "4",
        "0",
        "9",
        "9",
        "5",
    ]

    # a member that joins owns every partition, and the lag names it (DescribeGroups, decoded)
    member = AIOKafkaConsumer(
        it_settings.topics.requests_topic,
        **{**kafka_kwargs, "client_id": "lag-test-member"},
        group_id=group,
        enable_auto_commit=False,
    )
    await member.start()
    try:
        deadline = time.monotonic() + 30
        while not member.assignment() and time.monotonic() < deadline:
            await member.getmany(timeout_ms=200)
        code, out, err = await lag_cli(it_settings, "--group", group, "--json")
    finally:
        await member.stop()
    assert code == 0, err
    (joined,) = orjson.loads(out)["groups"]
    assert (joined["state"], joined["members"], joined["lag"]) == ("Stable", 1, 8)
    assert {row["owner"] for row in joined["partitions"]} == {"lag-test-member@127.0.0.1"}

    code, out, err = await lag_cli(it_settings, "--group", f"{group}-nobody")
    assert code == 3
    assert err.strip() == f"shadowlane lag: no consumer group named {group}-nobody"


def _sample(text: str, name: str, **labels: str) -> float | None:
    for match in re.finditer(rf"^{re.escape(name)}\{{([^}}]*)\}} (\S+)$", text, re.MULTILINE):
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(2))
    return None


@pytest.mark.timeout(240)
async def test_the_exporter_serves_the_lag_as_gauges_and_is_ready(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    group = await backlog(it_settings, kafka_kwargs)
    exporter = await WorkerProcess.start(it_settings, "lag", "--serve", "0", "--interval", "1")
    try:
        port = (await exporter.wait_event("serving", timeout_s=60))["port"]
        topic = it_settings.topics.requests_topic
        async with httpx.AsyncClient(timeout=5) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                ready = await client.get(f"http://127.0.0.1:{port}/readyz")
                if ready.status_code == 200:
                    break
                await asyncio.sleep(0.2)
            assert ready.status_code == 200, ready.text
            assert (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        lag = "shadowlane_consumer_group_lag"
        assert _sample(text, lag, group=group, topic=topic, partition="0") == 5.0
        assert _sample(text, lag, group=group, topic=topic, partition="1") == 0.0
        assert _sample(text, lag, group=group, topic=topic, partition="2") == 3.0
        assert _sample(text, "shadowlane_consumer_group_members", group=group) == 0.0
        assert "shadowlane_lag_exporter_refresh_failures_total 0.0" in text
    finally:
        await exporter.kill()
