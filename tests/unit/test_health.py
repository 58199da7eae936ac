"""shadowlane/health.py, the /healthz and /readyz routes of shadowlane/metrics.py, and
shadowlane/health_probe.py (the image's HEALTHCHECK) over a real HTTP server."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from shadowlane import health_probe
from shadowlane.health import STANDBY, Health, StartupTimeout, transient
from shadowlane.kafka.admin import ensure_topics
from shadowlane.metrics import StatsCollector, serve_metrics
from shadowlane.settings import TopicSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def made(**kwargs: Any) -> tuple[Health, Clock]:
    clock = Clock()
    return Health(clock=clock, **kwargs), clock


def test_alive_until_the_heartbeat_is_older_than_the_stall_limit() -> None:
    health, clock = made(stall_after_s=30.0)
    assert health.liveness()[0]
    clock.now += 29.0
    assert health.liveness()[0]
    clock.now += 2.0
    alive, body = health.liveness()
    assert not alive
    assert body["reason"].startswith("event loop stalled: no heartbeat for 31s")
    health.beat()
    assert health.liveness()[0]


def test_ready_only_once_up_with_a_recent_broker_contact() -> None:
    health, clock = made(broker_stale_after_s=30.0)
    ready, body = health.readiness()
    assert (ready, body["phase"], body["reason"]) == (False, "starting", "starting")
    health.member("g", 3)
    ready, body = health.readiness()  # up, but no broker contact yet
    assert not ready
    assert "no successful broker contact" in body["reason"]
    health.broker_reached()
    ready, body = health.readiness()
    assert ready
    assert body["group"] == "g"
    assert body["partitions"] == 3
    assert "reason" not in body
    clock.now += 31.0
    health.beat()  # alive, but the broker has not answered for too long
    ready, body = health.readiness()
    assert not ready
    assert body["reason"] == "no successful broker contact for over 30s"


def test_a_failed_probe_makes_a_member_unready_at_once_and_a_success_ready_again() -> None:
    health, _clock = made()
    health.member("g", 2)
    health.broker_reached()
    health.broker_failed("the Kafka broker cannot be reached: KafkaConnectionError: gone")
    ready, body = health.readiness()
    assert not ready
    assert body["reason"] == "the Kafka broker cannot be reached: KafkaConnectionError: gone"
    assert body["broker"]["error"] == body["reason"]
    health.broker_reached()
    assert health.readiness()[0]


def test_a_standby_member_is_ready_and_says_why_it_has_nothing() -> None:
    health, _clock = made()
    health.member("g", 0)
    health.broker_reached()
    ready, body = health.readiness()
    assert ready
    assert body["partitions"] == 0
    assert body["note"] == STANDBY


def test_stopping_and_a_stalled_loop_are_never_ready() -> None:
    health, clock = made(stall_after_s=5.0)
    health.member("g", 1)
    health.broker_reached()
    health.stopping()
    ready, body = health.readiness()
    assert not ready
    assert body["reason"].startswith("stopping")
    health.member("g", 1)
    clock.now += 6.0
    ready, body = health.readiness()
    assert not ready
    assert body["reason"].startswith("event loop stalled")


def test_once_stopping_nothing_makes_a_worker_ready_again() -> None:
    health, _clock = made()
    health.member("g", 2)
    health.broker_reached()
    assert health.readiness()[0]
    health.stopping()
    health.member("g", 2)  # a takeover completing during the drain
    health.up(groups=1)
    ready, body = health.readiness()
    assert not ready
    assert body["phase"] == "stopping"
    assert body["reason"] == "stopping: draining in-flight work and committing"


def test_transient_errors_are_the_ones_retrying_can_fix() -> None:
    assert transient(KafkaConnectionError("Unable to bootstrap"))
    assert transient(TimeoutError())
    assert not transient(TopicAuthorizationFailedError("requests"))
    assert not transient(ValueError("bad setting"))


async def test_first_contact_waits_for_the_broker_and_reports_why() -> None:
    health = Health()
    calls: list[str] = []
    seen: list[tuple[bool, str]] = []

    async def step() -> str:
        calls.append("try")
        if len(calls) < 3:
            ready, body = health.readiness()
            seen.append((ready, body["reason"]))
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9)]")
        return "topics"

    assert await health.first_contact(step, first_delay_s=0.01, max_delay_s=0.02) == "topics"
    assert len(calls) == 3
    ready, body = health.readiness()
    assert not ready  # reached the broker, but not a member yet
    assert body["reason"] == "joining the consumer group"
    assert body["broker"]["last_ok_s_ago"] is not None
    assert seen[1] == (
        False,
        "cannot reach the Kafka broker: KafkaConnectionError: Unable to bootstrap from [('127.0.0.1', 9)]",
    )


async def test_first_contact_raises_what_retrying_cannot_fix_at_once() -> None:
    health = Health()
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        raise TopicAuthorizationFailedError("requests")

    with pytest.raises(TopicAuthorizationFailedError):
        await health.first_contact(step, first_delay_s=0.01)
    assert calls == 1


@pytest.fixture
async def not_a_broker() -> AsyncIterator[int]:
    """A loopback port that answers like an HTTP server: a TLS handshake with it fails."""

    async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.0 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


async def test_first_contact_gives_up_after_its_timeout_naming_the_real_cause(
    not_a_broker: int, caplog: pytest.LogCaptureFixture
) -> None:
    """aiokafka reports a failed TLS handshake as "Unable to bootstrap" like a broker that is down:
    the reason, the warnings and the final error name the TLS failure, and retrying stops."""
    kwargs = {
        "bootstrap_servers": f"127.0.0.1:{not_a_broker}",
        "security_protocol": "SSL",
        "ssl_context": ssl.create_default_context(),
    }
    health = Health()
    reasons: list[str] = []

    async def step() -> None:
        reasons.append(health.readiness()[1]["reason"])
        await ensure_topics(TopicSettings(), kwargs)

    caplog.set_level(logging.ERROR, logger="aiokafka")  # a worker's level (shadowlane.cli.main)
    started = time.monotonic()
    with (
        caplog.at_level(logging.WARNING, logger="shadowlane.health"),
        pytest.raises(StartupTimeout) as gave_up,
    ):
        await health.first_contact(step, give_up_after_s=0.6, first_delay_s=0.1, max_delay_s=0.2)
    assert time.monotonic() - started < 10
    assert len(reasons) >= 3  # it retried meanwhile
    cause = f"127.0.0.1:{not_a_broker}: SSLError: [SSL"
    message = str(gave_up.value)
    assert message.startswith("gave up after 0.6s: cannot reach the Kafka broker: KafkaConnectionError")
    assert cause in message
    assert "\n" not in message
    assert cause in reasons[-1]  # what /readyz said while retrying
    ready, body = health.readiness()
    assert not ready
    assert cause in body["reason"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "shadowlane.health"]
    assert warnings
    assert all(cause in w and "; retrying in" in w for w in warnings)


class Offsets:
    """A broker's answer to ListOffsets, or its silence."""

    def __init__(self, answer: dict[TopicPartition, int] | Exception | None) -> None:
        self.answer = answer

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        if isinstance(self.answer, Exception):
            raise self.answer
        if self.answer is None:
            await asyncio.sleep(3600)
            return {}
        return dict(self.answer)


async def test_the_broker_probe_records_success_refusal_and_silence() -> None:
    health = Health(probe_timeout_s=0.05)
    health.member("g", 1)
    tp = TopicPartition("t", 0)
    assert await health.probe_once(Offsets({tp: 5}), tp)
    assert health.readiness()[0]
    assert not await health.probe_once(Offsets(KafkaConnectionError("refused")), tp)
    assert health.readiness()[1]["reason"] == (
        "the Kafka broker cannot be reached: KafkaConnectionError: refused"
    )
    assert not await health.probe_once(Offsets(None), tp)
    assert health.readiness()[1]["reason"] == "the Kafka broker did not answer within 0.05s"


async def test_watching_the_broker_probes_until_unwatched() -> None:
    health = Health(probe_interval_s=0.01)
    health.member("g", 1)
    health.watch_broker(Offsets({}), "t")
    await asyncio.sleep(0.05)
    assert health.readiness()[0]
    health.unwatch_broker()
    health.broker_failed("gone")
    await asyncio.sleep(0.03)
    assert not health.readiness()[0]  # no probe runs any more to clear it


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_metrics_server_answers_health_as_json_next_to_metrics() -> None:
    health, _clock = made()
    server = serve_metrics([StatsCollector("shadowlane_t", lambda: {"replayed": 2})], health=health)
    try:
        status, body = get(server.port, "/healthz")
        assert status == 200
        assert orjson.loads(body)["alive"] is True
        status, body = get(server.port, "/readyz")
        assert status == 503
        assert orjson.loads(body)["reason"] == "starting"
        health.member("g", 4)
        health.broker_reached()
        status, body = get(server.port, "/readyz")
        assert (status, orjson.loads(body)["partitions"]) == (200, 4)
        status, body = get(server.port, "/metrics")
        assert status == 200
        assert b"shadowlane_t_replayed_total 2.0" in body
        server.registry.register(StatsCollector("shadowlane_late", lambda: {"seen": 1}))
        assert b"shadowlane_late_seen_total 1.0" in get(server.port, "/metrics")[1]
    finally:
        server.close()


def test_without_health_state_the_health_paths_are_not_found() -> None:
    server = serve_metrics([])
    try:
        assert get(server.port, "/healthz")[0] == 404
        assert get(server.port, "/readyz")[0] == 404
        assert get(server.port, "/metrics")[0] == 200
    finally:
        server.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_healthcheck_probe_exits_by_the_answer(capsys: pytest.CaptureFixture[str]) -> None:
    health, clock = made(stall_after_s=10.0)
    server = serve_metrics([], health=health)
    try:
        assert health_probe.main(["--port", str(server.port)]) == 0
        assert '"alive":true' in capsys.readouterr().out
        assert health_probe.main(["--port", str(server.port), "--ready"]) == 1
        assert capsys.readouterr().err.startswith('503 {"ready":false')
        clock.now += 11.0  # the loop stalls
        assert health_probe.main(["--port", str(server.port)]) == 1
        assert "event loop stalled" in capsys.readouterr().err
    finally:
        server.close()
    port = closed_port()
    assert health_probe.main(["--port", str(port), "--timeout", "1"]) == 1
    assert capsys.readouterr().err.startswith(f"no answer from http://127.0.0.1:{port}/healthz")
