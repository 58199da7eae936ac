"""Signed control records: tampered, unsigned, wrongly keyed or replayed configs are refused and the
config in force stays; keys rotate by id; kill switches apply; every outcome is auditable."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr, ValidationError

from shadowlane.contracts.codec import encode
from shadowlane.contracts.control import ControlRecord, KillSwitch
from shadowlane.contracts.flag_manifest import FlagManifest
from shadowlane.contracts.route_config import RouteConfig
from shadowlane.kafka import admin
from shadowlane.rollout.manifest import load_manifest
from shadowlane.rollout.signing import (
    Applied,
    ControlState,
    PayloadError,
    Rejected,
    SignatureError,
    SigningKeyError,
    active_signing_key,
    audit_event,
    payload_digest,
    sign,
    signing_input,
    verify,
)
from shadowlane.settings import ControlSettings, Settings, TopicSettings, settings_env

ROOT = Path(__file__).resolve().parents[3]
K1 = SecretStr("k1-0123456789abcdef0123456789abcdef")
K2 = SecretStr("k2-fedcba9876543210fedcba9876543210")
KEYS = {"k1": K1}
EXAMPLE_KEYS = {"example-2025": SecretStr("shadowlane-example-key-not-a-secret-0123456789")}


def manifest(canary: float = 0.05) -> FlagManifest:
    spec = load_manifest(ROOT / "deploy" / "flags" / "feature_flags.yml").flags["grammar_b"]
    traffic = spec.traffic.model_copy(update={"baseline_weight": 1.0 - canary, "canary_weight": canary})
    return FlagManifest(flags={"grammar_b": spec.model_copy(update={"traffic": traffic})})


def signed(
    payload: Any = None,
    *,
    version: int = 1,
    kind: Any = "flag_manifest",
    name: str = "grammar_b",
    key_id: str = "k1",
    key: SecretStr = K1,
) -> ControlRecord:
    return sign(
        manifest() if payload is None else payload,
        kind=kind,
        name=name,
        version=version,
        key_id=key_id,
        key=key,
        signed_by="alice@example.com",
        reason="ROLL-42",
        signed_at_ms=1_795_000_000_000,
    )


def tamper(record: ControlRecord, **changes: Any) -> ControlRecord:
    """The record with fields changed in transit: re-decoded from JSON, signature untouched."""
    return ControlRecord.model_validate({**orjson.loads(encode(record)), **changes})


def canary_of(state: ControlState) -> float:
    spec = state.flag_spec("grammar_b")
    assert spec is not None
    return spec.traffic.canary_weight


def test_sign_verify_round_trip_through_the_wire() -> None:
    record = signed()
    assert record.key == "flag_manifest:grammar_b"
    assert len(record.signature) == 64
    decoded = ControlRecord.model_validate_json(encode(record))
    assert verify(decoded, KEYS) == manifest().model_dump(mode="json")
    assert FlagManifest.model_validate(verify(decoded, KEYS)) == manifest()


@pytest.mark.parametrize(
    "changes",
    [
        {"payload": manifest(canary=1.0).model_dump(mode="json")},
        {"name": "grammar_c"},
        {"kind": "route_config"},
        {"version": 7},
        {"signed_by": "mallory"},
        {"reason": "trust me"},
        {"signed_at_ms": 1},
        {"signature": "0" * 64},
    ],
    ids=lambda c: next(iter(c)),
)
def test_any_tampered_field_breaks_the_signature(changes: dict[str, Any]) -> None:
    with pytest.raises(SignatureError) as exc:
        verify(tamper(signed(), **changes), KEYS)
    assert exc.value.reason == "bad_signature"


def test_unsigned_unknown_key_and_wrong_key_are_refused() -> None:
    record = signed()
    for unsigned in (tamper(record, signature=""), tamper(record, key_id="")):
        with pytest.raises(SignatureError) as exc:
            verify(unsigned, KEYS)
        assert exc.value.reason == "unsigned"
    with pytest.raises(SignatureError) as exc:
        verify(tamper(record, key_id="k9"), KEYS)
    assert exc.value.reason == "unknown_key"
    with pytest.raises(SignatureError) as exc:
        verify(record, {"k1": K2})  # same id, another key
    assert exc.value.reason == "bad_signature"
    with pytest.raises(SignatureError) as exc:
        verify(tamper(record, key_id="k2"), {"k1": K1, "k2": K2})  # swapped key id
    assert exc.value.reason == "bad_signature"


def test_tampered_manifests_are_rejected_and_the_old_config_stays() -> None:
    state = ControlState(KEYS)
    v1 = signed(manifest(0.05), version=1)
    assert isinstance(state.apply(v1), Applied)
    attacks = {
        "bad_signature": tamper(
            signed(manifest(0.25), version=2), payload=manifest(1.0).model_dump(mode="json")
        ),
        "unsigned": tamper(signed(manifest(1.0), version=2), signature="", key_id=""),
        "unknown_key": signed(manifest(1.0), version=2, key_id="rogue", key=K2),
    }
    for reason, record in attacks.items():
        outcome = state.apply(record)
        assert isinstance(outcome, Rejected)
        assert (outcome.reason, outcome.in_force) == (reason, v1)
        assert state.record("flag_manifest", "grammar_b") == v1
        assert canary_of(state) == 0.05
    assert state.rejections == {"bad_signature": 1, "unsigned": 1, "unknown_key": 1}
    assert state.applied == 1
    # the genuine next version still applies afterwards
    outcome = state.apply(signed(manifest(0.25), version=2))
    assert isinstance(outcome, Applied)
    assert outcome.previous == v1
    assert canary_of(state) == 0.25


def test_replays_of_older_or_equal_versions_are_refused() -> None:
    state = ControlState(KEYS)
    v1, v2 = signed(manifest(0.05), version=1), signed(manifest(0.25), version=2)
    assert isinstance(state.apply(v1), Applied)
    assert isinstance(state.apply(v2), Applied)
    stale = state.apply(v1)
    assert isinstance(stale, Rejected)
    assert stale.reason == "stale"
    assert "not newer than v2" in stale.detail
    same_version_other_content = state.apply(signed(manifest(0.5), version=2))
    assert isinstance(same_version_other_content, Rejected)
    assert same_version_other_content.reason == "stale"
    duplicate = state.apply(v2)
    assert isinstance(duplicate, Rejected)
    assert duplicate.reason == "duplicate"
    assert state.record("flag_manifest", "grammar_b") == v2
    assert canary_of(state) == 0.25
    assert state.rejections == {"stale": 2, "duplicate": 1}


def test_a_signed_but_invalid_payload_is_refused_and_cannot_be_signed() -> None:
    good = signed(version=1)
    bad_payload = manifest().model_dump(mode="json")
    bad_payload["flags"]["grammar_b"]["traffic"]["canary_weight"] = 0.5
    with pytest.raises(PayloadError, match=r"flags\.grammar_b\.traffic: baseline_weight \+ canary_weight"):
        signed(bad_payload, version=2)
    with pytest.raises(PayloadError, match="must hold exactly the flag 'other'"):
        signed(name="other")
    # a producer that skips sign()'s check (the HMAC spelled out by hand) still cannot get it applied
    record = ControlRecord(**{**good.model_dump(), "payload": bad_payload, "version": 2, "signature": ""})
    mac = hmac.new(K1.get_secret_value().encode(), signing_input(record), hashlib.sha256).hexdigest()
    state = ControlState(KEYS)
    state.apply(good)
    outcome = state.apply(record.model_copy(update={"signature": mac}))
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "invalid_payload"
    assert state.record("flag_manifest", "grammar_b") == good


def test_key_rotation_by_key_id() -> None:
    old, new = signed(version=1), signed(manifest(0.25), version=2, key_id="k2", key=K2)
    rotating = ControlState({"k1": K1, "k2": K2})
    assert isinstance(rotating.apply(old), Applied)
    assert isinstance(rotating.apply(new), Applied)
    retired = ControlState({"k2": K2})  # k1 retired everywhere: its records no longer apply
    outcome = retired.apply(old)
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "unknown_key"
    assert isinstance(retired.apply(new), Applied)


def test_kill_switch_records_apply_per_flag_and_globally() -> None:
    state = ControlState(KEYS)
    assert not state.killed("grammar_b")
    on = signed(KillSwitch(engaged=True), kind="kill_switch", version=1)
    assert on.key == "kill_switch:grammar_b"
    assert isinstance(state.apply(on), Applied)
    assert state.killed("grammar_b")
    assert not state.killed("other")
    off = signed({"engaged": False}, kind="kill_switch", version=2)
    assert isinstance(state.apply(off), Applied)
    assert not state.killed("grammar_b")
    everything = signed(KillSwitch(engaged=True), kind="kill_switch", name="*", version=1)
    assert isinstance(state.apply(everything), Applied)
    assert state.killed("grammar_b")
    assert state.killed("other")
    # an unsigned attempt to lift the global switch changes nothing
    lift = tamper(signed({"engaged": False}, kind="kill_switch", name="*", version=2), signature="")
    assert isinstance(state.apply(lift), Rejected)
    assert state.killed("other")


def test_route_configs_apply_and_their_kill_flag_counts() -> None:
    route = RouteConfig.model_validate_json(
        (ROOT / "schemas" / "examples" / "route_config.v1.json").read_bytes()
    )
    state = ControlState(KEYS)
    assert isinstance(state.apply(signed(route, kind="route_config", name=route.flag)), Applied)
    assert state.route_config(route.flag) == route
    assert not state.killed(route.flag)
    killed = route.model_copy(update={"kill": True})
    assert isinstance(state.apply(signed(killed, kind="route_config", name=route.flag, version=2)), Applied)
    assert state.killed(route.flag)
    with pytest.raises(PayloadError, match="is not the record name"):
        signed(route, kind="route_config", name="another_flag")


def test_messages_from_the_topic_are_decoded_and_keys_checked() -> None:
    state = ControlState(KEYS)
    record = signed()
    applied = state.apply_message(record.key.encode(), encode(record))
    assert isinstance(applied, Applied)
    for key, value, reason in [
        (b"flag_manifest:grammar_b", None, "tombstone"),
        (b"flag_manifest:grammar_b", b"not json", "undecodable"),
        (b"flag_manifest:other", encode(signed(version=2)), "key_mismatch"),
    ]:
        outcome = state.apply_message(key, value)
        assert isinstance(outcome, Rejected)
        assert outcome.reason == reason
    assert state.record("flag_manifest", "grammar_b") == record


def test_audit_events_say_who_what_why_before_and_after() -> None:
    state = ControlState(KEYS)
    v1, v2 = signed(manifest(0.05), version=1), signed(manifest(0.25), version=2)
    state.apply(v1)
    change = audit_event(state.apply(v2), observer="hook-1", ts_ms=5)
    assert (change.who, change.what, change.why, change.name) == (
        "alice@example.com",
        "config_change",
        "ROLL-42",
        "grammar_b",
    )
    assert change.before is not None
    assert change.after is not None
    assert (change.before.version, change.after.version) == (1, 2)
    assert change.after.digest == payload_digest(v2.payload) != change.before.digest
    rejected = audit_event(state.apply(tamper(v2, version=3)), observer="hook-1", ts_ms=6)
    assert rejected.what == "config_rejected"
    assert rejected.why.startswith("bad_signature: ")
    assert rejected.before == rejected.after == change.after
    assert rejected.details["claimed_version"] == 3
    # the same outcome seen by another process dedupes to the same event id
    other = ControlState(KEYS)
    other.apply(v1)
    assert audit_event(other.apply(v2), observer="worker-7", ts_ms=9).event_id == change.event_id
    kill = audit_event(
        state.apply(signed(KillSwitch(engaged=True), kind="kill_switch")), observer="h", ts_ms=1
    )
    assert (kill.what, kill.details["engaged"]) == ("kill_switch", True)
    undecodable = audit_event(state.apply_message(None, b"{"), observer="h", ts_ms=1)
    assert (undecodable.what, undecodable.name, undecodable.who) == ("config_rejected", "?", "unknown")


def test_the_checked_in_example_is_a_test_vector() -> None:
    raw = (ROOT / "schemas" / "examples" / "control_record.v1.json").read_bytes()
    record = ControlRecord.model_validate_json(raw)
    payload = verify(record, EXAMPLE_KEYS)
    assert FlagManifest.model_validate(payload).flags["grammar_b"].candidate == "grammar-b"
    with pytest.raises(SignatureError):
        verify(record, {"example-2025": K1})


def test_signing_refuses_weak_or_missing_keys() -> None:
    with pytest.raises(SigningKeyError, match="shorter than 32"):
        signed(key=SecretStr("short"))
    with pytest.raises(SigningKeyError, match="no signing key configured"):
        active_signing_key(ControlSettings())
    with pytest.raises(SigningKeyError, match="no active_key_id"):
        active_signing_key(ControlSettings(signing_keys={"k1": K1, "k2": K2}))
    assert active_signing_key(ControlSettings(signing_keys={"k1": K1})) == ("k1", K1)
    assert active_signing_key(ControlSettings(signing_keys=KEYS | {"k2": K2}, active_key_id="k2")) == (
        "k2",
        K2,
    )


def test_control_settings_validate_keys_and_keep_them_out_of_child_envs() -> None:
    with pytest.raises(ValidationError, match="shorter than 32"):
        ControlSettings(signing_keys={"k": SecretStr("x")})
    with pytest.raises(ValidationError, match="not among signing_keys"):
        ControlSettings(signing_keys=KEYS, active_key_id="k2")
    with pytest.raises(ValidationError):
        ControlSettings(poll_interval_s=1.0)  # a kill switch must land within 2 s
    settings = Settings(control=ControlSettings(signing_keys=KEYS, active_key_id="k1"))
    env = settings_env(settings)
    assert "SHADOWLANE_CONTROL__SIGNING_KEYS" not in env
    assert env["SHADOWLANE_CONTROL__ACTIVE_KEY_ID"] == "k1"
    assert K1.get_secret_value() not in repr(settings)
    topics = TopicSettings()
    assert topics.control_topic == "shadowlane.control"
    assert topics.audit_topic == "shadowlane.audit"
    assert {topics.control_topic, topics.audit_topic} <= set(topics.all_topics())


def test_control_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SHADOWLANE_CONTROL__SIGNING_KEYS", orjson.dumps({"k1": K1.get_secret_value()}).decode()
    )
    monkeypatch.setenv("SHADOWLANE_CONTROL__POLL_INTERVAL_S", "0.1")
    control = Settings().control
    assert control.signing_keys["k1"].get_secret_value() == K1.get_secret_value()
    assert control.poll_interval_s == 0.1


async def test_ensure_topics_creates_the_control_topic_compacted(monkeypatch: pytest.MonkeyPatch) -> None:
    """...and every topic with min(3, brokers) replicas and min(2, replicas) in sync, or as set."""
    created: list[Any] = []
    cluster = {"brokers": 1}

    class FakeAdmin:
        def __init__(self, **kwargs: Any) -> None:
            pass

        async def start(self) -> None:
            pass

        async def close(self) -> None:
            pass

        async def list_topics(self) -> list[str]:
            return []

        async def create_topics(self, topics: list[Any]) -> None:
            created.extend(topics)

        async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
            return [{"topic": n, "partitions": [{}] * 6} for n in names]

        async def describe_cluster(self) -> dict[str, Any]:
            return {"brokers": [{"node_id": i} for i in range(cluster["brokers"])]}

    monkeypatch.setattr(admin, "AIOKafkaAdminClient", FakeAdmin)
    topics = TopicSettings()
    for brokers, replicas, in_sync in ((1, 1, "1"), (2, 2, "2"), (5, 3, "2")):
        cluster["brokers"] = brokers
        created.clear()
        await admin.ensure_topics(topics, {})
        configs = {t.name: t.topic_configs for t in created}
        assert configs[topics.control_topic] == {"cleanup.policy": "compact", "min.insync.replicas": in_sync}
        assert (
            configs[topics.audit_topic]
            == configs[topics.requests_topic]
            == {"retention.ms": str(topics.retention_ms), "min.insync.replicas": in_sync}
        )
        assert {t.replication_factor for t in created} == {replicas}  # min(3, brokers)
    created.clear()
    await admin.ensure_topics(TopicSettings(replication_factor=2, min_insync_replicas=1), {})
    assert {(t.replication_factor, t.topic_configs["min.insync.replicas"]) for t in created} == {(2, "1")}
