"""Tool success: checks a candidate's tool-call arguments against the JSON schema the request offered.

Each offered tool carries ``function.parameters``, a JSON schema (Draft 2020-12). A call is
``valid=True`` when its arguments are a JSON object the schema accepts, ``False`` when they are
not an object or the schema rejects them, and ``None`` when there is nothing to check against:
the tool was not offered, or its schema is itself invalid or cannot be applied (a broken
``$ref``, ...). A broken schema never raises.

Compiled validators are kept in a small LRU cache keyed by the schema's canonical JSON, so a
tool offered on every request is compiled once per worker. References are resolved only inside
the schema itself: a remote ``$ref`` is never fetched.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from referencing import Registry

from shadowlane.hashing import canonical_json

MAX_ERROR_CHARS = 200
DEFAULT_CACHE_SIZE = 256
NOT_AN_OBJECT = "arguments are not a JSON object"


@dataclass(frozen=True, slots=True)
class SchemaCheck:
    """The outcome of one check: ``valid`` is None when there was no usable schema."""

    valid: bool | None
    error: str | None = None


UNCHECKED = SchemaCheck(None)


def short(message: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``message`` cut to ``limit`` characters (an ellipsis marks the cut)."""
    return message if len(message) <= limit else message[: limit - 1] + "…"


class ValidatorCache:
    """Bounded LRU of compiled Draft 2020-12 validators (or the reason a schema is unusable)."""

    def __init__(self, max_size: int = DEFAULT_CACHE_SIZE) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._max_size = max_size
        self._entries: OrderedDict[bytes, Draft202012Validator | str] = OrderedDict()
        self.compiled = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, schema: Mapping[str, Any]) -> Draft202012Validator | str:
        """The validator for ``schema``, or a short message saying why the schema is unusable."""
        try:
            key = canonical_json(schema)
        except (TypeError, ValueError) as exc:  # orjson.JSONEncodeError is a TypeError
            return short(f"invalid schema: not JSON ({exc})")
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            return entry
        entry = _compile(schema)
        self.compiled += 1
        self._entries[key] = entry
        if len(self._entries) > self._max_size:
            self._entries.popitem(last=False)
        return entry

    def check(self, schema: Mapping[str, Any] | None, arguments: dict[str, Any] | str) -> SchemaCheck:
        """Check ``arguments`` (already parsed: a dict, or the raw string) against ``schema``."""
        if schema is None:
            return UNCHECKED
        validator = self.get(schema)
        if isinstance(validator, str):
            return SchemaCheck(None, validator)
        if not isinstance(arguments, dict):
            return SchemaCheck(False, NOT_AN_OBJECT)
        try:
            error = best_match(validator.iter_errors(arguments))
        except Exception as exc:  # unresolvable $ref, pathological schema: nothing to judge with
            return SchemaCheck(None, short(f"invalid schema: {type(exc).__name__}: {exc}"))
        if error is None:
            return SchemaCheck(True)
        return SchemaCheck(False, short(f"{error.json_path}: {error.message}"))


def _compile(schema: Mapping[str, Any]) -> Draft202012Validator | str:
    if not isinstance(schema, Mapping):
        return "invalid schema: not a JSON object"
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return short(f"invalid schema: {exc.message}")
    except Exception as exc:  # e.g. RecursionError on a pathologically deep schema
        return short(f"invalid schema: {type(exc).__name__}: {exc}")
    # an empty registry: local references resolve, remote ones fail instead of being fetched
    return Draft202012Validator(schema, registry=Registry())
