"""The real local broker: idempotent start, one broker under concurrent starts, data kept across restarts.

These tests run their own broker under a private state dir (not the session broker other tests use).
They are async only so they share pytest-asyncio's session loop; the blocking calls run in threads.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shadowlane.kafka.local import LocalKafka
from shadowlane.kafka.procs import find_broker_pids
from shadowlane.settings import load_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "local-kafka-restart-test"


@pytest.fixture(scope="module")
async def kafka(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalKafka]:
    local = LocalKafka(tmp_path_factory.mktemp("local-kafka-state"), load_settings().kafka_pom)
    try:
        yield local
    finally:
        await asyncio.to_thread(local.stop)


def _start_in_subprocess(local: LocalKafka) -> subprocess.Popen[str]:
    code = (
        "import sys; from pathlib import Path; from shadowlane.kafka.local import LocalKafka; "
        "print(LocalKafka(Path(sys.argv[1]), Path(sys.argv[2])).start())"
    )
    state_dir = str(local.kafka_dir.parent)
    return subprocess.Popen(
        [sys.executable, "-c", code, state_dir, str(local.pom)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )


async def test_start_twice_returns_same_broker(kafka: LocalKafka) -> None:
    first = await asyncio.to_thread(kafka.start)
    pid = kafka.status()["pid"]
    second = await asyncio.to_thread(kafka.start)
    status = await asyncio.to_thread(kafka.status)
    assert first == second
    assert status["pid"] == pid
    assert status["running"]
    assert status["ready"]
    assert status["version"] == "4.2.0"
    assert find_broker_pids(kafka.data_dir) == [pid]
    host, port = first.rsplit(":", 1)
    assert host == "127.0.0.1"
    assert int(port) > 0


async def test_concurrent_starts_leave_one_broker(kafka: LocalKafka) -> None:
    await asyncio.to_thread(kafka.stop)
    assert find_broker_pids(kafka.data_dir) == []
    procs = [_start_in_subprocess(kafka), _start_in_subprocess(kafka)]
    outputs = [await asyncio.to_thread(proc.communicate, timeout=240) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    addresses = {out.strip() for out, _ in outputs}
    assert len(addresses) == 1
    status = kafka.status()
    assert status["bootstrap"] in addresses
    assert find_broker_pids(kafka.data_dir) == [status["pid"]]


async def test_restart_keeps_data_even_on_new_ports(kafka: LocalKafka) -> None:
    bootstrap = await asyncio.to_thread(kafka.start)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(TOPIC, b"survives-restart", partition=0)
    finally:
        await producer.stop()

    old_pid = kafka.status()["pid"]
    assert await asyncio.to_thread(kafka.stop) is True
    assert await asyncio.to_thread(kafka.stop) is False  # idempotent
    assert find_broker_pids(kafka.data_dir) == []
    assert not kafka.record_path.exists()
    assert kafka.status()["running"] is False

    # Hold the old client port so the restart must move the listeners of the formatted data dir.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(bootstrap.rsplit(":", 1)[1])))
        squatter.listen()
        moved = await asyncio.to_thread(kafka.start)
    assert moved != bootstrap
    assert kafka.status()["pid"] != old_pid

    admin = AIOKafkaAdminClient(bootstrap_servers=moved)
    await admin.start()
    try:
        assert TOPIC in await admin.list_topics()
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=moved, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
        assert record.value == b"survives-restart"
    finally:
        await consumer.stop()

    # With its ports free again, a plain stop/start keeps the same address.
    await asyncio.to_thread(kafka.stop)
    assert await asyncio.to_thread(kafka.start) == moved
