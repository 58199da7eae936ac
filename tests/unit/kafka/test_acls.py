"""shadowlane/kafka/acls.py: each component's least-privilege ACLs, as data, resolved for a
deployment's names; ``shadowlane kafka acls`` prints them."""

from __future__ import annotations

import json

import pytest

from shadowlane.cli.main import main
from shadowlane.kafka.acls import COMPONENTS, acl_entries
from shadowlane.settings import CompareSettings, Settings, ShadowSettings, TopicSettings


def _settings() -> Settings:
    return Settings(
        topics=TopicSettings(prefix="p."),
        shadow=ShadowSettings(group_prefix="p.shadow."),
        compare=CompareSettings(group_id="p.compare"),
    )


def _grants(principal: str, settings: Settings | None = None) -> set[tuple[str, str, str, str]]:
    return {
        (e.resource_type, e.resource_name, e.pattern, e.operation)
        for e in acl_entries(settings or _settings())
        if e.principal == principal
    }


def test_each_component_gets_exactly_its_share() -> None:
    assert _grants("User:hook") == {("TOPIC", "p.requests", "LITERAL", "WRITE")}
    assert _grants("User:shadow") == {
        ("TOPIC", "p.requests", "LITERAL", "READ"),
        ("TOPIC", "p.control", "LITERAL", "READ"),
        ("TOPIC", "p.control-log", "LITERAL", "READ"),
        ("TOPIC", "p.shadow-results", "LITERAL", "WRITE"),
        ("TOPIC", "p.dlq", "LITERAL", "WRITE"),
        ("GROUP", "p.shadow.", "PREFIXED", "READ"),
        ("TRANSACTIONAL_ID", "p.shadow.", "PREFIXED", "WRITE"),  # "<group>.<partition>"
    }
    assert _grants("User:compare") == {
        ("TOPIC", "p.requests", "LITERAL", "READ"),
        ("TOPIC", "p.shadow-results", "LITERAL", "READ"),
        ("TOPIC", "p.compare", "LITERAL", "WRITE"),
        ("TOPIC", "p.compare.summary", "LITERAL", "WRITE"),
        ("TOPIC", "p.alerts", "LITERAL", "WRITE"),
        ("TOPIC", "p.dlq", "LITERAL", "WRITE"),
        ("TOPIC", "p.compare.state", "LITERAL", "READ"),
        ("TOPIC", "p.compare.state", "LITERAL", "WRITE"),
        ("GROUP", "p.compare", "LITERAL", "READ"),
        ("TRANSACTIONAL_ID", "p.compare.", "PREFIXED", "WRITE"),
    }
    assert _grants("User:control") == {
        ("TOPIC", "p.control", "LITERAL", "WRITE"),
        ("TOPIC", "p.control-log", "LITERAL", "WRITE"),
        ("TOPIC", "p.audit", "LITERAL", "WRITE"),
        ("TOPIC", "p.control", "LITERAL", "READ"),
        ("TOPIC", "p.control-log", "LITERAL", "READ"),
    }


def test_only_the_control_principal_may_write_control_and_every_topic_is_a_real_one() -> None:
    entries = acl_entries(_settings())
    writers = {
        e.principal
        for e in entries
        if e.resource_name in ("p.control", "p.control-log") and e.operation == "WRITE"
    }
    assert writers == {"User:control"}
    topics = set(_settings().topics.all_topics())
    assert {e.resource_name for e in entries if e.resource_type == "TOPIC"} <= topics
    assert {e.operation for e in entries} == {"READ", "WRITE"}  # no admin right to anyone
    assert set(COMPONENTS) == {"hook", "shadow", "compare", "control"}


def test_principal_names_can_be_the_clusters_own() -> None:
    entries = acl_entries(_settings(), {"hook": "svc-chat-api"})
    assert {e.principal for e in entries} == {
        "User:svc-chat-api",
        "User:shadow",
        "User:compare",
        "User:control",
    }


def test_the_command_prints_the_policy_and_refuses_unknown_components(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHADOWLANE_TOPICS__PREFIX", "p.")
    assert main(["kafka", "acls", "--principal", "hook=svc"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert {"principal": "User:svc", "resource_type": "TOPIC", "resource_name": "p.requests",
            "pattern": "LITERAL", "operation": "WRITE", "permission": "ALLOW"} in printed  # fmt: skip
    assert main(["kafka", "acls", "--principal", "oracle=x"]) == 64  # usage
    assert "unknown component 'oracle'" in capsys.readouterr().err
    assert main(["kafka", "acls", "--principal", "hook"]) == 64
