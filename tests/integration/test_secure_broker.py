"""Least privilege on a secured broker: ``shadowlane kafka start --secure`` (SASL_SSL, SCRAM-SHA-512,
a CA it generates, StandardAuthorizer denying what no ACL grants), ``shadowlane kafka acls --secure
--apply``, then every component under its own principal, end to end, and the denials: a shadow
principal cannot write control, the hook's principal cannot read any topic."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from shadowlane.cli.main import main
from shadowlane.compare.embedder import build_embedder
from shadowlane.compare.worker import Comparator
from shadowlane.contracts.codec import decode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.control import KillSwitch
from shadowlane.hook.publisher import ShadowPublisher
from shadowlane.kafka.acls import COMPONENTS, describe_acls
from shadowlane.kafka.bootstrap import client_kwargs
from shadowlane.kafka.local import LocalKafka
from shadowlane.rollout.control_plane import ControlWatcher
from shadowlane.rollout.control_publisher import ControlPublisher
from shadowlane.settings import (
    CompareSettings,
    ControlSettings,
    HookSettings,
    Settings,
    ShadowSettings,
    TopicSettings,
    load_settings,
)
from shadowlane.shadow.candidates import CallableCandidate
from shadowlane.shadow.worker import ShadowWorker
from tests.support.kafka_io import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

N = 5
KEY = SecretStr("secure-broker-control-key-0123456789abcdef")
BODY = {"model": "m", "messages": [{"role": "user", "content": "Fix: I goed home."}]}
RESP = {"choices": [{"message": {"role": "assistant", "content": "I went home."}}]}


@pytest.fixture(scope="module")
def secure_broker() -> Iterator[LocalKafka]:
    local = LocalKafka.from_settings(load_settings(), secure=True)
    was_running = bool(local.status()["running"])
    local.start(timeout_s=180)
    yield local
    if not was_running:
        local.stop()


def _settings(local: LocalKafka, principal: str, run: str) -> Settings:
    """This test's settings, connecting as ``principal`` (what its `kafka env` prints)."""
    env = local.client_env(principal)
    kafka = local.client_settings(principal)
    assert {k: v for k, v in env.items() if k.startswith("SHADOWLANE_KAFKA__")} == {
        f"SHADOWLANE_KAFKA__{name.upper()}": str(
            value.get_secret_value() if name == "sasl_password" else value
        )
        for name, value in kafka.model_dump(exclude_defaults=True).items()
    }
    return Settings(
        state_dir=local.kafka_dir.parent,
        bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
        kafka=kafka,
        topics=TopicSettings(prefix=f"sec-{run}.", partitions=2),
        hook=HookSettings(linger_ms=1),
        shadow=ShadowSettings(
            candidate="cand", group_prefix=f"sec-{run}.shadow.", rate_cap=1000.0, timeout_s=5
        ),
        compare=CompareSettings(
            group_id=f"sec-{run}.compare", candidates=("cand",), embedder="none", window_s=5
        ),
        control=ControlSettings(signing_keys={"sec": KEY}),
    )


def _kwargs(settings: Settings) -> dict[str, Any]:
    return client_kwargs(settings, settings.bootstrap_servers or "")


async def _denied_write(settings: Settings, topic: str) -> bool:
    producer = AIOKafkaProducer(**{**_kwargs(settings), "request_timeout_ms": 5000}, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"{}", key=b"k")
    except KafkaError as exc:
        return "Authorization" in type(exc).__name__
    finally:
        await producer.stop()
    return False


async def _denied_read(settings: Settings, topic: str) -> bool:
    consumer = AIOKafkaConsumer(topic, **_kwargs(settings), group_id=None, auto_offset_reset="earliest")
    try:
        await consumer.start()
        await consumer.getmany(timeout_ms=3000)
        await consumer.getmany(timeout_ms=1000)
    except KafkaError as exc:
        return "Authorization" in type(exc).__name__
    finally:
        await consumer.stop()
    return False


async def test_every_component_runs_under_its_own_principal_and_no_further(
    secure_broker: LocalKafka, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = uuid.uuid4().hex[:8]
    as_ = {name: _settings(secure_broker, name, run) for name in ("admin", *COMPONENTS)}
    admin = as_["admin"]
    # the operator's command: topics and ACLs for this deployment's names, as the administrator
    monkeypatch.setenv("SHADOWLANE_HOME", str(secure_broker.kafka_dir.parent))
    monkeypatch.setenv("SHADOWLANE_TOPICS__PREFIX", admin.topics.prefix)
    monkeypatch.setenv("SHADOWLANE_SHADOW__GROUP_PREFIX", admin.shadow.group_prefix)
    monkeypatch.setenv("SHADOWLANE_COMPARE__GROUP_ID", admin.compare.group_id)
    assert await asyncio.to_thread(main, ["kafka", "acls", "--secure", "--apply"]) == 0
    granted: list[dict[str, str]] = []
    for _ in range(50):  # ACLs reach the brokers through the metadata log: read until they show
        granted = [
            a for a in await describe_acls(_kwargs(admin)) if a["resource_name"].startswith(f"sec-{run}.")
        ]
        if {a["principal"] for a in granted} == {f"User:{name}" for name in COMPONENTS}:
            break
        await asyncio.sleep(0.2)
    assert {a["principal"] for a in granted} == {f"User:{name}" for name in COMPONENTS}
    assert {(a["principal"], a["operation"]) for a in granted if a["principal"] == "User:hook"} == {
        ("User:hook", "WRITE")
    }
    topics = admin.topics

    # the denials
    assert await _denied_write(as_["shadow"], topics.control_topic)
    assert await _denied_write(as_["hook"], topics.control_topic)
    for topic in topics.all_topics():
        assert await _denied_read(as_["hook"], topic), topic
    assert await _denied_write(as_["compare"], topics.requests_topic)

    # end to end, each component as itself
    control = as_["control"]
    producer = AIOKafkaProducer(**_kwargs(control), acks="all")
    await producer.start()
    view = ControlWatcher(control, _kwargs(control), observer="operator")
    await view.start()
    try:
        assert await view.wait_ready(30)
        publisher = ControlPublisher(control, producer, view)
        await publisher.publish("kill_switch", "grammar", KillSwitch(engaged=False), who="it", why="go")
    finally:
        await view.stop()
        await producer.stop()

    shadow, compare, hook = as_["shadow"], as_["compare"], as_["hook"]
    watcher = ControlWatcher(shadow, _kwargs(shadow), observer="shadow")
    await watcher.start()
    assert await watcher.wait_ready(30)
    assert watcher.record("kill_switch", "grammar") is not None  # read as the shadow principal
    worker = ShadowWorker(
        shadow, CallableCandidate("cand", lambda body: "I went home."), _kwargs(shadow),
        halt=lambda: watcher.killed("grammar"),
    )  # fmt: skip
    comparator = Comparator(compare, build_embedder(compare.compare), _kwargs(compare))
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(comparator.run())]
    pub = ShadowPublisher.from_settings(hook)
    await pub.start()
    try:
        await asyncio.wait_for(pub.connected.wait(), 30)
        for i in range(N):
            assert pub.publish(req_id=f"sec-{i}", endpoint="/v1/chat/completions", request=BODY,
                               response=RESP, status=200, latency_ms=3.0)  # fmt: skip
        records = await read_topic(_kwargs(admin), topics.compare_topic, want=N, timeout_s=90)
    finally:
        await pub.stop()
        worker.stop()
        comparator.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        await watcher.stop()
    comparisons = [decode(r.value, Comparison) for r in records]
    assert len(comparisons) == N
    assert {c.outcome for c in comparisons} == {"joined"}
    assert pub.stats.published == N
    assert worker.stats.dead_lettered == 0
    assert comparator.stats.dead_lettered == 0
    capsys.readouterr()
