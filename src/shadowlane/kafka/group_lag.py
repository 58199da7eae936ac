"""Consumer-group lag read from the broker, from outside the consumers (``shadowlane lag``).

Each worker exposes its own lag (``shadowlane_consumer_lag``), which disappears with it. This reads
the same lag from the broker, so it is there when the workers are down: per partition of a group's
topics, the committed offset (OffsetFetch), the log start, the highwater mark and the last stable
offset (ListOffsets, read_uncommitted and read_committed) and the member that owns it
(DescribeGroups). The lag is :func:`shadowlane.kafka.lag.lag_behind` of the committed offset, the
rule the workers count with; a partition the group never committed counts from its log start,
where the workers begin (``auto_offset_reset=earliest``), and so does one whose committed offset
retention has since deleted (below the log start: a consumer resumes at the log start).

A group's DescribeGroups error is raised as aiokafka's error for it: a coordinator still loading
or moved (retriable), a principal not allowed to describe the group. Only members of a
``consumer`` protocol group have their assignment decoded; others (Kafka Connect, say) are
counted, owning nothing here.

A group's topics are those it committed offsets for, those its members are assigned, and the
ones its role reads (a shadow group: requests; the comparator: requests and shadow-results), so a
group that never committed still shows its whole backlog. The Shadowlane groups are found by
name: ``shadow.group_prefix`` + candidate, and ``compare.group_id``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import for_code
from aiokafka.protocol.admin import (
    DescribeGroupsRequest_v0,
    DescribeGroupsRequest_v1,
    DescribeGroupsRequest_v2,
    DescribeGroupsRequest_v3,
    DescribeGroupsResponse_v3,
)
from aiokafka.protocol.api import Request

from shadowlane.kafka.lag import lag_behind
from shadowlane.settings import Settings

NO_GROUP_STATES = frozenset({"Dead", ""})
"""What DescribeGroups says of a group that does not exist (no members, no offsets)."""

CONSUMER_PROTOCOL = "consumer"
"""The protocol type of a group whose members' assignments are topic partitions."""


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """One partition as a group sees it."""

    topic: str
    partition: int
    committed: int | None
    """The group's committed offset (the next one it reads); None: it never committed one."""
    log_start: int
    log_end: int
    """The highwater mark."""
    last_stable: int
    """Where a read_committed reader stops (below ``log_end`` while a transaction is open)."""
    lag: int
    owner: str | None
    """``client_id@host`` of the member that owns it; None: unassigned."""


@dataclass(frozen=True, slots=True)
class GroupLag:
    group: str
    state: str
    """The coordinator's word for it: Stable, Empty (no member), PreparingRebalance, ..."""
    members: int
    partitions: tuple[PartitionLag, ...] = field(default=())

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def exists(self) -> bool:
        return self.state not in NO_GROUP_STATES or bool(self.members) or bool(self.partitions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "state": self.state,
            "members": self.members,
            "lag": self.lag,
            "partitions": [asdict(p) for p in self.partitions],
        }


@dataclass(frozen=True, slots=True)
class _Described:
    state: str
    members: int
    owners: dict[TopicPartition, str]


class _DescribeGroupsV3(DescribeGroupsRequest_v3):  # type: ignore[misc]
    # aiokafka 0.14 reads a v3 answer with the v2 schema (it lacks authorized_operations), fails to
    # decode it and drops the connection: this is the same request with the right answer schema
    RESPONSE_TYPE = DescribeGroupsResponse_v3


class _DescribeGroups(
    Request[  # type: ignore[misc]
        DescribeGroupsRequest_v0 | DescribeGroupsRequest_v1 | DescribeGroupsRequest_v2 | _DescribeGroupsV3
    ]
):
    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self._groups = groups

    def build(self, request_struct_class: Any) -> Any:
        if request_struct_class.API_VERSION < 3:
            return request_struct_class(self._groups)
        return request_struct_class(self._groups, False)


def shadowlane_group(settings: Settings, group: str) -> bool:
    """Whether ``group`` is one of Shadowlane's worker groups (a shadow group or the comparator)."""
    return group.startswith(settings.shadow.group_prefix) or group == settings.compare.group_id


def role_topics(settings: Settings, group: str) -> list[str]:
    """The topics a Shadowlane group reads, by its name (none for any other group)."""
    t = settings.topics
    if group == settings.compare.group_id:
        return [t.requests_topic, t.shadow_results_topic]
    if group.startswith(settings.shadow.group_prefix):
        return [t.requests_topic]
    return []


class GroupLagReader:
    """Reads groups' lag with one admin client and two group-less consumers (one per isolation
    level); use it as an async context manager and call :meth:`read` as often as needed."""

    def __init__(self, settings: Settings, client_kwargs: dict[str, Any]) -> None:
        self._settings = settings
        self._admin = AIOKafkaAdminClient(**client_kwargs)
        self._uncommitted = AIOKafkaConsumer(**client_kwargs, group_id=None, enable_auto_commit=False)
        self._committed = AIOKafkaConsumer(
            **client_kwargs, group_id=None, enable_auto_commit=False, isolation_level="read_committed"
        )
        self._started: list[Any] = []

    async def start(self) -> GroupLagReader:
        """Connect (every client, or none: a failure closes those already started)."""
        try:
            for client in (self._admin, self._uncommitted, self._committed):
                await client.start()
                self._started.append(client)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aenter__(self) -> GroupLagReader:
        return await self.start()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        while self._started:
            client = self._started.pop()
            await (client.close() if client is self._admin else client.stop())

    async def shadowlane_groups(self) -> list[str]:
        """The Shadowlane worker groups the cluster knows, sorted."""
        listed = await self._admin.list_consumer_groups()
        return sorted({str(entry[0]) for entry in listed if shadowlane_group(self._settings, str(entry[0]))})

    async def read(self, groups: Sequence[str]) -> list[GroupLag]:
        """The lag of each of ``groups``, in that order (a group that does not exist has state
        ``Dead`` and no partitions)."""
        existing = set(await self._admin.list_topics())
        plans: list[tuple[str, _Described, dict[TopicPartition, int], list[str]]] = []
        for group in groups:
            described = await self._describe(group)
            offsets = await self._admin.list_consumer_group_offsets(group)
            committed = {tp: int(meta.offset) for tp, meta in offsets.items() if int(meta.offset) >= 0}
            mine = {tp.topic for tp in committed} | {tp.topic for tp in described.owners}
            if described.state not in NO_GROUP_STATES or committed:
                mine |= set(role_topics(self._settings, group))
            plans.append((group, described, committed, sorted(mine & existing)))
        partitions = await self._partitions(sorted({topic for plan in plans for topic in plan[3]}))
        ends = await self._ends([tp for tps in partitions.values() for tp in tps])
        out: list[GroupLag] = []
        for group, described, committed, topics in plans:
            rows = [
                partition_lag(tp, committed.get(tp), ends[tp], described.owners.get(tp))
                for topic in topics
                for tp in partitions.get(topic, [])
                if tp in ends
            ]
            out.append(GroupLag(group, described.state, described.members, tuple(rows)))
        return out

    async def _describe(self, group: str) -> _Described:
        coordinator = await self._admin.find_coordinator(group)
        # the admin client's own describe_consumer_groups cannot decode the answer (see above)
        response = await self._admin._send_request(_DescribeGroups([group]), coordinator)
        return described_group(group, response.groups)

    async def _partitions(self, topics: list[str]) -> dict[str, list[TopicPartition]]:
        if not topics:
            return {}
        described = await self._admin.describe_topics(topics)
        return {
            d["topic"]: sorted(TopicPartition(d["topic"], p["partition"]) for p in d["partitions"])
            for d in described
        }

    async def _ends(self, tps: list[TopicPartition]) -> dict[TopicPartition, tuple[int, int, int]]:
        """(log start, highwater, last stable offset) of each partition."""
        if not tps:
            return {}
        starts, highs, stables = await asyncio.gather(
            self._uncommitted.beginning_offsets(tps),
            self._uncommitted.end_offsets(tps),
            self._committed.end_offsets(tps),
        )
        return {tp: (int(starts[tp]), int(highs[tp]), int(stables[tp])) for tp in tps if tp in highs}


def described_group(group: str, entries: Sequence[Any]) -> _Described:
    """A DescribeGroups answer's entry for ``group`` (error code, group id, state, protocol type,
    protocol, members); its error, if any, is raised. No entry: a group that does not exist."""
    for entry in entries:
        error_code, _group_id, state, protocol_type, _protocol, members = entry[:6]
        if error_code:
            raise for_code(error_code)(f"DescribeGroups of {group}")
        owners: dict[TopicPartition, str] = {}
        for member in members:
            _member_id, client_id, client_host, _metadata, assignment = member[:5]
            if protocol_type != CONSUMER_PROTOCOL or not assignment:
                continue  # not topic partitions; or mid-rebalance, no assignment yet
            owner = f"{client_id}@{str(client_host).lstrip('/')}"
            for tp in ConsumerProtocolMemberAssignment.decode(assignment).partitions():
                owners[TopicPartition(tp.topic, tp.partition)] = owner
        return _Described(str(state), len(members), owners)
    return _Described("Dead", 0, {})


def partition_lag(
    tp: TopicPartition, committed: int | None, ends: tuple[int, int, int], owner: str | None
) -> PartitionLag:
    """``tp`` as a group sees it: ``ends`` is (log start, highwater, last stable offset). The group
    goes on from its committed offset, or from the log start when it has none or retention deleted
    the records it points at."""
    start, high, stable = ends
    following = start if committed is None else max(committed, start)
    lag = lag_behind(following, stable=stable, high=high) or 0
    return PartitionLag(tp.topic, tp.partition, committed, start, high, stable, lag, owner)
