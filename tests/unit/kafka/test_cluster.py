"""shadowlane/kafka/cluster.py and kraft.py's cluster parts: a node's server.properties names the
whole static quorum and replicates the internal topics; the cluster's spec (ports, cluster id) is
written once and kept; the CLI's ``--brokers`` is validated before anything starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shadowlane.cli.main import main
from shadowlane.kafka import kraft
from shadowlane.kafka.cluster import LocalCluster


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


@pytest.mark.parametrize(("brokers", "expected"), [(1, (1, 1)), (2, (2, 2)), (3, (3, 2)), (5, (3, 2))])
def test_replicas_are_min_3_with_2_in_sync(brokers: int, expected: tuple[int, int]) -> None:
    assert kraft.cluster_replicas(brokers) == expected


def test_a_node_names_the_quorum_and_replicates_internal_topics(tmp_path: Path) -> None:
    voters = "1@127.0.0.1:9101,2@127.0.0.1:9102,3@127.0.0.1:9103"
    props = _props(
        kraft.render_server_properties(
            port=9002,
            controller_port=9102,
            log_dir=tmp_path,
            num_partitions=4,
            node_id=2,
            voters=voters,
            brokers=3,
        )
    )
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == voters
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9002,CONTROLLER://127.0.0.1:9102"
    assert props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor"):
        assert props[key] == "3"
    assert props["transaction.state.log.min.isr"] == "2"


def test_the_spec_is_written_once_with_distinct_ports(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, tmp_path / "pom.xml", brokers=3)
    cluster._ensure_spec()
    spec = json.loads(cluster.spec_path.read_text())
    ports = [p for n in spec["nodes"] for p in (n["port"], n["controller_port"])]
    assert [n["id"] for n in spec["nodes"]] == [1, 2, 3]
    assert len(set(ports)) == 6
    cluster._ensure_spec()  # kept: the voters never move
    assert json.loads(cluster.spec_path.read_text()) == spec
    nodes = cluster.nodes()
    assert [n.kafka_dir for n in nodes] == [tmp_path / "kafka-cluster" / f"node-{i}" for i in (1, 2, 3)]
    assert {n.libs_dir for n in nodes} == {tmp_path / "kafka" / "libs"}  # the single broker's jars
    assert cluster.bootstrap() == ",".join(f"127.0.0.1:{n['port']}" for n in spec["nodes"])


def test_another_broker_count_is_refused(tmp_path: Path) -> None:
    LocalCluster(tmp_path, tmp_path / "pom.xml", brokers=3)._ensure_spec()
    with pytest.raises(Exception, match="3-broker cluster"):
        LocalCluster(tmp_path, tmp_path / "pom.xml", brokers=4)._ensure_spec()
    with pytest.raises(ValueError, match="at least 2"):
        LocalCluster(tmp_path, tmp_path / "pom.xml", brokers=1)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["kafka", "start", "--brokers", "0"], "--brokers must be 1 or at least 2"),
        (["kafka", "status", "--brokers", "3", "--secure"], "--secure is a single broker"),
    ],
)
def test_bad_broker_counts_are_usage_errors_before_anything_starts(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SHADOWLANE_HOME", str(tmp_path))
    assert main(argv) == 64
    assert message in capsys.readouterr().err
    assert not (tmp_path / "kafka-cluster").exists()


def test_status_of_a_cluster_never_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHADOWLANE_HOME", str(tmp_path))
    assert main(["kafka", "status", "--brokers", "3"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status == {"bootstrap": None, "brokers": 3, "cluster_id": None, "nodes": []}
