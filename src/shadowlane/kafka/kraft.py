"""Single-node KRaft specifics: the cluster id, ``server.properties`` of a combined
broker+controller on 127.0.0.1, reading back its listener ports, and the readiness probe
(a TCP connect, then a real metadata request answered by the broker)."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import socket
import uuid
from pathlib import Path
from typing import Any

from shadowlane.kafka.procs import HOST

NODE_ID = 1


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
controller.quorum.voters={node}@{host}:{cport}
listeners={client}://{host}:{port},CONTROLLER://{host}:{cport}
advertised.listeners={client}://{host}:{port}
listener.security.protocol.map=CONTROLLER:{controller},{client}:{client}
inter.broker.listener.name={client}
controller.listener.names=CONTROLLER
log.dirs={log_dir}
num.partitions={partitions}
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
# the log cleaner looks for compactable logs every second (default 15 s): compacted topics (control)
# settle soon after a change
log.cleaner.backoff.ms=1000
"""


def render_server_properties(
    *, port: int, controller_port: int, log_dir: Path, num_partitions: int, secure: str | None = None
) -> str:
    """server.properties of a combined broker+controller listening on 127.0.0.1 only; with
    ``secure`` (:func:`shadowlane.kafka.secure.secure_properties`), clients connect with SASL_SSL
    and the controller listener takes SASL."""
    log_dirs = str(log_dir).replace("\\", "\\\\")  # a backslash escapes in Java properties
    client, controller = ("SASL_SSL", "SASL_PLAINTEXT") if secure else ("PLAINTEXT", "PLAINTEXT")
    text = _SERVER_PROPERTIES.format(
        node=NODE_ID, host=HOST, port=port, cport=controller_port, log_dir=log_dirs,
        partitions=num_partitions, client=client, controller=controller,
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
