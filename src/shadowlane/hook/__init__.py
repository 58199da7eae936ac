"""The publish hook that runs inside the prod service: what a prod team imports.

Three capture points hand a copy of each sampled chat completion to one :class:`ShadowPublisher`,
which mirrors it to Kafka off the request path:

- :class:`ShadowMirrorMiddleware`: an ASGI app that serves an OpenAI-compatible endpoint;
- :func:`capture_openai`: a service that calls its model with the official ``openai`` client;
- :class:`ShadowLiteLLMLogger`: a LiteLLM SDK call, router or proxy.

The client-side captures load on first use, so importing this package needs neither ``openai``
nor ``litellm`` (the LiteLLM callback needs ``litellm`` installed when it is used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shadowlane.hook.asgi import ShadowMirrorMiddleware
from shadowlane.hook.context import (
    SHADOW_HEADER,
    RawExposure,
    in_replay,
    record_tool_call,
    recording,
    replaying,
    set_buckets,
    set_citations,
    set_exposure,
    set_gold,
    set_paraphrases,
    set_pins,
    set_retrieved,
    set_served_pins,
)
from shadowlane.hook.publisher import PublisherStats, ShadowPublisher

if TYPE_CHECKING:
    from shadowlane.hook.litellm_logger import ShadowLiteLLMLogger
    from shadowlane.hook.openai_client import capture_openai

__all__ = [
    "SHADOW_HEADER",
    "PublisherStats",
    "RawExposure",
    "ShadowLiteLLMLogger",
    "ShadowMirrorMiddleware",
    "ShadowPublisher",
    "capture_openai",
    "in_replay",
    "record_tool_call",
    "recording",
    "replaying",
    "set_buckets",
    "set_citations",
    "set_exposure",
    "set_gold",
    "set_paraphrases",
    "set_pins",
    "set_retrieved",
    "set_served_pins",
]

_LAZY = {
    "capture_openai": "shadowlane.hook.openai_client",
    "ShadowLiteLLMLogger": "shadowlane.hook.litellm_logger",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shadowlane.hook' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
