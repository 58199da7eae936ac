"""KRaft specifics: the cluster id, ``server.properties`` of a combined broker+controller on
127.0.0.1 (alone, or node ``node_id`` of a static quorum of ``voters``), reading back its
listener ports, and the readiness probe (a TCP connect, then a real metadata request answered by
the broker)."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shadowlane.kafka.procs import HOST

NODE_ID = 1


@dataclass(frozen=True)
class ClusterNode:
    """One node of a local cluster (:class:`shadowlane.kafka.cluster.LocalCluster`): where it
    lives, the jars it shares, its fixed ports and the quorum and cluster it belongs to."""

    node_id: int
    kafka_dir: Path
    libs_dir: Path
    port: int
    controller_port: int
    voters: str
    brokers: int
    cluster_id: str


def new_cluster_id() -> str:
    """A Kafka-style cluster id: 16 random bytes, url-safe base64, never starting with '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


_SERVER_PROPERTIES = """\
# Written by shadowlane (shadowlane/kafka/kraft.py) on every start; edits are overwritten.
process.roles=broker,controller
node.id={node}
controller.quorum.voters={voters}
listeners={client}://{host}:{port},CONTROLLER://{host}:{cport}
advertised.listeners={client}://{host}:{port}
listener.security.protocol.map=CONTROLLER:{controller},{client}:{client}
inter.broker.listener.name={client}
controller.listener.names=CONTROLLER
log.dirs={log_dir}
num.partitions={partitions}
default.replication.factor={replicas}
min.insync.replicas={min_isr}
auto.create.topics.enable=false
offsets.topic.replication.factor={replicas}
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_isr}
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={min_isr}
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
# the log cleaner looks for compactable logs every second (default 15 s): compacted topics (control)
# settle soon after a change
log.cleaner.backoff.ms=1000
"""


def cluster_replicas(brokers: int) -> tuple[int, int]:
    """(replication factor, min in-sync replicas) of a cluster of ``brokers``: min(3, brokers)
    copies, and 2 of them acknowledged (1 on a single broker)."""
    replicas = min(3, max(brokers, 1))
    return replicas, min(2, replicas)


def render_server_properties(
    *,
    port: int,
    controller_port: int,
    log_dir: Path,
    num_partitions: int,
    secure: str | None = None,
    node_id: int = NODE_ID,
    voters: str | None = None,
    brokers: int = 1,
) -> str:
    """server.properties of a combined broker+controller listening on 127.0.0.1 only; with
    ``secure`` (:func:`shadowlane.kafka.secure.secure_properties`), clients connect with SASL_SSL
    and the controller listener takes SASL. In a cluster, ``voters`` is the static quorum
    (``id@host:port,...``) and ``brokers`` sets the internal topics' replication."""
    log_dirs = str(log_dir).replace("\\", "\\\\")  # a backslash escapes in Java properties
    client, controller = ("SASL_SSL", "SASL_PLAINTEXT") if secure else ("PLAINTEXT", "PLAINTEXT")
    replicas, min_isr = cluster_replicas(brokers)
    text = _SERVER_PROPERTIES.format(
        node=node_id, voters=voters or f"{node_id}@{HOST}:{controller_port}", host=HOST, port=port,
        cport=controller_port, log_dir=log_dirs, partitions=num_partitions, client=client,
        controller=controller, replicas=replicas, min_isr=min_isr,
    )  # fmt: skip
    return text + (secure or "")


def read_listener_ports(server_properties: Path) -> tuple[int, int] | None:
    """(PLAINTEXT port, CONTROLLER port) from an existing server.properties, or None."""
    try:
        text = server_properties.read_text()
    except OSError:
        return None
    ports: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("listeners="):
            for item in line.partition("=")[2].split(","):
                name, _, rest = item.partition("://")
                with contextlib.suppress(ValueError):
                    ports[name.strip()] = int(rest.rpartition(":")[2])
    client = ports.get("PLAINTEXT") or ports.get("SASL_SSL")
    if client and "CONTROLLER" in ports:
        return client, ports["CONTROLLER"]
    return None


async def _describe(bootstrap: str, timeout_s: float, security: dict[str, Any]) -> dict[str, Any] | None:
    from aiokafka.admin import AIOKafkaAdminClient

    ms = int(timeout_s * 1000)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="shadowlane-probe", request_timeout_ms=ms, **security
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        info: dict[str, Any] = await asyncio.wait_for(admin.describe_cluster(), timeout_s)
        return info
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def probe(bootstrap: str, timeout_s: float = 5.0, security: dict[str, Any] | None = None) -> bool:
    """True when the broker at ``bootstrap`` answers a metadata request and lists itself
    (``security``: the client's SASL / TLS arguments, for a secured broker)."""
    host, _, port = bootstrap.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=min(timeout_s, 1.0)):
            pass
    except (OSError, ValueError):
        return False  # nothing listening yet: skip aiokafka (and its connection-error log lines)
    # On a fresh loop in a worker thread: works from async code too, and never touches the caller's loop.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kafka-probe") as pool:
        info = pool.submit(asyncio.run, _describe(bootstrap, timeout_s, security or {})).result()
    return bool(info and info.get("brokers"))
