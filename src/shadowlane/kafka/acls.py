"""Least privilege on a secured cluster: what each component may do, as data, and the command
that grants it.

:data:`COMPONENTS` is the whole policy: per component (one principal each), the topics it reads
or writes and the consumer groups it joins, by their names in :class:`TopicSettings` /
:class:`Settings`. Nothing else is granted: no principal but the administrator may create topics,
change configs or write ACLs, and the hook cannot read at all. ``READ`` and ``WRITE`` on a topic
imply ``DESCRIBE`` on it in Kafka, and ``WRITE`` on any topic implies idempotent produce.

:func:`acl_entries` resolves the policy for a deployment's settings; :func:`apply_acls` creates
the entries with the CreateAcls request (as a principal that may alter ACLs, usually the
administrator); :func:`describe_acls` reads back what a cluster holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from shadowlane.settings import Settings

Operation = Literal["READ", "WRITE"]


@dataclass(frozen=True, slots=True)
class Grant:
    """One permission: ``operation`` on a topic (by its logical name) or on a group."""

    resource: Literal["topic", "group", "transactional_id"]
    name: str
    """Topic: the field of ``TopicSettings`` (``requests``, ``control_log``, ...). Group: ``shadow``
    (every shadow group: the group prefix) or ``compare`` (the comparator's group). Transactional
    id: the same two names, for the ids of their exactly-once producers (``<group>.<partition>``)."""
    operation: Operation


COMPONENTS: dict[str, tuple[Grant, ...]] = {
    "hook": (Grant("topic", "requests", "WRITE"),),
    "shadow": (
        Grant("topic", "requests", "READ"),
        Grant("topic", "control", "READ"),
        Grant("topic", "control_log", "READ"),
        Grant("topic", "shadow_results", "WRITE"),
        Grant("topic", "dlq", "WRITE"),
        Grant("group", "shadow", "READ"),
        Grant("transactional_id", "shadow", "WRITE"),
    ),
    "compare": (
        Grant("topic", "requests", "READ"),
        Grant("topic", "shadow_results", "READ"),
        Grant("topic", "compare", "WRITE"),
        Grant("topic", "summary", "WRITE"),
        Grant("topic", "alerts", "WRITE"),
        Grant("topic", "dlq", "WRITE"),
        Grant("topic", "compare_state", "READ"),  # a partition's new owner restores its windows
        Grant("topic", "compare_state", "WRITE"),
        Grant("group", "compare", "READ"),
        Grant("transactional_id", "compare", "WRITE"),
    ),
    "control": (
        Grant("topic", "control", "WRITE"),
        Grant("topic", "control_log", "WRITE"),
        Grant("topic", "audit", "WRITE"),
        # a publisher reads what is in force to number the next version
        Grant("topic", "control", "READ"),
        Grant("topic", "control_log", "READ"),
    ),
}
"""The policy: component (= principal name) -> its grants."""


@dataclass(frozen=True, slots=True)
class AclEntry:
    """One ACL as the broker holds it."""

    principal: str
    resource_type: Literal["TOPIC", "GROUP", "TRANSACTIONAL_ID"]
    resource_name: str
    pattern: Literal["LITERAL", "PREFIXED"]
    operation: Operation

    def as_dict(self) -> dict[str, str]:
        return {
            "principal": self.principal,
            "resource_type": self.resource_type,
            "resource_name": self.resource_name,
            "pattern": self.pattern,
            "operation": self.operation,
            "permission": "ALLOW",
        }


def acl_entries(settings: Settings, principals: dict[str, str] | None = None) -> list[AclEntry]:
    """Every ACL of :data:`COMPONENTS` for ``settings``' topic and group names. ``principals``
    maps a component to its principal name (default: the component's own name)."""
    topics = settings.topics
    groups = {
        "shadow": (settings.shadow.group_prefix, "PREFIXED"),
        "compare": (settings.compare.group_id, "LITERAL"),
    }
    out: list[AclEntry] = []
    for component, grants in COMPONENTS.items():
        principal = "User:" + (principals or {}).get(component, component)
        for grant in grants:
            if grant.resource == "topic":
                name = topics.name(getattr(topics, grant.name))
                out.append(AclEntry(principal, "TOPIC", name, "LITERAL", grant.operation))
            elif grant.resource == "group":
                group, pattern = groups[grant.name]
                out.append(AclEntry(principal, "GROUP", group, pattern, grant.operation))  # type: ignore[arg-type]
            else:  # transactional ids are "<group>.<partition>": the group's name as a prefix
                group, _pattern = groups[grant.name]
                prefix = group if group.endswith(".") else f"{group}."
                out.append(AclEntry(principal, "TRANSACTIONAL_ID", prefix, "PREFIXED", grant.operation))
    return out


# the wire codes of the CreateAcls / DescribeAcls requests
_RESOURCE = {"TOPIC": 2, "GROUP": 3, "TRANSACTIONAL_ID": 5}
_PATTERN = {"LITERAL": 3, "PREFIXED": 4}
_OPERATION = {"READ": 3, "WRITE": 4}
_ANY, _ALLOW = 1, 3


async def apply_acls(client_kwargs: dict[str, Any], entries: list[AclEntry]) -> None:
    """Create ``entries`` on the cluster (idempotent: an existing ACL is left as it is); raises the
    broker's error (e.g. ``ClusterAuthorizationFailedError`` for a principal that may not).
    aiokafka has no ACL API of its own: this sends its CreateAcls request through the admin
    client's request path."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import for_code
    from aiokafka.protocol.admin import CreateAclsRequest

    admin = AIOKafkaAdminClient(**client_kwargs)
    await admin.start()
    try:
        for entry in entries:
            request = CreateAclsRequest(
                _RESOURCE[entry.resource_type], entry.resource_name, _PATTERN[entry.pattern],
                entry.principal, "*", _OPERATION[entry.operation], _ALLOW,
            )  # fmt: skip
            response = await admin._send_request(request)
            for code, message in response.creation_responses:
                if code:
                    raise for_code(code)(f"{entry.as_dict()}: {message}")
    finally:
        await admin.close()


async def describe_acls(client_kwargs: dict[str, Any]) -> list[dict[str, str]]:
    """Every ALLOW/DENY ACL on topics, groups and transactional ids the cluster holds, sorted."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import for_code
    from aiokafka.protocol.admin import DescribeAclsRequest

    operations = {v: k for k, v in _OPERATION.items()}
    patterns = {v: k for k, v in _PATTERN.items()}
    admin = AIOKafkaAdminClient(**client_kwargs)
    await admin.start()
    try:
        found: list[dict[str, str]] = []
        for resource_type, code in _RESOURCE.items():
            request = DescribeAclsRequest(code, None, _ANY, None, None, _ANY, _ANY)
            response = await admin._send_request(request)
            if response.error_code:
                raise for_code(response.error_code)(response.error_message)
            for _rtype, name, pattern, acls in response.resources:
                for principal, _host, operation, permission in acls:
                    found.append({
                        "principal": principal, "resource_type": resource_type, "resource_name": name,
                        "pattern": patterns.get(pattern, str(pattern)),
                        "operation": operations.get(operation, str(operation)),
                        "permission": "ALLOW" if permission == _ALLOW else "DENY",
                    })  # fmt: skip
        return sorted(found, key=lambda acl: tuple(acl.values()))
    finally:
        await admin.close()
