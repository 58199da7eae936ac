"""shadowlane/kafka/admin.py without a broker: an admin client that cannot start is closed all the
same (a worker's startup retries ``ensure_topics`` until the broker answers: one client per try)."""

from __future__ import annotations

import socket

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError

from shadowlane.kafka.admin import ensure_topics
from shadowlane.settings import TopicSettings


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_admin_client_that_cannot_start_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[AIOKafkaAdminClient] = []
    real_close = AIOKafkaAdminClient.close

    async def close(self: AIOKafkaAdminClient) -> None:  # the real close, remembered
        closed.append(self)
        await real_close(self)

    monkeypatch.setattr(AIOKafkaAdminClient, "close", close)
    kwargs = {"bootstrap_servers": f"127.0.0.1:{closed_port()}", "request_timeout_ms": 2000}
    for _attempt in range(2):
        with pytest.raises(KafkaConnectionError):
            await ensure_topics(TopicSettings(), kwargs)
    assert len(closed) == 2
    assert closed[0] is not closed[1]
    assert all(admin._closed for admin in closed)
