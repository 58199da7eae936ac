"""The read-only tool sandbox: candidates' tool calls are answered, never executed.

Resolution order for a tool call ``(name, arguments)``:

1. a tool that is not on the read-only allow-list is **blocked** (recorded, answered with an
   error message the model can read); nothing is executed;
2. a call whose name was not offered in the request is an **unknown_tool**;
3. the recorded prod output of the same name and arguments answers it (**stubbed_recorded**);
   same name with other arguments falls back to step 4;
4. a configured stub for the name answers it (**stubbed_config**);
5. otherwise **no_stub**: the model is told no result is available.

Whatever the disposition, each call is also checked against the JSON schema of the tool as the
request offered it (``schema_valid`` / ``schema_error``, see :mod:`shadowlane.shadow.tool_schema`):
that is the candidate's tool success, independent of what the sandbox then did with the call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from shadowlane.contracts.chat import ToolSpec
from shadowlane.contracts.envelope import RecordedToolCall
from shadowlane.contracts.shadow_result import ShadowToolCall, ToolDisposition
from shadowlane.hashing import canonical_json
from shadowlane.shadow.tool_schema import ValidatorCache

BLOCKED_MESSAGE = '{"error": "blocked: this tool has side effects and is disabled in shadow mode"}'
NO_STUB_MESSAGE = '{"error": "no recorded result for this call in shadow mode"}'
UNKNOWN_MESSAGE = '{"error": "unknown tool"}'


def parse_arguments(arguments: Any) -> dict[str, Any] | str:
    """Tool arguments as a dict when they are a JSON object, else the raw string."""
    if isinstance(arguments, dict):
        return arguments
    if isinstance(arguments, str):
        try:
            parsed = orjson.loads(arguments or "{}")
        except orjson.JSONDecodeError:
            return arguments
        return parsed if isinstance(parsed, dict) else arguments
    return str(arguments)


def call_key(name: str, arguments: dict[str, Any] | str) -> tuple[str, bytes]:
    if isinstance(arguments, dict):
        return name, canonical_json(arguments)
    return name, arguments.encode()


def offered_schemas(tools: Iterable[ToolSpec]) -> dict[str, dict[str, Any]]:
    """The request's tools as ``name -> parameters schema`` (the first spec of a repeated name wins)."""
    offered: dict[str, dict[str, Any]] = {}
    for tool in tools:
        offered.setdefault(tool.function.name, tool.function.parameters)
    return offered


class ReadOnlyToolbox:
    """Answers one envelope's tool calls from its recording; blocks everything not read-only.

    ``offered`` maps each tool the request offered to its parameters schema; ``validators`` is
    the worker's shared validator cache (a private one when omitted).
    """

    def __init__(
        self,
        recorded: Iterable[RecordedToolCall],
        *,
        readonly: Iterable[str],
        stubs: Mapping[str, str],
        offered: Mapping[str, Mapping[str, Any]],
        validators: ValidatorCache | None = None,
    ) -> None:
        self._readonly = frozenset(readonly)
        self._stubs = stubs
        self._offered = dict(offered)
        self._validators = validators if validators is not None else ValidatorCache()
        self._recorded: dict[tuple[str, bytes], str] = {}
        for call in recorded:
            self._recorded.setdefault(call_key(call.name, call.arguments), call.output)

    def resolve(self, name: str, raw_arguments: Any) -> ShadowToolCall:
        arguments = parse_arguments(raw_arguments)
        disposition, output = self._dispose(name, arguments)
        check = self._validators.check(self._offered.get(name), arguments)
        return ShadowToolCall(
            name=name,
            arguments=arguments,
            disposition=disposition,
            output=output,
            schema_valid=check.valid,
            schema_error=check.error,
        )

    def _dispose(self, name: str, arguments: dict[str, Any] | str) -> tuple[ToolDisposition, str]:
        if name not in self._readonly:
            return "blocked", BLOCKED_MESSAGE
        if self._offered and name not in self._offered:
            return "unknown_tool", UNKNOWN_MESSAGE
        recorded = self._recorded.get(call_key(name, arguments))
        if recorded is not None:
            return "stubbed_recorded", recorded
        stub = self._stubs.get(name)
        if stub is not None:
            return "stubbed_config", stub
        return "no_stub", NO_STUB_MESSAGE
