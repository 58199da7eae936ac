"""Creates Shadowlane's topics (idempotently) with the configured partitions and retention.

requests and shadow-results are created with the same partition count so the comparator's
join is co-partitioned; an existing pair with different counts is reported as an error. The
control topic is compacted (``cleanup.policy=compact``, no time retention): it holds the signed
config in force per ``kind:name`` for as long as the deployment lives. The control log is its
append-only twin (``cleanup.policy=delete`` with no time or size limit): every signed record ever
published stays, whatever is later written under the same key.

Replication: ``topics.replication_factor`` copies of each partition, by default min(3, the brokers
the cluster has), and ``min.insync.replicas`` = min(``topics.min_insync_replicas``, that): on a
3-broker cluster one broker may fail without losing an acknowledged record or stopping an
``acks=all`` producer; a single broker keeps one copy.

Topics it creates are waited for until every partition has a leader (at most
``LEADER_WAIT_S``): a client that uses them at once would otherwise meet transient
``NotLeaderForPartition`` / ``LEADER_NOT_AVAILABLE`` errors, which aiokafka logs at ERROR.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shadowlane.errors import ShadowlaneError
from shadowlane.settings import TopicSettings

log = logging.getLogger(__name__)
_NOT_AUTHORIZED = 29  # TOPIC_AUTHORIZATION_FAILED
LEADER_WAIT_S = 10.0


def topic_names(topics: TopicSettings) -> list[str]:
    return topics.all_topics()


async def ensure_topics(topics: TopicSettings, client_kwargs: dict[str, Any]) -> None:
    """Create missing topics; verify requests and shadow-results are co-partitioned."""
    admin = AIOKafkaAdminClient(**client_kwargs)
    try:
        await admin.start()  # inside: an admin that failed to start is closed too (retried at startup)
        existing = set(await admin.list_topics())
        replicas = topics.replication_factor or min(3, len((await admin.describe_cluster())["brokers"]) or 1)
        durable = {"min.insync.replicas": str(min(topics.min_insync_replicas, replicas))}
        config = {"retention.ms": str(topics.retention_ms), **durable}
        forever = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1", **durable}
        special = {
            topics.control_topic: {"cleanup.policy": "compact", **durable},  # the latest record per key
            # the latest state per comparator group and partition; small segments so it compacts soon
            topics.compare_state_topic: {
                "cleanup.policy": "compact",
                "segment.ms": "600000",
                "min.cleanable.dirty.ratio": "0.1",
                **durable,
            },
            topics.control_log_topic: forever,
        }
        new = [
            NewTopic(name, topics.partitions, replicas, topic_configs=special.get(name, config))
            for name in topic_names(topics)
            if name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                response = await admin.create_topics(new)
                refused = [t[0] for t in getattr(response, "topic_errors", ()) if t[1] == _NOT_AUTHORIZED]
                if refused:  # a least-privilege principal: an administrator creates the topics
                    log.info(
                        "not allowed to create %s (or to see them): left to an administrator "
                        "(`shadowlane kafka acls --apply` creates them)",
                        ", ".join(refused),
                    )
                await _await_leaders(admin, [t.name for t in new if t.name not in refused])
        described = await admin.describe_topics([topics.requests_topic, topics.shadow_results_topic])
        # a topic this principal may not describe has no partitions here: nothing to compare
        counts = {d["topic"]: len(d["partitions"]) for d in described if d["partitions"]}
        if len(set(counts.values())) > 1:
            raise ShadowlaneError(f"requests and shadow-results must be co-partitioned, got {counts}")
    finally:
        await admin.close()


async def _await_leaders(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Until every partition of ``names`` has a leader, or ``LEADER_WAIT_S`` has passed."""
    deadline = time.monotonic() + LEADER_WAIT_S
    while time.monotonic() < deadline:
        described = await admin.describe_topics(names) if names else []
        led = [
            d.get("error_code") == _NOT_AUTHORIZED  # not ours to see: nothing to wait for
            or (bool(d["partitions"]) and all(p.get("leader", 0) >= 0 for p in d["partitions"]))
            for d in described
        ]  # a leader of -1: none elected yet
        if all(led):
            return
        await asyncio.sleep(0.1)
    log.info("topics created, but not every partition had a leader after %.0f s", LEADER_WAIT_S)


async def partition_ids(client_kwargs: dict[str, Any], topics: list[str]) -> dict[str, list[int]]:
    """Partition ids of each existing topic (missing topics are left out)."""
    admin = AIOKafkaAdminClient(**client_kwargs)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in topics if t in existing]
        described = await admin.describe_topics(wanted) if wanted else []
        return {d["topic"]: sorted(p["partition"] for p in d["partitions"]) for d in described}
    finally:
        await admin.close()
