"""OpenAI chat-completions shapes as carried inside envelopes (messages, tools, tool calls, usage).

The shapes follow the OpenAI wire format so a recorded request can be replayed verbatim against
any OpenAI-compatible server (vLLM, Ollama, LiteLLM, OpenAI). Unknown fields are kept.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from shadowlane.contracts.base import Nested, OpenShape


class FunctionCall(OpenShape):
    name: str
    arguments: str = "{}"


class ToolCall(OpenShape):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(OpenShape):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] | None = None
    tool_call_id: str | None = None


class FunctionSpec(OpenShape):
    name: str
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class ToolSpec(OpenShape):
    type: Literal["function"] = "function"
    function: FunctionSpec


class ChatRequest(Nested):
    """The sanitized request: messages, tool definitions and every other body parameter."""

    model: str | None = None
    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...] = ()
    params: dict[str, Any] = Field(default_factory=dict)


class TokenUsage(Nested):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
