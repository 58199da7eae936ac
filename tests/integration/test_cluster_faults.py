"""A real 3-broker cluster's faults: kill -9 one broker in the middle of a run, bring it back.

The project's own cluster (``LocalCluster``, what ``shadowlane kafka start --brokers 3`` runs) in
a folder of this test. Shadowlane's topics get 3 replicas and ``min.insync.replicas=2``. The hook
publishes 240 requests at ~40/s while a shadow worker and the comparator run; one broker is
SIGKILLed after a third of them; the second third is published, replayed and compared while it
is down (with one replica per partition, those on the dead broker would wait for it); it is
restarted before the last third. Nothing is lost (every request is published, replayed and
compared, the hook counts no failure), no comparison is emitted twice, and ``publish()`` never
blocked the prod path.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shadowlane.compare.embedder import build_embedder
from shadowlane.compare.worker import Comparator
from shadowlane.contracts.codec import decode
from shadowlane.contracts.comparison import Comparison
from shadowlane.hook.publisher import ShadowPublisher
from shadowlane.kafka.admin import ensure_topics
from shadowlane.kafka.bootstrap import client_kwargs
from shadowlane.kafka.cluster import LocalCluster
from shadowlane.kafka.local import LocalKafka
from shadowlane.settings import (
    CompareSettings,
    ControlSettings,
    Settings,
    ShadowSettings,
    TopicSettings,
    load_settings,
)
from shadowlane.shadow.candidates import CallableCandidate
from shadowlane.shadow.worker import ShadowWorker
from tests.support.factories import envelope
from tests.support.kafka_io import read_topic
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

N = 240
RATE = 40.0
VICTIM = 2


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    defaults = load_settings()
    jars = LocalKafka(defaults.state_dir, defaults.kafka_pom)  # the installed jars, not a new install
    made = LocalCluster(Path(tmp_path_factory.mktemp("cluster")), defaults.kafka_pom, brokers=3, jars=jars)
    made.start(timeout_s=180)
    try:
        yield made
    finally:
        made.stop(timeout_s=10)


def _settings(bootstrap: str) -> Settings:
    run = uuid.uuid4().hex[:10]
    return Settings(
        bootstrap_servers=bootstrap,
        topics=TopicSettings(prefix=f"cl-{run}.", partitions=4),
        shadow=ShadowSettings(
            candidate="cand", group_prefix=f"cl-{run}.shadow.", rate_cap=1000.0, lambda_ratio=0.0
        ),
        compare=CompareSettings(
            group_id=f"cl-{run}.compare", candidates=("cand",), embedder="none", window_s=30
        ),
        control=ControlSettings(enabled=False),
    )


async def _replication(kwargs: dict[str, Any], topic: str) -> tuple[set[int], str | None]:
    """(replica counts of the topic's partitions, its min.insync.replicas), once every broker
    knows the new topic (a broker that does not yet answers without the config)."""
    admin = AIOKafkaAdminClient(**kwargs)
    await admin.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            described = await admin.describe_topics([topic])
            replicas = {len(p["replicas"]) for d in described for p in d["partitions"]}
            configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            entries = {e[0]: e[1] for r in configs for res in r.resources for e in res[4]}
            if "min.insync.replicas" in entries or time.monotonic() > deadline:
                return replicas, entries.get("min.insync.replicas")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


@pytest.mark.timeout(420)
async def test_a_broker_killed_mid_run_loses_nothing_and_never_blocks_the_hook(cluster: LocalCluster) -> None:
    settings = _settings(cluster.bootstrap())
    kwargs = client_kwargs(settings, cluster.bootstrap())
    await ensure_topics(settings.topics, kwargs)
    assert await _replication(kwargs, settings.topics.requests_topic) == ({3}, "2")

    publisher = ShadowPublisher(
        settings.hook,
        topic=settings.topics.requests_topic,
        producer_factory=lambda: AIOKafkaProducer(**kwargs, acks="all", enable_idempotence=True, linger_ms=5),
    )
    worker = ShadowWorker(settings, CallableCandidate("cand", lambda body: "Corrected."), kwargs)
    comparator = Comparator(settings, build_embedder(settings.compare), kwargs)
    await publisher.start()
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(comparator.run())]
    envs = [envelope(i, tag="fault") for i in range(N)]
    publish_s: list[float] = []
    killed_at = restarted_at = 0.0
    try:
        assert await wait_until(lambda: worker.assigned.is_set() and comparator.assigned.is_set(), 120)
        for i, env in enumerate(envs):
            if i == N // 3:
                assert await asyncio.to_thread(cluster.kill, VICTIM)
                killed_at = time.monotonic()
            if i == 2 * N // 3:
                # the cluster works on without the broker: what was published is compared first
                assert await wait_until(lambda: comparator.stats.emitted >= 2 * N // 3, 150), comparator.stats
                assert cluster.status()["nodes"][VICTIM - 1]["running"] is False
                await asyncio.to_thread(cluster.restart, VICTIM)
                restarted_at = time.monotonic()
            request = env.request.model_dump(mode="json", exclude_defaults=True)
            started = time.perf_counter()
            publisher.publish(
                req_id=env.req_id,
                endpoint=env.endpoint,
                request={**request, **request.pop("params", {})},
                response={"choices": [{"message": {"role": "assistant", "content": env.prod.answer}}]},
                status=200,
                latency_ms=12.0,
            )
            publish_s.append(time.perf_counter() - started)
            await asyncio.sleep(1 / RATE)
        await publisher.stop(drain_timeout_s=60)
        compared = await read_topic(
            kwargs, settings.topics.compare_topic, want=N, timeout_s=180, settle_s=3.0
        )
        assert not any(task.done() for task in tasks), "a worker stopped"
    finally:
        worker.stop()
        comparator.stop()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
    stats = publisher.stats
    assert stats.published == N, stats
    assert stats.send_failed == stats.dropped_queue_full == stats.dropped_invalid == 0, stats
    comparisons = [decode(r.value, Comparison) for r in compared]
    hashes = [c.req_hash for c in comparisons]
    assert len(hashes) == len(set(hashes)) == N  # every request once: none lost, none twice
    assert {c.outcome for c in comparisons} == {"joined"}
    assert restarted_at > killed_at > 0
    assert max(publish_s) < 0.005  # publish() returns at once, broker down or not
