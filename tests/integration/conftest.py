"""Integration fixtures: one real Kafka broker per session, unique topics and groups per test.

The broker is ``KAFKA_BOOTSTRAP_SERVERS`` when set; else testcontainers' Kafka when a Docker
engine answers; else the project's own local KRaft broker (started here, and stopped at the end
when this session started it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from shadowlane.kafka.admin import ensure_topics
from shadowlane.kafka.bootstrap import client_kwargs
from shadowlane.kafka.local import LocalKafka
from shadowlane.settings import (
    CompareSettings,
    ControlSettings,
    Settings,
    ShadowSettings,
    TopicSettings,
    load_settings,
)
from tests.support.kafka_io import delete_topics_with_prefix


def _docker_engine() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    explicit = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if explicit:
        yield explicit
        return
    if _docker_engine():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    local = LocalKafka.from_settings(load_settings())
    was_running = bool(local.status()["running"])
    bootstrap = local.start(timeout_s=180)
    yield bootstrap
    if not was_running and os.environ.get("SHADOWLANE_TEST_KEEP_BROKER") != "1":
        local.stop()


@pytest.fixture
def it_settings(kafka_bootstrap: str) -> Settings:
    """Settings with a unique topic prefix and unique group ids for this test."""
    run = uuid.uuid4().hex[:10]
    return Settings(
        bootstrap_servers=kafka_bootstrap,
        topics=TopicSettings(prefix=f"it-{run}.", partitions=4),
        shadow=ShadowSettings(
            candidate="cand",
            group_prefix=f"it-{run}.shadow.",
            rate_cap=1000.0,
            concurrency=8,
            readonly_tools=("lookup_conjugation",),
            timeout_s=5.0,
            backoff_base_s=0.01,
            lambda_ratio=0.0,  # λ replays are extra candidate calls: tests that want them say so
        ),
        compare=CompareSettings(
            group_id=f"it-{run}.compare", candidates=("cand",), embedder="none", window_s=5
        ),
        control=ControlSettings(enabled=False),  # tests that follow the control topic set keys
    )


@pytest.fixture
async def kafka_kwargs(it_settings: Settings) -> AsyncIterator[dict[str, Any]]:
    kwargs = client_kwargs(it_settings, it_settings.bootstrap_servers or "")
    await ensure_topics(it_settings.topics, kwargs)
    yield kwargs
    await delete_topics_with_prefix(kwargs, it_settings.topics.prefix)
