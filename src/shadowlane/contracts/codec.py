"""Encoding and decoding of wire records with orjson, with errors that say what was wrong.

Decoding never raises anything but :class:`DecodeError`, whose ``reason`` is one of
``undecodable`` (not JSON / not an object), ``schema_version`` (missing or unsupported) and
``validation`` (JSON of the right version that breaks the contract).
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

from shadowlane.contracts.base import WireModel

M = TypeVar("M", bound=WireModel)


class DecodeError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def encode(model: WireModel) -> bytes:
    """Serialize a record to compact JSON bytes (a flat record straight from its ``__dict__``,
    which gives the same bytes as dumping it first: tested for every flat contract)."""
    if model.FLAT:
        return orjson.dumps(model.__dict__)
    return orjson.dumps(model.model_dump(mode="python", exclude_none=False))


def decode(data: bytes | None, model: type[M]) -> M:
    """Parse and validate ``data`` as ``model``; raise :class:`DecodeError` with a reason."""
    return validate_object(load_object(data, model), model)


def load_object(data: bytes | None, model: type[M]) -> dict[str, Any]:
    """``data`` parsed as the JSON object of a ``model`` record of the right schema version (not
    validated yet); :class:`DecodeError` ``undecodable`` or ``schema_version`` otherwise."""
    if data is None:
        raise DecodeError("undecodable", "record has no value (tombstone)")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("undecodable", f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise DecodeError("undecodable", f"expected a JSON object, got {type(obj).__name__}")
    version = obj.get("schema_version")
    if version != model.SCHEMA_VERSION:
        raise DecodeError(
            "schema_version",
            f"{model.SCHEMA_NAME} v{model.SCHEMA_VERSION} expected, record says {version!r}",
        )
    return obj


def validate_object(obj: dict[str, Any], model: type[M]) -> M:
    """A loaded record validated by its contract; :class:`DecodeError` ``validation`` otherwise."""
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise DecodeError("validation", errors) from None
