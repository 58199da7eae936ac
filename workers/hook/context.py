"""Per-request recording the prod handler can feed without knowing about Kafka.

The mirroring middleware opens a :class:`MirrorContext` for each mirrored request. Handler code
that executes tools server-side calls :func:`record_tool_call` (a no-op outside a mirrored
request) so the shadow can later answer the same tool call from the recorded output, and
:func:`set_pins` to say which model / prompt / index versions served the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RawToolCall:
    name: str
    arguments: Any
    output: Any
    ok: bool = True


@dataclass(slots=True)
class MirrorContext:
    tool_calls: list[RawToolCall] = field(default_factory=list)
    pins: dict[str, str] = field(default_factory=dict)


_CURRENT: ContextVar[MirrorContext | None] = ContextVar("shadowlane_mirror", default=None)


def open_context() -> tuple[MirrorContext, object]:
    """Start recording for the current request; returns the context and a reset token."""
    ctx = MirrorContext()
    return ctx, _CURRENT.set(ctx)


def close_context(token: object) -> None:
    _CURRENT.reset(token)  # type: ignore[arg-type]


def record_tool_call(name: str, arguments: Any, output: Any, *, ok: bool = True) -> None:
    """Record one tool call prod executed (arguments as dict or JSON string, output as any JSON)."""
    ctx = _CURRENT.get()
    if ctx is not None:
        ctx.tool_calls.append(RawToolCall(name, arguments, output, ok))


def set_pins(pins: Mapping[str, str]) -> None:
    """Record the version pins (model_rev, prompt_ver, index_hash, ...) that served this request."""
    ctx = _CURRENT.get()
    if ctx is not None:
        ctx.pins.update(pins)
