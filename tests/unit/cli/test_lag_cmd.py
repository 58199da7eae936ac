"""shadowlane/cli/lag_cmd.py and shadowlane/kafka/group_lag.py without a broker: the lag rule it
shares with the workers, which groups are Shadowlane's, the table and JSON, the command line,
reading DescribeGroups answers (errors, non-consumer groups), and the exporter's refreshes (any
failure counted, stale series dropped)."""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from io import BytesIO
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    GroupLoadInProgressError,
    NotCoordinatorForGroupError,
)
from aiokafka.protocol.admin import DescribeGroupsResponse_v0

from shadowlane.cli.failures import explain
from shadowlane.cli.lag_cmd import COLUMNS, STALE_INTERVALS, Refresher, _Snapshot, render_json, render_table
from shadowlane.cli.main import build_parser, main
from shadowlane.health import Health, transient
from shadowlane.kafka.group_lag import (
    GroupLag,
    PartitionLag,
    described_group,
    partition_lag,
    role_topics,
    shadowlane_group,
)
from shadowlane.kafka.lag import lag_behind
from shadowlane.settings import CompareSettings, Settings, ShadowSettings, TopicSettings


def settings() -> Settings:
    return Settings(
        topics=TopicSettings(prefix="p."),
        shadow=ShadowSettings(group_prefix="p.shadow."),
        compare=CompareSettings(group_id="p.compare"),
    )


def test_lag_counts_to_the_last_stable_offset_when_there_is_one() -> None:
    assert lag_behind(10, stable=12, high=15) == 2  # an open transaction: read_committed stops at 12
    assert lag_behind(10, stable=-1, high=15) == 5  # no stable offset reported: the highwater
    assert lag_behind(10, stable=None, high=15) == 5
    assert lag_behind(20, stable=15, high=15) == 0  # never negative
    assert lag_behind(10, stable=None, high=None) is None


def test_shadowlane_groups_are_known_by_name_and_read_their_role_topics() -> None:
    s = settings()
    assert shadowlane_group(s, "p.shadow.candidate-b")
    assert shadowlane_group(s, "p.compare")
    assert not shadowlane_group(s, "p.compare-old")
    assert not shadowlane_group(s, "billing")
    assert role_topics(s, "p.shadow.candidate-b") == [s.topics.requests_topic]
    assert role_topics(s, "p.compare") == [s.topics.requests_topic, s.topics.shadow_results_topic]
    assert role_topics(s, "billing") == []


LAGS = [
    GroupLag(
        "p.shadow.b",
        "Stable",
        2,
        (
            PartitionLag("p.requests", 0, 10, 0, 12, 12, 2, "worker-1@10.0.0.3"),
            PartitionLag("p.requests", 1, None, 4, 9, 9, 5, None),
        ),
    ),
    GroupLag("p.compare", "Empty", 0, ()),
]


def test_the_table_has_a_line_per_group_and_per_partition() -> None:
    lines = render_table(LAGS).splitlines()
    assert lines[0] == "p.shadow.b  state=Stable  members=2  lag=7"
    assert lines[1].split() == list(COLUMNS)
    assert lines[2].split() == ["p.requests", "0", "10", "0", "12", "12", "2", "worker-1@10.0.0.3"]
    assert lines[3].split() == ["p.requests", "1", "-", "4", "9", "9", "5", "-"]
    assert lines[5] == "p.compare  state=Empty  members=0  lag=0"
    assert "no partitions" in lines[6]
    assert render_table([]) == "no Shadowlane consumer groups on this cluster\n"


def test_the_json_has_every_field() -> None:
    doc = orjson.loads(render_json(LAGS))
    first = doc["groups"][0]
    assert (first["group"], first["state"], first["members"], first["lag"]) == ("p.shadow.b", "Stable", 2, 7)
    assert first["partitions"][1] == {
        "topic": "p.requests",
        "partition": 1,
        "committed": None,
        "log_start": 4,
        "log_end": 9,
        "last_stable": 9,
        "lag": 5,
        "owner": None,
    }


def test_the_command_is_registered_with_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["lag", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "shadowlane lag --serve" in out
    assert "Exit codes:" in out
    args = build_parser().parse_args(["lag", "--group", "a", "--group", "b", "--serve", "0"])
    assert (args.group, args.serve, args.host, args.interval) == (["a", "b"], 0, "127.0.0.1", 15.0)


def test_a_non_positive_interval_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    with pytest.raises(SystemExit) as exit_:
        main(["lag", "--serve", "0", "--interval", "0"])
    assert exit_.value.code == 64
    assert capsys.readouterr().err.strip() == "shadowlane lag: --interval must be > 0"


# ---------------------------------------------------------------- DescribeGroups, lag rule, exporter


def describe_answer(*groups: tuple[Any, ...]) -> list[Any]:
    """``groups`` as a DescribeGroups v0 answer, encoded and decoded like the broker's."""
    answer = DescribeGroupsResponse_v0(groups=list(groups))
    return list(DescribeGroupsResponse_v0.decode(BytesIO(answer.encode())).groups)


@pytest.mark.parametrize(
    ("code", "error", "retriable"),
    [(14, GroupLoadInProgressError, True), (16, NotCoordinatorForGroupError, True),
     (30, GroupAuthorizationFailedError, False)],
)  # fmt: skip
def test_a_group_error_in_describe_groups_is_raised_not_read_as_no_group(
    code: int, error: type[Exception], retriable: bool
) -> None:
    with pytest.raises(error) as raised:
        described_group("g", describe_answer((code, "g", "", "", "", [])))
    assert transient(raised.value) is retriable  # the one-shot lag and the exporter retry these
    if not retriable:  # an operator's problem: one line, no traceback
        line = explain(raised.value)
        assert line is not None
        assert line.startswith("the broker does not allow this principal to do that")
        assert "DescribeGroups of g" in line


def connect_assignment() -> bytes:
    """A Kafka Connect worker's assignment (version, error, leader, leader url, config offset,
    connectors, tasks): not a consumer's."""
    leader, url = b"connect-1", b"http://connect-1:8083/"
    return (
        struct.pack(">hh", 0, 0) + struct.pack(">h", len(leader)) + leader
        + struct.pack(">h", len(url)) + url + struct.pack(">q", 7) + struct.pack(">ii", 0, 0)
    )  # fmt: skip


def test_only_consumer_groups_have_their_assignments_decoded() -> None:
    consumer = ConsumerProtocolMemberAssignment(0, [("p.requests", [0, 1])], b"").encode()
    found = described_group(
        "p.shadow.b",
        describe_answer(
            (0, "p.shadow.b", "Stable", "consumer", "range", [("m1", "w1", "/10.0.0.3", b"", consumer)])
        ),
    )
    assert (found.state, found.members) == ("Stable", 1)
    assert found.owners == {
        TopicPartition("p.requests", 0): "w1@10.0.0.3",
        TopicPartition("p.requests", 1): "w1@10.0.0.3",
    }
    members = [("m1", "c1", "/10.0.0.4", b"", connect_assignment()), ("m2", "c2", "/10.0.0.5", b"", b"")]
    connect = described_group(
        "connect", describe_answer((0, "connect", "Stable", "connect", "sessioned", members))
    )
    assert (connect.state, connect.members, connect.owners) == ("Stable", 2, {})
    assert described_group("gone", describe_answer()).state == "Dead"


def test_a_committed_offset_below_the_log_start_counts_from_the_log_start() -> None:
    tp = TopicPartition("p.requests", 0)
    # retention deleted offsets 0..99 while the group was down: it resumes at 100, not at 40
    below = partition_lag(tp, 40, (100, 150, 150), None)
    assert (below.committed, below.log_start, below.lag) == (40, 100, 50)
    assert partition_lag(tp, None, (100, 150, 150), None).lag == 50  # never committed
    assert partition_lag(tp, 120, (100, 150, 140), "w@h").lag == 20  # an open transaction: to 140


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_the_exporter_drops_lag_and_members_once_its_last_success_is_stale() -> None:
    clock = Clock()
    snapshot = _Snapshot(fresh_for_s=STALE_INTERVALS * 15.0, lags=list(LAGS), at=clock.now, clock=clock)
    series = snapshot.labelled()
    assert series["consumer_group_lag"][1][("p.shadow.b", "p.requests", "1")] == 5.0
    assert series["consumer_group_members"][1] == {("p.shadow.b",): 2.0, ("p.compare",): 0.0}
    clock.now += 45.0  # three 15 s intervals without a success: still served
    assert snapshot.labelled()["consumer_group_members"][1]
    clock.now += 1.0
    stale = snapshot.labelled()
    assert stale["consumer_group_lag"] == (("group", "topic", "partition"), {})
    assert stale["consumer_group_members"] == (("group",), {})
    assert _Snapshot(fresh_for_s=45.0).labelled()["consumer_group_members"][1] == {}  # none yet


class Source:
    """A lag reader that fails as told (``read`` and ``close``), else answers :data:`LAGS`."""

    def __init__(self, read_error: Exception | None, close_error: Exception | None = None) -> None:
        self.read_error, self.close_error = read_error, close_error
        self.closed = False

    async def read(self, groups: Sequence[str]) -> list[GroupLag]:
        if self.read_error is not None:
            raise self.read_error
        return [g for g in LAGS if g.group in groups]

    async def shadowlane_groups(self) -> list[str]:
        return [g.group for g in LAGS]

    async def close(self) -> None:
        self.closed = True
        if self.close_error is not None:
            raise self.close_error


async def test_a_refresh_failing_with_any_error_is_counted_and_the_next_one_starts_afresh(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sources = [
        Source(ValueError("Buffer underrun decoding string"), close_error=RuntimeError("closed twice")),
        Source(None),
    ]
    opened: list[Source] = []

    async def open_reader() -> Source:
        opened.append(sources[len(opened)])
        return opened[-1]

    clock = Clock()
    snapshot = _Snapshot(fresh_for_s=45.0, clock=clock)
    health = Health()
    refresher = Refresher(open_reader, [], snapshot, health)
    with caplog.at_level(logging.WARNING, logger="shadowlane.cli.lag_cmd"):
        assert await refresher.once() is False  # a bug's error, not a broker's: it goes on all the same
    assert snapshot.failures == 1
    assert opened[0].closed
    ready, body = health.readiness()
    assert not ready
    assert body["broker"]["error"] == "lag refresh failed: ValueError: Buffer underrun decoding string"
    logged = [r.getMessage() for r in caplog.records if r.name == "shadowlane.cli.lag_cmd"]
    assert logged == ["lag refresh failed: ValueError: Buffer underrun decoding string"]
    assert await refresher.once() is True  # a new reader
    assert len(opened) == 2
    assert (snapshot.failures, snapshot.at, [g.group for g in snapshot.lags]) == (
        1, clock.now, ["p.shadow.b", "p.compare"],
    )  # fmt: skip
    assert health.readiness()[0]
    await refresher.close()
    assert opened[1].closed
