"""An OAUTHBEARER token provider for tests: ``tests.support.kafka_auth:StaticTokenProvider``."""

from __future__ import annotations

from aiokafka.abc import AbstractTokenProvider


class StaticTokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka ships no types
    async def token(self) -> str:
        return "test-token"
