"""shadowlane/rollout/control_plane.py and the control commands, without a broker: the watcher applies
signed records fed from memory (tampered / unsigned ones are refused, counted and audited, the old
config stays), kill switches flip the hook gate, the publisher versions and audits its records."""

from __future__ import annotations

import argparse
from typing import Any, cast

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import SecretStr, ValidationError

from shadowlane.cli import control_cmds
from shadowlane.contracts.audit import AuditEvent
from shadowlane.contracts.codec import encode
from shadowlane.contracts.control import ControlRecord, KillSwitch
from shadowlane.contracts.route_config import RouteConfig, RouteRule, RouteScope
from shadowlane.errors import ConfigError
from shadowlane.hashing import unit_hash
from shadowlane.hook.publisher import ShadowPublisher
from shadowlane.rollout import route_changes
from shadowlane.rollout.control_plane import ControlWatcher, MirrorGate
from shadowlane.rollout.control_publisher import ControlPublisher
from shadowlane.rollout.router import assign
from shadowlane.rollout.signing import Applied, ControlState, Rejected, sign, verify
from shadowlane.settings import ControlSettings, HookSettings, Settings
from tests.support.fake_kafka import FakeProducerFactory

KEY = SecretStr("unit-test-key-0123456789abcdef0123456789")
KEYS = {"unit": KEY}
FLAG = "grammar"
EP = "/v1/chat/completions"


def settings(keys: dict[str, SecretStr] | None = None) -> Settings:
    return Settings(control=ControlSettings(signing_keys=KEYS if keys is None else keys))


def route(
    ratio: float = 1.0, *, endpoint: str = EP, strategy: Any = "shadow", kill: bool = False
) -> RouteConfig:
    rule = RouteRule(
        scope=RouteScope(endpoints=(endpoint,)),
        strategy=strategy,
        candidate="grammar-b" if strategy == "shadow" else None,
        shadow_ratio=ratio if strategy == "shadow" else 0.0,
    )
    return RouteConfig(flag=FLAG, epoch=0, salt=FLAG, baseline="grammar-a", kill=kill, rules=(rule,))


def signed(payload: Any, *, kind: Any = "route_config", name: str = FLAG, version: int = 1) -> ControlRecord:
    return sign(
        payload,
        kind=kind,
        name=name,
        version=version,
        key_id="unit",
        key=KEY,
        signed_by="alice",
        reason="TICKET-1",
        signed_at_ms=1_000,
    )


def message(record: ControlRecord) -> tuple[bytes, bytes]:
    return record.key.encode(), encode(record)


def tampered(record: ControlRecord, **payload: Any) -> tuple[bytes, bytes]:
    data = orjson.loads(encode(record))
    data["payload"] = {**data["payload"], **payload}
    return record.key.encode(), orjson.dumps(data)


def unsigned(record: ControlRecord) -> tuple[bytes, bytes]:
    data = orjson.loads(encode(record))
    data.update(signature="", key_id="")
    return record.key.encode(), orjson.dumps(data)


class Sink:
    def __init__(self, fail: int = 0) -> None:
        self.events: list[AuditEvent] = []
        self.fail = fail

    async def write(self, record: AuditEvent) -> AuditEvent:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("broker down")
        self.events.append(record)
        return record


def watcher(sink: Sink | None = None, observer: str = "unit") -> ControlWatcher:
    return ControlWatcher(settings(), {}, observer=observer, audit=sink, clock=lambda: 42)


def test_tampered_and_unsigned_records_are_refused_and_the_old_config_stays() -> None:
    w = watcher()
    v1 = signed(route(1.0))
    assert isinstance(w.feed(*message(v1)), Applied)
    v2 = signed(route(0.0), version=2)
    outcomes = [
        w.feed(*tampered(v2, rules=[{**v2.payload["rules"][0], "shadow_ratio": 0.5}])),
        w.feed(*unsigned(v2)),
        w.feed(b"route_config:grammar", b"\x00not json"),
        w.feed(b"route_config:grammar", None),
        w.feed(*message(v1)),  # a replay of the record in force
    ]
    assert [o.reason for o in outcomes if isinstance(o, Rejected)] == [
        "bad_signature",
        "unsigned",
        "undecodable",
        "tombstone",
        "duplicate",
    ]
    in_force = w.route_config(FLAG)
    assert in_force is not None
    assert in_force.rules[0].shadow_ratio == 1.0
    assert w.record("route_config", FLAG) == v1
    assert w.stats.records == 6
    assert w.stats.applied == 1
    assert w.stats.rejected == 5
    assert w.state.rejections == {
        "bad_signature": 1,
        "unsigned": 1,
        "undecodable": 1,
        "tombstone": 1,
        "duplicate": 1,
    }
    assert isinstance(w.feed(*message(v2)), Applied)  # the genuine v2 still goes through
    assert w.route_config(FLAG) == route(0.0)


def test_kill_switch_flips_state_and_the_hook_gate() -> None:
    w = watcher()
    gate = MirrorGate(w, FLAG)
    assert gate(EP, "t", 0.5) == "mirror"  # nothing in force: the hook's own sampling decides
    w.feed(*message(signed(KillSwitch(engaged=True), kind="kill_switch", name="*")))
    assert w.killed(FLAG)
    assert w.killed("any-other-flag")
    assert gate(EP, "t", 0.5) == "killed"
    w.feed(*message(signed(KillSwitch(engaged=False), kind="kill_switch", name="*", version=2)))
    assert not w.killed(FLAG)
    assert gate(EP, "t", 0.5) == "mirror"
    w.feed(*message(signed(KillSwitch(engaged=True), kind="kill_switch", name=FLAG)))
    assert gate(EP, "t", 0.5) == "killed"
    assert not w.killed("another")
    assert MirrorGate(w, "another")(EP, "t", 0.5) == "mirror"
    w.feed(*message(signed(KillSwitch(engaged=True), kind="kill_switch", name=EP)))
    assert MirrorGate(w, "another")(EP, "t", 0.5) == "killed"  # an endpoint's kill switch
    assert MirrorGate(w, "another")("/other", "t", 0.5) == "mirror"


def test_gate_follows_the_route_config_like_the_router() -> None:
    w = watcher()
    gate = MirrorGate(w, FLAG)
    config = route(0.3)
    w.feed(*message(signed(config)))
    salt = HookSettings().salt
    for i in range(400):
        rid = f"req-{i}"
        expected = assign(rid, config, tenant="t", endpoint=EP, sampling_salt=salt).mirror_to is not None
        assert (gate(EP, "t", unit_hash(salt, rid)) == "mirror") is expected
    assert gate("/v1/other", "t", 0.0) == "route_skipped"  # no rule matches: off
    w.feed(*message(signed(route(strategy="off"), version=2)))
    assert gate(EP, "t", 0.0) == "route_skipped"
    w.feed(*message(signed(route(1.0, kill=True), version=3)))
    assert gate(EP, "t", 0.0) == "killed"


def test_under_a_canary_the_gate_mirrors_both_arms() -> None:
    w = watcher()
    gate = MirrorGate(w, FLAG)
    rule = RouteRule(
        scope=RouteScope(endpoints=(EP,)), strategy="canary", candidate="grammar-b", candidate_weight=0.25
    )
    config = RouteConfig(flag=FLAG, epoch=0, salt=FLAG, baseline="grammar-a", rules=(rule,))
    w.feed(*message(signed(config)))
    assert gate(EP, "t", 0.9, "baseline") == "mirror"  # still compared with the baseline live
    assert gate(EP, "t", 0.9, None) == "mirror"
    assert gate(EP, "t", 0.1, "candidate") == "mirror"  # the A/B exposure record (never replayed)


def test_listeners_are_called_on_changes_only_and_cannot_break_the_watcher() -> None:
    w = watcher()
    seen: list[int] = []
    w.add_listener(lambda applied: seen.append(applied.record.version))

    def broken(_applied: Applied) -> None:
        raise RuntimeError("listener bug")

    w.add_listener(broken)
    v1 = signed(route(1.0))
    w.feed(*message(v1))
    w.feed(*unsigned(signed(route(0.5), version=2)))
    w.feed(*message(signed(route(0.5), version=2)))
    assert seen == [1, 2]
    assert w.stats.listener_errors == 2
    assert [r.version for r in w.in_force()] == [2]


async def test_every_outcome_is_audited_and_ids_dedupe_across_observers() -> None:
    sinks = [Sink(), Sink()]
    watchers = [watcher(sinks[0], "hook-1"), watcher(sinks[1], "worker-1")]
    v1 = signed(route(1.0))
    bad = tampered(signed(route(0.0), version=2), baseline="evil")
    for w in watchers:
        w.feed(*message(v1))
        w.feed(*bad)
        assert await w.drain_audit()
        assert w.stats.audit_written == 2
    a, b = sinks[0].events, sinks[1].events
    assert [e.what for e in a] == ["config_change", "config_rejected"]
    assert [e.event_id for e in a] == [e.event_id for e in b]
    assert [e.details["observer"] for e in a] == ["hook-1", "hook-1"]
    rejected = a[1]
    assert rejected.who == "alice"  # the claimed signer
    assert rejected.details["reason"] == "bad_signature"
    assert rejected.before == rejected.after == a[0].after  # the config in force did not move
    assert rejected.after is not None
    assert rejected.after.version == 1


async def test_audit_failures_keep_events_queued_and_counted() -> None:
    sink = Sink(fail=1)
    w = watcher(sink)
    w.feed(*message(signed(KillSwitch(engaged=True), kind="kill_switch", name="*")))
    assert not await w.drain_audit()
    assert w.pending_audit == 1
    assert w.stats.audit_failed == 1
    assert await w.drain_audit()
    assert [e.what for e in sink.events] == ["kill_switch"]
    assert sink.events[0].details["engaged"] is True
    await w.stop()  # never started: a no-op


def test_publisher_gate_counts_what_it_refuses() -> None:
    w = watcher()
    pub = ShadowPublisher(
        HookSettings(), topic="t", producer_factory=FakeProducerFactory(), gate=MirrorGate(w, FLAG)
    )
    body = {"messages": [{"role": "user", "content": "hi"}]}

    def publish(rid: str) -> bool:
        return pub.publish(req_id=rid, endpoint=EP, request=body, response=None, status=200, latency_ms=1.0)

    assert publish("a") is False  # not started: counted as before
    assert pub.stats.dropped_not_running == 1
    w.feed(*message(signed(KillSwitch(engaged=True), kind="kill_switch", name="*")))
    assert publish("b") is False
    w.feed(*message(signed(route(strategy="off"))))
    w.feed(*message(signed(KillSwitch(engaged=False), kind="kill_switch", name="*", version=2)))
    assert publish("c") is False
    assert (pub.stats.seen, pub.stats.killed, pub.stats.route_skipped) == (3, 1, 1)
    assert pub.stats.dropped_invalid == 0


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        self.sent.append((topic, value, key))


async def test_control_publisher_signs_versions_and_audits() -> None:
    s = settings()
    w = watcher()
    sink = Sink()
    producer = FakeProducer()
    pub = ControlPublisher(s, cast(AIOKafkaProducer, producer), w, audit=sink)
    first = await pub.publish("route_config", FLAG, route(1.0), who="bob", why="ROLL-7")
    second = await pub.publish("route_config", FLAG, route(0.5), who="bob", why="ROLL-8")
    assert (first.version, second.version) == (1, 2)  # not yet seen by the watcher: still increasing
    assert verify(first, KEYS) == route(1.0).model_dump(mode="json")
    # each record goes to the append-only log first, then to the compacted topic, under one key
    topics = [s.topics.control_log_topic, s.topics.control_topic]
    assert [(t, k) for t, _, k in producer.sent] == [(t, b"route_config:grammar") for t in topics] * 2
    outcomes = [w.feed(key, value, topic) for topic, value, key in producer.sent]
    assert [type(o).__name__ for o in outcomes] == ["Applied", "NoneType"] * 2  # the copy counts once
    assert (w.stats.applied, w.stats.mirrored, w.stats.rejected) == (2, 2, 0)
    assert pub.next_version("route_config", FLAG) == 3
    assert pub.next_version("kill_switch", "*") == 1
    assert [(e.what, e.who, e.why, e.details["stage"]) for e in sink.events] == [
        ("config_change", "bob", "ROLL-7", "published"),
        ("config_change", "bob", "ROLL-8", "published"),
    ]
    assert sink.events[0].before is None
    assert sink.events[1].before == sink.events[0].after
    assert len({e.event_id for e in sink.events}) == 2


def test_watcher_metrics_are_exposed() -> None:
    w = watcher()
    w.feed(*message(signed(route(1.0))))
    w.feed(*unsigned(signed(route(0.5), version=2)))
    registry = CollectorRegistry()
    registry.register(w.collector(service="unit"))
    text = generate_latest(registry).decode()
    assert 'shadowlane_control_applied_total{observer="unit",service="unit"} 1.0' in text
    assert (
        'shadowlane_control_rejected_by_reason_total{observer="unit",reason="unsigned",service="unit"} 1.0'
        in text
    )
    assert 'shadowlane_control_in_force{observer="unit",service="unit"} 1.0' in text


def test_shadow_on_and_off_merge_rules_per_endpoint() -> None:
    on = route_changes.shadow_on_config(None, flag=FLAG, endpoint=EP, prod="a", shadow="b", ratio=0.25)
    assert on.baseline == "a"
    assert [(r.scope.endpoints, r.strategy, r.shadow_ratio) for r in on.rules] == [((EP,), "shadow", 0.25)]
    other = route_changes.shadow_on_config(on, flag=FLAG, endpoint="/v2", prod="a", shadow="c", ratio=1.0)
    assert [(r.scope.endpoints, r.candidate) for r in other.rules] == [(("/v2",), "c"), ((EP,), "b")]
    off = route_changes.shadow_off_config(other, flag=FLAG, endpoint=EP, prod="a")
    assert [(r.scope.endpoints, r.strategy) for r in off.rules] == [((EP,), "off"), (("/v2",), "shadow")]
    everything = route_changes.shadow_off_config(off, flag=FLAG, endpoint="*", prod="a")
    assert [(r.scope.endpoints, r.strategy) for r in everything.rules] == [(("*",), "off")]
    with pytest.raises(ValidationError, match="baseline itself"):
        route_changes.shadow_on_config(None, flag=FLAG, endpoint=EP, prod="a", shadow="a", ratio=1.0)


@pytest.mark.parametrize(
    "argv",
    [["shadow-on", "prod", "shadow"], ["shadow-off"], ["kill"], ["kill", "--release"], ["control", "show"]],
)
def test_commands_without_a_signing_key_exit_3_naming_the_setting(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    control_cmds.add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    assert args.handler(args, settings(keys={})) == 3
    assert "SHADOWLANE_CONTROL__SIGNING_KEYS" in capsys.readouterr().err


def test_ratio_outside_unit_interval_is_a_usage_error() -> None:
    parser = argparse.ArgumentParser()
    control_cmds.add_parsers(parser.add_subparsers(dest="command", required=True))
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["shadow-on", "a", "b", "--ratio", "1.5"])
    assert exc.value.code == 2


def test_a_watcher_without_signing_keys_refuses_to_start() -> None:
    no_keys = settings().model_copy(update={"control": ControlSettings()})
    with pytest.raises(ConfigError, match="no signing key"):
        ControlWatcher(no_keys, {}, observer="unit")


def test_a_record_without_a_signature_is_refused_as_unsigned_even_when_it_is_incomplete() -> None:
    state = ControlState({"k": SecretStr("k" * 32)})
    bare = orjson.dumps(
        {"schema_version": 1, "kind": "kill_switch", "name": "*", "payload": {"engaged": False}}
    )
    rejected = state.apply_message(b"kill_switch:*", bare)
    assert isinstance(rejected, Rejected)
    assert rejected.reason == "unsigned"
    garbage = state.apply_message(b"kill_switch:*", b"not json")
    assert isinstance(garbage, Rejected)
    assert garbage.reason == "undecodable"


def test_the_newest_genuine_record_of_either_topic_is_in_force_and_history_is_no_rejection() -> None:
    topics = settings().topics
    log, compacted = topics.control_log_topic, topics.control_topic
    v1, v2 = signed(route(1.0)), signed(route(0.2), version=2)
    w = watcher()
    assert isinstance(w.feed(*message(v1), log), Applied)
    assert isinstance(w.feed(*message(v2), log), Applied)
    # the compacted topic's copies (or a writer's replays of them) change nothing, silently
    assert w.feed(*message(v1), compacted) is None
    assert w.feed(*message(v2), compacted) is None
    assert w.feed(*message(v1), compacted) is None
    # a forgery is refused wherever it comes from
    forged = w.feed(*tampered(v2, rules=[{**v2.payload["rules"][0], "shadow_ratio": 1.0}]), compacted)
    assert isinstance(forged, Rejected)
    assert forged.reason == "bad_signature"
    assert w.record("route_config", FLAG) == v2
    assert (w.stats.applied, w.stats.mirrored, w.stats.history) == (2, 3, 0)
    assert w.state.rejections == {"bad_signature": 1}

    # the other order: the compacted topic's newest record first, the log's history after it
    fresh = watcher()
    assert isinstance(fresh.feed(*message(v2), compacted), Applied)
    assert fresh.feed(*message(v1), log) is None  # history: older, genuine, no rejection
    assert fresh.feed(*message(v2), log) is None  # the same record again
    assert fresh.record("route_config", FLAG) == v2
    assert (fresh.stats.applied, fresh.stats.history, fresh.stats.mirrored) == (1, 1, 1)
    assert fresh.state.rejections == {}
    # on the compacted topic an older genuine record it never read there is still a replay
    replay = fresh.feed(*message(signed(route(0.5), version=1)), compacted)
    assert isinstance(replay, Rejected)
    assert replay.reason == "stale"
