"""``DeadLetter``: a record no worker could process, kept whole with the reason."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from shadowlane.contracts.base import WireModel


class DeadLetter(WireModel):
    SCHEMA_NAME: ClassVar[str] = "dead_letter"
    schema_version: Literal[1] = 1
    source_topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    key_b64: str | None = None
    value_b64: str | None = None
    reason: str = Field(description="machine-readable: undecodable, schema_version, validation, ...")
    detail: str = ""
    worker: str
    ts_ms: int = Field(ge=0)
