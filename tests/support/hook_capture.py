"""Helpers for the client-side capture tests: the demo model on loopback, SDK clients pointed at
it, and a publisher that records what it was handed."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from types import ModuleType
from typing import Any

import openai
from aiokafka import AIOKafkaProducer

from shadowlane.demo.model_server import PREFIX, TOOLS, ModelBehaviour, model_app
from shadowlane.demo.serve import RunningServer, serve
from shadowlane.hook.publisher import ShadowPublisher
from shadowlane.settings import HookSettings, Settings
from tests.support.fake_kafka import FakeProducerFactory

SENTENCE = "She goed to the market yesterday."
TOOL_PARAMS: list[Any] = TOOLS  # the demo's tools, typed loosely enough for the SDKs' stubs


def first_turn(sentence: str = SENTENCE) -> list[Any]:
    """The tutor's first user turn: the demo model answers it with two tool calls."""
    return [
        {"role": "system", "content": "You are a grammar tutor for student s042."},
        {"role": "user", "content": PREFIX + sentence},
    ]


def second_turn(first: list[Any], assistant: dict[str, Any]) -> list[Any]:
    """``first`` plus the assistant's tool calls and an answer to each: the model then answers."""
    answers = [
        {"role": "tool", "tool_call_id": call["id"], "content": '{"form": "went"}'}
        for call in assistant["tool_calls"]
    ]
    return [*first, assistant, *answers]


class SpyPublisher(ShadowPublisher):
    """A real publisher (fake producer) that also keeps the arguments of every ``publish`` call."""

    def __init__(self, settings: HookSettings | None = None) -> None:
        self.factory = FakeProducerFactory()
        super().__init__(settings or HookSettings(linger_ms=0), topic="t", producer_factory=self.factory)
        self.calls: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> bool:
        self.calls.append(kwargs)
        return super().publish(**kwargs)


@asynccontextmanager
async def model_server(behaviour: ModelBehaviour | None = None) -> AsyncIterator[RunningServer]:
    """The demo's OpenAI-compatible model under uvicorn on 127.0.0.1 (OS-chosen port)."""
    server = await serve(model_app(behaviour or ModelBehaviour("grammar-a", latency_ms=0)))
    try:
        yield server
    finally:
        await server.stop()


def sync_client(server: RunningServer, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, **kwargs)


def async_client(server: RunningServer, **kwargs: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, **kwargs)


def offline_litellm() -> ModuleType:
    """``litellm``, imported with its bundled model-cost map (it would fetch one over the network)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    return litellm


@contextmanager
def litellm_callback(litellm: Any, callback: Any) -> Iterator[Any]:
    """``callback`` registered the documented way for the block, and removed from every list
    LiteLLM promoted it into afterwards (LiteLLM keeps one instance per logger class)."""
    litellm.callbacks = [callback]
    try:
        yield callback
    finally:
        litellm.logging_callback_manager.remove_callback_from_all_lists(callback)


def kafka_publisher(
    settings: Settings, kafka_kwargs: dict[str, Any], hook: HookSettings | None = None
) -> ShadowPublisher:
    """A publisher producing to the real broker's requests topic of ``settings``."""
    return ShadowPublisher(
        hook or HookSettings(),
        topic=settings.topics.requests_topic,
        producer_factory=lambda: AIOKafkaProducer(**kafka_kwargs, acks="all", linger_ms=5),
    )
