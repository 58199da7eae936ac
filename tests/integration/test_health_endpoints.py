"""/healthz and /readyz of real worker processes against the real broker (and against none).

A worker serves both from the moment it starts: /readyz is 503 until it has joined its group and
taken its partitions over, then 200 with its partition count; /healthz is 200 all along. A worker
whose broker cannot be reached keeps running, alive and not ready, and /readyz says why.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import httpx
import pytest

from shadowlane.demo.procs import WorkerProcess
from shadowlane.settings import Settings

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def get(port: int, path: str) -> tuple[int, dict[str, Any]] | None:
    """(status, JSON body), or None while nothing listens yet."""
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"http://127.0.0.1:{port}{path}")
    except httpx.TransportError:
        return None
    body: dict[str, Any] = response.json()
    return response.status_code, body


async def answers(port: int, path: str, timeout_s: float = 60.0) -> list[tuple[int, dict[str, Any]]]:
    """Every answer of ``path`` until it is 200 (or the timeout), polled every 50 ms."""
    seen: list[tuple[int, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = await get(port, path)
        if answer is not None:
            seen.append(answer)
            if answer[0] == 200:
                break
        await asyncio.sleep(0.05)
    return seen


@pytest.mark.timeout(180)
@pytest.mark.parametrize("role", ["shadow", "compare"])
async def test_a_worker_is_alive_at_once_and_ready_once_it_owns_its_partitions(
    it_settings: Settings, kafka_kwargs: dict[str, Any], role: str
) -> None:
    port = free_port()
    argv = (
        ["--candidate", "cand", "--callable", "tests.support.candidates:grammar_b"]
        if role == "shadow"
        else []
    )
    worker = await WorkerProcess.start(it_settings, role, *argv, "--metrics-port", str(port))
    try:
        readiness = await answers(port, "/readyz", timeout_s=90)
        assert readiness, "the worker never answered /readyz"
        status, body = readiness[-1]
        assert status == 200, body
        assert body["ready"] is True
        assert body["partitions"] == it_settings.topics.partitions  # the only member: every one
        group = (
            it_settings.compare.group_id if role == "compare" else f"{it_settings.shadow.group_prefix}cand"
        )
        assert body["group"] == group
        # it was not ready before it had joined: the first answers were 503s with the reason
        assert readiness[0][0] == 503
        assert readiness[0][1]["ready"] is False
        assert readiness[0][1]["reason"]
        assert (await worker.wait_event("assigned", timeout_s=30))["group"] == group
        live = await get(port, "/healthz")
        assert live is not None
        assert live[0] == 200
        assert live[1]["alive"] is True
    finally:
        await worker.terminate()


@pytest.mark.timeout(120)
async def test_a_worker_that_cannot_reach_the_broker_stays_alive_and_says_why_it_is_not_ready(
    it_settings: Settings,
) -> None:
    closed = free_port()  # nothing listens there
    settings = it_settings.model_copy(update={"bootstrap_servers": f"127.0.0.1:{closed}"})
    port = free_port()
    worker = await WorkerProcess.start(
        settings, "shadow", "--candidate", "cand", "--callable", "tests.support.candidates:grammar_b",
        "--metrics-port", str(port),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        answer = await get(port, "/readyz")
        while (answer is None or "error" not in answer[1]["broker"]) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            answer = await get(port, "/readyz")
        assert answer is not None
        status, body = answer
        assert status == 503
        assert body["ready"] is False
        assert body["reason"].startswith("cannot reach the Kafka broker: KafkaConnectionError")
        assert f"{closed}" in body["reason"]
        await asyncio.sleep(2.5)  # it retries instead of exiting
        assert worker.proc.returncode is None
        live = await get(port, "/healthz")
        assert live is not None
        assert live[0] == 200
        again = await get(port, "/readyz")
        assert again is not None
        assert again[0] == 503
    finally:
        await worker.kill()
