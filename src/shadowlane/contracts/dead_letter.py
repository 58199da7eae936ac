"""``DeadLetter``: a record no worker could process, with the reason, and as much of it as fits.

A letter keeps at most ``KEEP_BYTES`` of the record's key and of its value (base64), and always
their full sizes and SHA-256 digests, so it fits the DLQ whatever the record's size: an 8 MiB
record the broker accepted is still dead-lettered, and the digest names it exactly.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from shadowlane.contracts.base import WireModel

KEEP_BYTES = 64 * 1024
"""How much of a record's key, and of its value, a dead letter keeps (~87 KB each in base64)."""


class DeadLetter(WireModel):
    SCHEMA_NAME: ClassVar[str] = "dead_letter"
    schema_version: Literal[1] = 1
    source_topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    key_b64: str | None = Field(default=None, description="the key, or its first KEEP_BYTES bytes")
    value_b64: str | None = Field(default=None, description="the value, or its first KEEP_BYTES bytes")
    key_size: int | None = Field(default=None, ge=0, description="the key's full size in bytes")
    value_size: int | None = Field(default=None, ge=0, description="the value's full size in bytes")
    key_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description="of the full key")
    value_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description="of the full value")
    truncated: bool = Field(
        default=False, description="key_b64 or value_b64 holds less than the whole key or value"
    )
    reason: str = Field(description="machine-readable: undecodable, schema_version, validation, ...")
    detail: str = ""
    worker: str
    ts_ms: int = Field(ge=0)
