"""A real multi-broker Kafka cluster on 127.0.0.1: N combined broker+controller nodes, one static
KRaft quorum of N voters, no Docker. ``shadowlane kafka start --brokers 3`` runs one.

Layout under ``<state_dir>/kafka-cluster``::

    cluster.json      the cluster id, the broker count and each node's two fixed ports
    node-<i>/         one :class:`~shadowlane.kafka.local.LocalKafka` node (data/, broker.json, lock)
    cluster.lock      held around start/stop

The nodes share the single broker's jars (``<state_dir>/kafka/libs``, installed on first use). The
ports are chosen once and kept, so the voters' endpoints never change and a killed node comes back
on its own ports. Topics of a cluster get ``min(3, brokers)`` replicas and 2 in-sync replicas
(:func:`~shadowlane.kafka.kraft.cluster_replicas`; Shadowlane's own topics follow
``topics.replication_factor`` / ``topics.min_insync_replicas``): one node may fail without losing
an acknowledged record or stopping producers that use ``acks=all``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shadowlane.errors import BrokerSetupError
from shadowlane.kafka.kraft import ClusterNode, new_cluster_id
from shadowlane.kafka.local import LocalKafka
from shadowlane.kafka.procs import HOST, free_ports, port_is_free
from shadowlane.settings import Settings

NODE_HEAP = "384m"


class LocalCluster:
    """Starts, stops, kills and reports the nodes of a local cluster (see the module docstring)."""

    def __init__(
        self,
        state_dir: Path,
        pom: Path,
        *,
        brokers: int = 3,
        num_partitions: int = 6,
        jars: LocalKafka | None = None,
    ) -> None:
        """``jars``: the broker whose installed jars the nodes use (default: the single broker's
        under ``state_dir``)."""
        if brokers < 2:
            raise ValueError("a cluster has at least 2 brokers (one broker: LocalKafka)")
        self.brokers = brokers
        self.state_dir = Path(state_dir).resolve()
        self.pom = Path(pom).resolve()
        self.num_partitions = num_partitions
        self.root = self.state_dir / "kafka-cluster"
        self.spec_path = self.root / "cluster.json"
        self.lock_path = self.root / "cluster.lock"
        self.jars = jars or LocalKafka(self.state_dir, self.pom)  # the single broker's install, shared

    @classmethod
    def from_settings(cls, settings: Settings, *, brokers: int = 3) -> LocalCluster:
        return cls(
            settings.state_dir, settings.kafka_pom, brokers=brokers, num_partitions=settings.topics.partitions
        )

    # -- public API ---------------------------------------------------------------------------

    def nodes(self) -> list[LocalKafka]:
        """The nodes as configured in ``cluster.json`` (written on the first start)."""
        spec = self._spec()
        if spec is None:
            return []
        voters = ",".join(f"{n['id']}@{HOST}:{n['controller_port']}" for n in spec["nodes"])
        return [
            LocalKafka(
                self.state_dir,
                self.pom,
                heap=NODE_HEAP,
                num_partitions=self.num_partitions,
                node=ClusterNode(
                    node_id=n["id"],
                    kafka_dir=self.root / f"node-{n['id']}",
                    libs_dir=self.jars.libs_dir,
                    port=n["port"],
                    controller_port=n["controller_port"],
                    voters=voters,
                    brokers=len(spec["nodes"]),
                    cluster_id=spec["cluster_id"],
                ),
            )
            for n in spec["nodes"]
        ]

    def start(self, timeout_s: float = 180.0) -> str:
        """Start every node that is not running and return the bootstrap list once all answer."""
        with self._locked():
            self.jars.install()
            self._ensure_spec()
            nodes = self.nodes()
            for node in nodes:
                node.spawn()  # all of them before waiting: a node answers once a quorum runs
            for node in nodes:
                if not node.wait_ready(timeout_s):
                    logs = node.logs_dir / "server.log"
                    raise BrokerSetupError(f"cluster node {node.kafka_dir.name} did not answer; see {logs}")
            return self.bootstrap()

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop every node; True when any was running."""
        with self._locked():
            stopped = [node.stop(timeout_s) for node in self.nodes()]  # every one, not the first only
            return any(stopped)

    def kill(self, node_id: int) -> bool:
        """SIGKILL one node (a crash); True when it was running."""
        return self._node(node_id).kill()

    def restart(self, node_id: int, timeout_s: float = 120.0) -> None:
        """Bring one node back (after :meth:`kill`) and wait until it answers."""
        node = self._node(node_id)
        node.spawn()
        if not node.wait_ready(timeout_s):
            raise BrokerSetupError(f"cluster node {node_id} did not come back; see {node.logs_dir}")

    def bootstrap(self) -> str:
        return ",".join(f"{HOST}:{node.node.port}" for node in self.nodes() if node.node is not None)

    def status(self) -> dict[str, Any]:
        spec = self._spec()
        return {
            "brokers": len(spec["nodes"]) if spec else self.brokers,
            "cluster_id": spec["cluster_id"] if spec else None,
            "bootstrap": self.bootstrap() or None,
            "nodes": [
                {k: node.status()[k] for k in ("running", "ready", "pid", "bootstrap", "server_log")}
                for node in self.nodes()
            ],
        }

    # -- internals ----------------------------------------------------------------------------

    def _node(self, node_id: int) -> LocalKafka:
        for node in self.nodes():
            if node.node is not None and node.node.node_id == node_id:
                return node
        raise KeyError(f"no node {node_id} in {self.spec_path}")

    def _spec(self) -> dict[str, Any] | None:
        try:
            spec = json.loads(self.spec_path.read_text())
        except (OSError, ValueError):
            return None
        return spec if isinstance(spec, dict) and spec.get("nodes") else None

    def _ensure_spec(self) -> None:
        """Write ``cluster.json`` on the first start; refuse another broker count later."""
        spec = self._spec()
        if spec is not None:
            if len(spec["nodes"]) != self.brokers:
                raise BrokerSetupError(
                    f"{self.root} holds a {len(spec['nodes'])}-broker cluster: stop it and remove the"
                    f" folder to start one of {self.brokers}"
                )
            busy = [n["id"] for n in spec["nodes"] if not self._node(n["id"]).status()["running"]
                    and not (port_is_free(n["port"]) and port_is_free(n["controller_port"]))]  # fmt: skip
            if busy:
                raise BrokerSetupError(f"ports of cluster nodes {busy} are taken by another process")
            return
        ports = free_ports(2 * self.brokers)
        nodes = [
            {"id": i + 1, "port": ports[2 * i], "controller_port": ports[2 * i + 1]}
            for i in range(self.brokers)
        ]
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.spec_path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps({"cluster_id": new_cluster_id(), "nodes": nodes}, indent=2) + "\n")
        os.replace(tmp, self.spec_path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
