"""Python candidates for tests; importable by worker subprocesses (``--callable``)."""

from __future__ import annotations

import asyncio
from typing import Any

from workers.demo.model_server import ModelBehaviour, answer

_B = ModelBehaviour("grammar-b", skill=1.0, latency_ms=0)


def grammar_b(body: dict[str, Any]) -> dict[str, Any]:
    """The demo's candidate B, in-process: asks for both tools, then answers."""
    return {"choices": [{"message": answer(_B, body["messages"])}], "usage": {"total_tokens": 10}}


def echo(body: dict[str, Any]) -> str:
    return "echo"


def always_raises(body: dict[str, Any]) -> str:
    raise RuntimeError("candidate exploded")


async def too_slow(body: dict[str, Any]) -> str:
    await asyncio.sleep(30)
    return "never"


async def slow_50ms(body: dict[str, Any]) -> str:
    await asyncio.sleep(0.05)
    return "slow"
