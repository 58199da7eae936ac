"""The live control plane on the real broker: a kill switch stops the hook and the shadow worker
within 2 s of its produce acknowledgement; tampered and unsigned records are refused (the previous
route config stays) and audited; shadow-on / shadow-off / kill from the CLI flip a running hook;
after the broker compacted away every newest genuine record under a writer's replays, forgeries
and garbage, fresh watchers still converge to the newest genuine state (the control log)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from pydantic import SecretStr

from shadowlane.cli import control_cmds
from shadowlane.contracts.audit import AuditEvent
from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.control import ALL_FLAGS, ControlRecord, KillSwitch
from shadowlane.contracts.route_config import RouteConfig, RouteRule, RouteScope
from shadowlane.hashing import unit_hash
from shadowlane.hook.publisher import ShadowPublisher
from shadowlane.rollout.audit import AuditLog
from shadowlane.rollout.control_plane import ControlWatcher, MirrorGate
from shadowlane.rollout.control_publisher import ControlPublisher
from shadowlane.rollout.signing import ControlState, sign
from shadowlane.settings import ControlSettings, Settings
from shadowlane.shadow.candidates import CallableCandidate
from shadowlane.shadow.worker import ShadowWorker
from tests.support import candidates
from tests.support.factories import envelope
from tests.support.kafka_io import produce, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

KEY = SecretStr("integration-control-key-0123456789abcdef")
FLAG = "grammar"
EP = "/v1/chat/completions"
BODY = {"messages": [{"role": "user", "content": "hi"}]}
RESP = {"choices": [{"message": {"role": "assistant", "content": "hello"}}]}


@pytest.fixture
def cp_settings(it_settings: Settings) -> Settings:
    return it_settings.model_copy(update={"control": ControlSettings(signing_keys={"it": KEY})})


def route(ratio: float) -> RouteConfig:
    rule = RouteRule(
        scope=RouteScope(endpoints=(EP,)), strategy="shadow", candidate="grammar-b", shadow_ratio=ratio
    )
    return RouteConfig(flag=FLAG, epoch=0, salt=FLAG, baseline="grammar-a", rules=(rule,))


@contextlib.asynccontextmanager
async def operator(
    settings: Settings, kwargs: dict[str, Any], *, audited: bool = True
) -> AsyncIterator[tuple[ControlPublisher, ControlWatcher]]:
    """A control publisher (and the watcher it reads versions from), like the CLI has."""
    producer = AIOKafkaProducer(**kwargs, acks="all", enable_idempotence=True)
    await producer.start()
    view = ControlWatcher(settings, kwargs, observer="operator")
    await view.start()
    try:
        assert await view.wait_ready(30)
        audit = AuditLog(producer, settings.topics.audit_topic) if audited else None
        yield ControlPublisher(settings, producer, view, audit=audit), view
    finally:
        await view.stop()
        await producer.stop()


@contextlib.asynccontextmanager
async def watchers(
    settings: Settings, kwargs: dict[str, Any], *observers: str, audit: AuditLog | None = None
) -> AsyncIterator[list[ControlWatcher]]:
    started = [ControlWatcher(settings, kwargs, observer=o, audit=audit) for o in observers]
    try:
        for w in started:
            await w.start()
        for w in started:
            assert await w.wait_ready(30)
        yield started
    finally:
        for w in started:
            await w.stop()


async def until(predicate: Callable[[], object], timeout_s: float = 10.0) -> float:
    """Seconds until ``predicate()`` holds (polled every 5 ms); fails the test on timeout."""
    started = time.perf_counter()
    while not predicate():
        assert time.perf_counter() - started < timeout_s, "condition not reached in time"
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


async def effects(since: float, **predicates: Callable[[], object]) -> dict[str, float]:
    """Seconds from ``since`` until each predicate first holds (each called until it does, every
    5 ms); fails the test when one does not hold within 2 s."""
    found: dict[str, float] = {}
    while len(found) < len(predicates):
        for name, predicate in predicates.items():
            if name not in found and predicate():
                found[name] = time.perf_counter() - since
        missing = sorted(set(predicates) - set(found))
        assert not missing or time.perf_counter() - since < 2.0, f"no effect within 2 s: {missing}"
        await asyncio.sleep(0.005)
    return found


class Traffic:
    """Simulated prod requests through a running ShadowPublisher."""

    def __init__(self, publisher: ShadowPublisher) -> None:
        self.publisher = publisher
        self.n = 0

    def request(self, rid: str | None = None) -> bool:
        self.n += 1
        return self.publisher.publish(
            req_id=rid or f"req-{self.n}",
            endpoint=EP,
            request=BODY,
            response=RESP,
            status=200,
            latency_ms=1.0,
        )


def hook(settings: Settings, kwargs: dict[str, Any], gate: MirrorGate) -> ShadowPublisher:
    return ShadowPublisher(
        settings.hook,
        topic=settings.topics.requests_topic,
        producer_factory=lambda: AIOKafkaProducer(**kwargs, linger_ms=5),
        gate=gate,
    )


async def test_kill_switch_stops_hook_and_worker_within_two_seconds(
    cp_settings: Settings, kafka_kwargs: dict[str, Any], record_property: Callable[[str, object], None]
) -> None:
    s = cp_settings
    async with (
        operator(s, kafka_kwargs, audited=False) as (control, _view),
        watchers(s, kafka_kwargs, "hook", "worker") as (hook_view, worker_view),
    ):
        publisher = hook(s, kafka_kwargs, MirrorGate(hook_view, FLAG))
        await publisher.start()
        worker = ShadowWorker(
            s, CallableCandidate("cand", candidates.echo), kafka_kwargs, halt=lambda: worker_view.killed(FLAG)
        )
        task = asyncio.create_task(worker.run())
        traffic = Traffic(publisher)
        latencies: dict[str, list[float]] = {
            "hook": [],
            "worker": [],
            "hook_release": [],
            "worker_release": [],
        }
        try:
            await asyncio.wait_for(worker.assigned.wait(), 30)
            assert traffic.request()
            await until(lambda: worker.stats.replayed >= 1, 20)
            for drill in range(4):
                name = ALL_FLAGS if drill % 2 == 0 else FLAG  # the global switch, then the flag's own
                await control.publish(
                    "kill_switch", name, KillSwitch(engaged=True), who="it", why=f"drill {drill}"
                )
                acked = time.perf_counter()  # publish returns once the broker acknowledged the record
                killed_before = publisher.stats.killed
                took = await effects(
                    acked,
                    hook=lambda: not traffic.request(),
                    worker=lambda: worker.gauges()["paused_by_kill"] == 1.0,
                )
                latencies["hook"].append(took["hook"])
                latencies["worker"].append(took["worker"])
                assert publisher.stats.killed == killed_before + 1
                # nothing is mirrored or replayed while killed (replays already calling may finish)
                await asyncio.sleep(0.3)
                replayed, published = worker.stats.replayed, publisher.stats.published
                tag = f"k{drill}"
                await produce(
                    kafka_kwargs,
                    s.topics.requests_topic,
                    [(e.req_hash.encode(), encode(e)) for e in (envelope(i, tag=tag) for i in range(3))],
                )
                await asyncio.sleep(1.0)
                assert not traffic.request()
                assert worker.stats.replayed == replayed
                assert publisher.stats.published == published
                assert worker.gauges()["paused_by_kill"] == 1.0
                await control.publish(
                    "kill_switch", name, KillSwitch(engaged=False), who="it", why="all clear"
                )
                acked = time.perf_counter()
                took = await effects(
                    acked, hook=traffic.request, worker=lambda: worker.gauges()["paused_by_kill"] == 0.0
                )
                latencies["hook_release"].append(took["hook"])
                latencies["worker_release"].append(took["worker"])
                target = replayed + 3  # the records produced while killed, replayed after the release
                await until(lambda: worker.stats.replayed >= target, 20)  # noqa: B023
            assert task.done() is False
        finally:
            worker.stop()
            await asyncio.wait_for(task, 30)
            await publisher.stop()
    assert worker.stats.kill_pauses == 4
    assert worker.stats.dead_lettered == 0
    summary = {k: round(max(v), 3) for k, v in latencies.items()}
    record_property("kill_switch_max_latency_s", summary)
    print(f"\nkill switch latency (produce ack -> effect), max over 4 drills: {summary}")
    print(f"all: { {k: [round(x, 3) for x in v] for k, v in latencies.items()} }")
    assert max(max(v) for v in latencies.values()) < 2.0


def _raw(record: ControlRecord, **changes: Any) -> tuple[bytes, bytes]:
    data = {**orjson.loads(encode(record)), **changes}
    return record.key.encode(), orjson.dumps(data)


async def test_tampered_and_unsigned_records_are_refused_the_old_config_stays_and_is_audited(
    cp_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    s = cp_settings
    producer = AIOKafkaProducer(**kafka_kwargs, acks="all")
    await producer.start()
    try:
        audit = AuditLog(producer, s.topics.audit_topic)
        async with (
            operator(s, kafka_kwargs) as (control, _view),
            watchers(s, kafka_kwargs, "hook", audit=audit) as (hook_view,),
        ):
            v1 = await control.publish("route_config", FLAG, route(1.0), who="alice", why="ROLL-1")
            await until(lambda: hook_view.record("route_config", FLAG) == v1)
            claims: dict[str, Any] = {"kind": "route_config", "name": FLAG, "key_id": "it"}
            genuine = sign(
                route(0.0), **claims, version=2, key=KEY, signed_by="mallory", reason="turn it off"
            )
            other_key = SecretStr("attacker-key-000000000000000000000000000")
            forged = sign(
                route(0.0), **claims, version=3, key=other_key, signed_by="mallory", reason="forged"
            )
            tampered_payload = {
                **genuine.payload,
                "rules": [{**genuine.payload["rules"][0], "shadow_ratio": 0.5}],
            }
            await produce(
                kafka_kwargs,
                s.topics.control_topic,
                [
                    _raw(genuine, payload=tampered_payload),  # payload changed in transit
                    _raw(genuine, signature="", key_id=""),  # unsigned
                    _raw(forged),  # signed with a key nobody trusts under that id
                ],
            )
            await until(lambda: hook_view.stats.rejected >= 3)
            assert hook_view.state.rejections == {"bad_signature": 2, "unsigned": 1}
            assert hook_view.record("route_config", FLAG) == v1
            assert hook_view.route_config(FLAG) == route(1.0)
            assert MirrorGate(hook_view, FLAG)(EP, "t", 0.9) == "mirror"  # ratio 1.0 still in force
        # a process starting now reads the same topic and ends up with v1 too
        async with watchers(s, kafka_kwargs, "late") as (late,):
            assert late.record("route_config", FLAG) == v1
            assert late.state.rejections == {"bad_signature": 2, "unsigned": 1}
    finally:
        await producer.stop()
    events = [
        decode(r.value, AuditEvent)
        for r in await read_topic(kafka_kwargs, s.topics.audit_topic, want=5, settle_s=0.5)
    ]
    published = [e for e in events if e.details.get("stage") == "published"]
    assert [(e.who, e.why, e.what) for e in published] == [("alice", "ROLL-1", "config_change")]
    applied = [e for e in events if e.what == "config_change" and e.details.get("observer") == "hook"]
    assert len(applied) == 1
    rejected = [e for e in events if e.what == "config_rejected"]
    assert sorted(e.details["reason"] for e in rejected) == ["bad_signature", "bad_signature", "unsigned"]
    for event in rejected:
        assert event.who == "mallory"  # the claimed signer
        assert event.name == FLAG
        assert event.before == event.after == applied[0].after  # v1 stayed in force
        assert event.after is not None
        assert event.after.version == 1


async def test_cli_shadow_on_off_and_kill_flip_a_running_hook(
    cp_settings: Settings, kafka_kwargs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    s = cp_settings
    parser = argparse.ArgumentParser()
    control_cmds.add_parsers(parser.add_subparsers(dest="command", required=True))

    async def cli(*argv: str) -> int:
        args = parser.parse_args(list(argv))
        code: int = await asyncio.to_thread(args.handler, args, s)
        return code

    who = ("--who", "carol", "--why", "INC-9")
    async with watchers(s, kafka_kwargs, "hook") as (view,):
        publisher = hook(s, kafka_kwargs, MirrorGate(view, FLAG))
        await publisher.start()
        traffic = Traffic(publisher)
        try:
            assert traffic.request()  # nothing in force: mirrored as the hook samples
            assert await cli("shadow-off", "--endpoint", EP, "--flag", FLAG, *who) == 0
            await until(lambda: not traffic.request(), 2.0)
            assert publisher.stats.route_skipped >= 1
            assert (
                await cli("shadow-on", "grammar-a", "grammar-b", "--endpoint", EP, "--flag", FLAG, *who) == 0
            )
            await until(traffic.request, 2.0)
            assert (
                await cli("shadow-on", "grammar-a", "grammar-b", "--ratio", "0.5", "--flag", FLAG, *who) == 0
            )
            await until(lambda: (c := view.route_config(FLAG)) is not None and c.rules[0].shadow_ratio == 0.5)
            ids = [f"ratio-{i}" for i in range(400)]
            mirrored = {rid for rid in ids if traffic.request(rid)}
            assert mirrored == {rid for rid in ids if unit_hash(s.hook.salt, rid) < 0.5}
            assert 150 < len(mirrored) < 250
            assert await cli("kill", "--flag", FLAG, *who) == 0
            await until(lambda: not traffic.request() and publisher.stats.killed >= 1, 2.0)
            assert await cli("kill", "--flag", FLAG, "--release", *who) == 0
            await until(lambda: view.record("kill_switch", FLAG) is not None and not view.killed(FLAG), 2.0)
            capsys.readouterr()
            assert await cli("shadow-on", "grammar-a", "grammar-a", "--flag", FLAG, *who) == 3
            assert "baseline itself" in capsys.readouterr().err  # refused before anything is produced
            assert await cli("control", "show") == 0
        finally:
            await publisher.stop()
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    shown = {line["key"]: line for line in lines if "key" in line}
    assert shown["route_config:grammar"]["version"] == 3
    assert shown["route_config:grammar"]["signed_by"] == "carol"
    assert shown["kill_switch:grammar"]["payload"] == {"engaged": False}
    assert lines[-1]["event"] == "summary"
    assert lines[-1]["rejected"] == {}
    events = [
        decode(r.value, AuditEvent)
        for r in await read_topic(kafka_kwargs, s.topics.audit_topic, want=5, settle_s=0.5)
    ]
    assert [(e.what, e.who, e.why) for e in events] == [("config_change", "carol", "INC-9")] * 3 + [
        ("kill_switch", "carol", "INC-9")
    ] * 2


async def test_watcher_resumes_after_a_failure_without_reapplying(
    cp_settings: Settings, kafka_kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = cp_settings
    async with operator(s, kafka_kwargs, audited=False) as (control, _view):
        for ratio in (1.0, 0.5, 0.25):
            await control.publish("route_config", FLAG, route(ratio), who="it", why="step")
        w = ControlWatcher(s, kafka_kwargs, observer="flaky")
        feed, calls = w.feed, []

        def flaky(key: bytes | None, value: bytes | None, topic: str = "") -> Any:
            calls.append(key)
            if len(calls) == 2:
                raise ConnectionError("lost the broker mid-batch")
            return feed(key, value, topic)

        monkeypatch.setattr(w, "feed", flaky)
        await w.start()
        try:
            assert await w.wait_ready(30)
            assert w.stats.reconnects == 1
            assert w.stats.applied == 3
            assert w.state.rejections == {}  # nothing was applied twice
            await control.publish("kill_switch", ALL_FLAGS, KillSwitch(engaged=True), who="it", why="after")
            await until(lambda: w.killed(FLAG), 2.0)
        finally:
            await w.stop()


async def _compact_soon(kwargs: dict[str, Any], topic: str) -> None:
    """Make the broker compact ``topic`` as soon as a segment rolls (tiny segments, any dirt)."""
    admin = AIOKafkaAdminClient(**kwargs)
    await admin.start()
    try:
        configs = {
            "cleanup.policy": "compact",
            "segment.ms": "200",
            "min.cleanable.dirty.ratio": "0.001",
            "min.compaction.lag.ms": "0",
            "delete.retention.ms": "0",
        }
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)])
    finally:
        await admin.close()


async def _values(kwargs: dict[str, Any], topic: str) -> set[bytes]:
    """Every value on ``topic`` now (read from the start, no group)."""
    return {
        r.value for r in await read_topic(kwargs, topic, want=10_000, timeout_s=3.0) if r.value is not None
    }


@pytest.mark.timeout(150)
async def test_fresh_watchers_converge_to_the_newest_genuine_state_after_compaction(
    cp_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    # a writer to the control topic without the signing key replays older genuine records, forges
    # and writes garbage under genuine keys, so that once compacted the topic holds none of the
    # newest genuine records; processes that start after that still converge to them
    s = cp_settings
    control_topic = s.topics.control_topic
    await _compact_soon(kafka_kwargs, control_topic)
    async with operator(s, kafka_kwargs, audited=False) as (control, _view):
        r1 = await control.publish("route_config", FLAG, route(0.5), who="it", why="v1")
        r2 = await control.publish("route_config", FLAG, route(0.2), who="it", why="v2")
        k1 = await control.publish("kill_switch", FLAG, KillSwitch(engaged=False), who="it", why="v1")
        k2 = await control.publish("kill_switch", FLAG, KillSwitch(engaged=True), who="it", why="incident")
    forged = _raw(r2, version=9, payload=route(1.0).model_dump(mode="json"))  # signature of v2 kept
    unsigned = sign(
        KillSwitch(engaged=False), kind="kill_switch", name=ALL_FLAGS, version=5, key_id="it", key=KEY,
        signed_by="it", reason="x",
    ).model_copy(update={"signature": ""})  # fmt: skip
    last = [  # what the attacker leaves last under each genuine key
        (r1.key.encode(), encode(r1)),  # an older genuine route config (ratio 0.5)
        (k1.key.encode(), encode(k1)),  # an older genuine kill switch: disengaged
    ]
    attack = [forged, (k2.key.encode(), b"\x00garbage"), (b"kill_switch:*", encode(unsigned)), *last]
    await produce(kafka_kwargs, control_topic, attack)
    await asyncio.sleep(0.5)
    await produce(kafka_kwargs, control_topic, last)  # a newer segment: the older one may be compacted
    genuine = {encode(r2), encode(k2)}
    deadline = time.monotonic() + 100
    while genuine & await _values(kafka_kwargs, control_topic):
        assert time.monotonic() < deadline, "the broker did not compact the control topic"
        await asyncio.sleep(1.0)
    # what the compacted topic alone says now: the attacker's state
    alone = ControlState(s.control.signing_keys)
    for record in await read_topic(kafka_kwargs, control_topic, want=10_000, timeout_s=3.0):
        alone.apply_message(record.key, record.value)
    alone_route = alone.route_config(FLAG)
    assert alone_route is not None
    assert alone_route.rules[0].shadow_ratio == 0.5
    assert not alone.killed(FLAG)

    async with watchers(s, kafka_kwargs, "fresh-1", "fresh-2") as fresh:
        for w in fresh:
            assert w.record("route_config", FLAG) == r2
            assert w.record("kill_switch", FLAG) == k2
            assert w.killed(FLAG)
            assert w.in_force() == [k2, r2]
            assert w.stats.mirrored >= 2  # the replays: the log's records, read again
            assert w.state.rejections == {"unsigned": 1}
        gate = MirrorGate(fresh[0], FLAG)
        assert gate(EP, "t", 0.1) == "killed"
        # a shadow worker that starts now honours the engaged kill switch: it replays nothing
        await produce(
            kafka_kwargs,
            s.topics.requests_topic,
            [(e.req_hash.encode(), encode(e)) for e in (envelope(i, tag="compacted") for i in range(3))],
        )
        worker = ShadowWorker(
            s, CallableCandidate("cand", candidates.echo), kafka_kwargs, halt=lambda: fresh[1].killed(FLAG)
        )
        task = asyncio.create_task(worker.run())
        try:
            await asyncio.wait_for(worker.assigned.wait(), 30)
            await until(lambda: worker.gauges()["paused_by_kill"] == 1.0, 10)
            await asyncio.sleep(2.0)
            assert worker.stats.replayed == 0
        finally:
            worker.stop()
            await asyncio.wait_for(task, 30)
